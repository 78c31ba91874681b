"""Shared logic of the ONNX node-test harness: which cases run, how one runs, and the per-op table.

Used by ``test_onnx_node_tests.py``, its ``conftest.py`` (the table at the end of the session) and
``scripts/node_test_table.py`` (the table in ``docs/node_tests.md``).
"""
from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np

EXCLUSIONS_FILE = Path(__file__).with_name("node_test_exclusions.txt")
STAGES = ("graph", "decomposed")
DEFAULT_DOMAINS = ("", "ai.onnx")


@functools.lru_cache(maxsize=None)
def all_cases() -> tuple:
    """Every ONNX node test case (about 1,900; generating them takes a few seconds)."""
    from onnx.backend.test.case.node import collect_testcases
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tuple(sorted(collect_testcases(None), key=lambda c: c.name))


def case_ops(case) -> tuple:
    """The op types a case's model uses (its main graph only: functions are not inlined by tilec)."""
    return tuple(sorted({n.op_type if n.domain in DEFAULT_DOMAINS else f"{n.domain}.{n.op_type}"
                         for n in case.model.graph.node}))


@functools.lru_cache(maxsize=None)
def exclusions() -> dict:
    """``case name -> reason`` from node_test_exclusions.txt (``name  # reason`` per line)."""
    out = {}
    if EXCLUSIONS_FILE.exists():
        for line in EXCLUSIONS_FILE.read_text().splitlines():
            name, _, reason = line.partition("#")
            name = name.strip()
            if name:
                out[name] = reason.strip() or "excluded"
    return out


def supported_cases() -> list:
    """The cases whose every op has a tilec converter."""
    from tilec.frontend.registry import supported_ops
    ops = set(supported_ops())
    return [c for c in all_cases() if set(case_ops(c)) <= ops]


def _tolerances(dtype) -> tuple:
    if dtype.name == "bfloat16":
        return 1e-2, 1e-2  # 8 bits of mantissa: one rounding step is 0.4%
    if dtype == np.float16:
        return 1e-3, 1e-3
    return 1e-4, 1e-5


def compare(name: str, got: np.ndarray, want: np.ndarray) -> None:
    """Raise AssertionError unless ``got`` matches ``want`` (NaN-aware; exact for ints and bools)."""
    want = np.asarray(want)
    got = np.asarray(got)
    assert got.shape == want.shape, f"output '{name}': shape {got.shape}, expected {want.shape}"
    if want.dtype.kind in "biu":
        assert got.dtype.kind == want.dtype.kind or want.dtype == np.bool_ and got.dtype == np.bool_, \
            f"output '{name}': dtype {got.dtype}, expected {want.dtype}"
        np.testing.assert_array_equal(got, want, err_msg=f"output '{name}'")
        return
    rtol, atol = _tolerances(want.dtype)
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol,
                               equal_nan=True, err_msg=f"output '{name}'")


def run_case(case, stage: str) -> None:
    """Import ``case``, optionally decompose it, run it and compare every output of every data set."""
    from tilec.ir import verify
    from tilec.runtime.interpreter import run_module
    graph = case.model.graph
    init = {t.name for t in graph.initializer}
    arg_names = [i.name for i in graph.input if i.name not in init]
    for inputs, outputs in case.data_sets:
        feeds = dict(zip(arg_names, (_array(v) for v in inputs)))
        module = _import(case, feeds)
        if stage == "decomposed":
            import importlib.util
            if importlib.util.find_spec("tilec.ir.texpr") is None:
                raise NotDecomposed("the tensor-expression package tilec.ir.texpr does not exist yet")
            from tilec.passes import get_pass
            get_pass("decompose").apply(module)
            verify(module)
            left = sorted({op.name for op in module.walk() if _lowers_to_expr(op.name)})
            if left:
                raise NotDecomposed("no decomposition rule yet for " + ", ".join(left))
        got = run_module(module, feeds)
        for out, want in zip(graph.output, outputs):
            compare(out.name, got[out.name], _array(want))


class NotDecomposed(Exception):
    """The decomposed stage is meaningless for this case: some op has no decomposition rule yet."""


def _lowers_to_expr(op_name: str) -> bool:
    from tilec.ir.opspec import get_spec
    spec = get_spec(op_name)
    return op_name.startswith("graph.") and spec is not None and spec.lowering == "expr"


def _array(v) -> np.ndarray:
    """Test data is numpy arrays, or TensorProtos for types numpy lacks (bfloat16, float8)."""
    from onnx import TensorProto, numpy_helper
    return numpy_helper.to_array(v) if isinstance(v, TensorProto) else np.asarray(v)


def _import(case, feeds: dict):
    """Import with the data's shapes. Inputs tilec needs as constants (a Reduce's axes fed as a graph
    input) are frozen to the test data, as ``tilec compile --freeze-input`` would."""
    from tilec.frontend.importer import import_onnx
    from tilec.ir import CompileError
    frozen: dict = {}
    while True:
        shapes = {k: tuple(v.shape) for k, v in feeds.items() if k not in frozen}
        try:
            return import_onnx(case.model, shapes, filename=f"{case.name}.onnx", frozen_inputs=frozen)
        except CompileError as e:
            name = getattr(e, "needs_constant", None)
            if name not in feeds or name in frozen:
                raise
            frozen[name] = feeds[name]


def op_table(results: dict) -> str:
    """Markdown table: per op, how many of its cases pass at each stage. ``results[(case, stage)]`` is
    'passed' | 'failed' | 'skipped'; a case counts for every op it uses."""
    from tilec.frontend.registry import supported_ops
    supported = set(supported_ops())
    rows: dict = {}
    for case in all_cases():
        ops = case_ops(case)
        for op in ops:
            if op not in supported:
                continue
            row = rows.setdefault(op, {"cases": 0, "excluded": 0, **{s: 0 for s in STAGES}})
            row["cases"] += 1
            if not set(ops) <= supported:
                row["excluded"] += 1  # needs another op tilec lacks: counted as not run
                continue
            for s in STAGES:
                if results.get((case.name, s)) == "passed":
                    row[s] += 1
            if case.name in exclusions():
                row["excluded"] += 1
    lines = ["| op | node tests | not run (excluded or needs an unsupported op) | pass: graph | pass: decomposed |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for op in sorted(rows):
        r = rows[op]
        lines.append(f"| {op} | {r['cases']} | {r['excluded']} | {r['graph']} | {r['decomposed']} |")
    def count(stage, outcome):
        return sum(1 for (c, st), v in results.items() if st == stage and v == outcome)
    n = len([k for k in results if k[1] == "graph"])
    summary = (f"{n} node tests run (every op supported, not excluded; {len(exclusions())} more are excluded); "
               + "; ".join(f"{s}: {count(s, 'passed')} pass, {count(s, 'failed')} fail, "
                           f"{count(s, 'skipped')} skipped" for s in STAGES)
               + " (decomposed is skipped while tilec.ir.texpr does not exist, and for ops without a decomposition rule)")
    return summary + "\n\n" + "\n".join(lines) + "\n"
