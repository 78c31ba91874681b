"""Full-pipeline random-graph fuzzing: compile each random graph with a driver pipeline, run the kernels
under the CUDA emulator, and compare with onnxruntime and with tilec's numpy reference.

Each case is derived from its seed alone (``make_case``), so a finding is reproduced with the seed:

- a graph of 2 to ``max_nodes`` ops from :mod:`tilec.testing.graphgen`, with small dims (few, cheap kernels),
  except for one case in ``1 / WIDE_SHARE`` whose dims (up to 130, at most ``WIDE_ELEMENTS`` per tensor) span
  several tiles and leave partial ones: the edges where tiling bugs live;
- the pipeline rotates over ``driver.PIPELINES`` (``none``, ``roller``, ``welder``, ``rammer``, ``grinder``
  once it exists), and the emulator's block/thread order over normal / reverse / shuffle, so every pipeline
  meets every order;
- one case in ``F16_EVERY`` runs in f16: the same graph with f16 inputs, weights and outputs, compared with
  onnxruntime on the f32 graph (inputs rounded to f16 first) at the f16 tolerance. Ops whose f16 error is
  not bounded by a tolerance (products, exponentials of sums, discontinuities) are left out of f16 graphs.
- a precision case (``make_case(..., precision="fp16" | "bf16")``, ``scripts/fuzz.py --precision-graphs``)
  is an f32 graph with at least one MatMul, Gemm or Conv, drawn from the f16 graphs' ops, compiled with
  ``--precision``: the contractions compute in f16/bf16 (``passes/precision.py``), so the emulator is held to
  onnxruntime's f32 outputs at that format's tolerance (``PRECISION_TOL``) and to the numpy reference (the
  same f16/bf16 IR) at it too.

Outcomes: ``ok``; ``mismatch`` (emu against onnxruntime or against the numpy reference); a clean
``diagnostic``, which is allowed only when its message matches a documented unsupported combination in
``UNSUPPORTED`` (otherwise it is a finding: the graph is valid and uses only supported ops); ``crash``
(any other exception: the CLI's exit 3), ``timeout`` or ``memory``. A failing case is saved as
``<dir>/<seed>-<pipeline>/{model.onnx, inputs.npz, case.json}``.
"""
from __future__ import annotations

import copy
import json
import random
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import numpy_helper

from .campaign import LocalExecutor, Tally, Unit, worker_memory_limit
from .differential import MISMATCH, Mismatch, guard_mismatch, compare, run_onnxruntime
from .graphgen import BUILDERS, GenGraph, available_ops, generate
from .guard import DIAGNOSTIC, Outcome

ORDERS = ("normal", "reverse", "shuffle")
WIDE_SHARE, WIDE_DIMS, WIDE_ELEMENTS = 0.3, (1, 3, 17, 33, 64, 130), 4096
F16_EVERY = 5
RTOL, ATOL = 1e-3, 1e-4
F16_RTOL, F16_ATOL = 3e-2, 3e-2
# (rtol, atol) of a precision case: f16's as above; bf16 rounds to 8 mantissa bits instead of 11 (unit
# roundoff 2^-9 against 2^-12), so 8x as loose, but only the contractions round (less than an all-f16 graph).
PRECISION_TOL = {"fp16": (F16_RTOL, F16_ATOL), "bf16": (1e-1, 1e-1)}
CONTRACTION_OPS = {"MatMul", "Gemm", "Conv"}
# Ops kept out of f16 graphs: their error in f16 grows with the values (products, exp of sums, squares),
# or they are discontinuous, so a rounding difference moves the result by a whole step.
# LayerNormalization and InstanceNormalization divide by the spread of their input, so they magnify the f16
# rounding of an input whose values are close together (tanh near -1 in seed 100304: the reference, which
# rounds every f16 tensor, and a fused kernel, which keeps f32 in registers, differed by 0.09).
F16_EXCLUDED = {"ReduceProd", "ReduceSumSquare", "ReduceL2", "ReduceLogSumExp", "Pow", "Exp", "Reciprocal",
                "Div", "Log", "Floor", "Ceil", "Round", "Sign", "ThresholdedRelu", "Softplus", "Mish", "Where",
                "LayerNormalization", "InstanceNormalization"}


def _schema_lacks_f16(op: str) -> bool:
    """Whether ONNX's schema of ``op`` types its first (float) input without f16 (e.g. Celu): an f16 graph
    with it would be invalid ONNX."""
    import onnx.defs
    for opset in (17, 18, 20):
        try:
            schema = onnx.defs.get_schema(op, opset)
        except Exception:  # noqa: BLE001 - not defined at this opset
            continue
        allowed = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
        types = allowed.get(schema.inputs[0].type_str, ()) if schema.inputs else ()
        if "tensor(float)" in types and "tensor(float16)" not in types:
            return True
    return False


F16_EXCLUDED |= {op for op in BUILDERS if _schema_lacks_f16(op)}
# Clean diagnostics that are documented limits, not bugs: (regex on the message, where it is documented).
UNSUPPORTED: list = []


@dataclass
class Case:
    seed: int
    pipeline: str
    order: str
    dtype: str
    graph: GenGraph
    wide: bool = False
    precision: str | None = None   # tilec compile --precision (an f32 graph)

    @property
    def name(self) -> str:
        kind = f"f32 --precision {self.precision}" if self.precision else self.dtype
        return f"seed {self.seed} ({self.pipeline}, {self.order}, {kind}{', wide' if self.wide else ''})"

    @property
    def tolerance(self) -> tuple:
        if self.precision:
            return PRECISION_TOL[self.precision]
        return (F16_RTOL, F16_ATOL) if self.dtype == "f16" else (RTOL, ATOL)


def pipelines() -> list:
    from ..driver import PIPELINES
    return [p for p, spec in PIPELINES.items() if "lower-cuda" in spec]


def make_case(seed: int, max_nodes: int = 8, max_dim: int = 5, dtype: str | None = None,
              precision: str | None = None) -> Case:
    """The case for ``seed``: its graph, pipeline, emulator order and dtype. ``dtype`` ("f32" or "f16")
    forces the dtype; by default one seed in ``F16_EVERY`` is f16, and as ``F16_EVERY`` is the number of
    pipelines those all take the last one (the default): a forced-f16 run covers every pipeline.
    ``precision`` ("fp16", "bf16") makes a precision case (the module docstring)."""
    rng = random.Random(f"pipeline-fuzz/{seed}")
    names = pipelines()
    pipeline = names[seed % len(names)]
    order = ORDERS[(seed // len(names)) % len(ORDERS)]
    dtype = "f32" if precision else dtype or ("f16" if seed % F16_EVERY == F16_EVERY - 1 else "f32")
    if dtype not in ("f32", "f16"):
        raise ValueError(f"dtype must be f32 or f16, not {dtype!r}")
    if precision is not None and precision not in PRECISION_TOL:
        raise ValueError(f"precision must be one of {', '.join(PRECISION_TOL)}, not {precision!r}")
    n = rng.randint(2, max_nodes)
    wide = rng.random() < WIDE_SHARE
    supported = None
    if dtype == "f16" or precision:
        from ..frontend.registry import supported_ops
        supported = set(supported_ops()) - F16_EXCLUDED
    for attempt in range(64):   # a precision case redraws (seeds of its own) until it has a contraction
        sub = seed + attempt * 10_000_000   # redraws: seeds far from every campaign's range
        if wide:
            graph = generate(sub, n, max_dim=max(WIDE_DIMS), supported=supported, dims=WIDE_DIMS,
                             max_elements=WIDE_ELEMENTS)
        else:
            graph = generate(sub, n, max_dim=max_dim, supported=supported)
        if not precision or CONTRACTION_OPS & {node.op_type for node in graph.model.graph.node}:
            break
    if dtype == "f16":
        graph = _to_f16(graph)
    return Case(seed, pipeline, order, dtype, graph, wide, precision)


def _retype(model, src: int, dst: int, np_dst) -> onnx.ModelProto:
    """``model`` with every ``src`` float input, output, initializer and Cast target turned into ``dst``."""
    m = copy.deepcopy(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        if vi.type.tensor_type.elem_type == src:
            vi.type.tensor_type.elem_type = dst
    for i, t in enumerate(m.graph.initializer):
        if t.data_type == src:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np_dst),
                                                                    t.name))
    for node in m.graph.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == src:
                a.i = dst
    return m


def _to_f16(g: GenGraph) -> GenGraph:
    """The same graph in f16 (Cast nodes keep their round trip through f64 but end in f16); the inputs
    are rounded to f16."""
    return GenGraph(_retype(g.model, T.FLOAT, T.FLOAT16, np.float16),
                    {k: v.astype(np.float16) for k, v in g.inputs.items()}, g.seed, g.ops)


def _reference(case: Case) -> dict:
    """onnxruntime's outputs; an f16 case runs as f32 on its f16-rounded inputs (onnxruntime's CPU
    provider lacks f16 kernels for many ops), cast back to f16 to compare."""
    if case.dtype == "f32":
        return run_onnxruntime(case.graph.model, case.graph.inputs)
    m = _retype(case.graph.model, T.FLOAT16, T.FLOAT, np.float32)
    out = run_onnxruntime(m, {k: v.astype(np.float32) for k, v in case.graph.inputs.items()})
    return {k: v.astype(np.float16) for k, v in out.items()}


def _compile_and_run(case: Case, expected: dict, workdir: str, check_nvrtc: bool = False) -> None:
    from ..driver import compile_model, load_target, make_executor
    from ..runtime.interpreter import run_module
    path = f"{workdir}/model.onnx"
    onnx.save(case.graph.model, path)
    build = f"{workdir}/build"
    compile_model(path, build, pipeline=case.pipeline, check_nvrtc=check_nvrtc, precision=case.precision)
    got = make_executor(build, "emu", case.order).run(case.graph.inputs)
    rtol, atol = case.tolerance
    try:
        compare(expected, got, rtol, atol)
    except Mismatch as e:
        raise Mismatch(f"emu vs onnxruntime: {e}") from None
    reference = run_module(load_target(build), case.graph.inputs)  # the IR before lower-cuda
    try:
        compare(reference, got, rtol, atol)
    except Mismatch as e:
        raise Mismatch(f"emu vs numpy reference: {e}") from None


def run_case(case: Case, seconds: float = 600.0, check_nvrtc: bool = False) -> Outcome:
    """Compile and run one case under :func:`run_guarded`; see the module docstring for the outcomes.
    ``check_nvrtc`` also compiles every kernel as CuPy will on the GPU (a rejection is a crash: tilec's bug)."""
    expected = _reference(case)

    def compile_and_run(_model, _inputs, want):
        with tempfile.TemporaryDirectory(prefix="tilec-pfuzz-") as d:
            _compile_and_run(case, want, d, check_nvrtc)
    return guard_mismatch(compile_and_run, None, None, expected, seconds)


def documented(outcome: Outcome) -> str | None:
    """Where a clean diagnostic is documented as an unsupported combination, or None."""
    if outcome.kind != DIAGNOSTIC:
        return None
    return next((doc for pattern, doc in UNSUPPORTED if re.search(pattern, outcome.detail)), None)


def is_failure(outcome: Outcome) -> bool:
    return outcome.kind == MISMATCH or outcome.is_finding or (outcome.kind == DIAGNOSTIC
                                                              and documented(outcome) is None)


def save_case(case: Case, outcome: Outcome, directory) -> Path:
    """Write the model, its inputs and what happened, for ``tilec compile`` / ``tilec run`` by hand."""
    out = Path(directory) / f"{case.seed}-{case.pipeline}-{case.order}-{case.precision or case.dtype}"
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(case.graph.model, out / "model.onnx")
    np.savez(out / "inputs.npz", **case.graph.inputs)
    info = {"seed": case.seed, "pipeline": case.pipeline, "order": case.order, "dtype": case.dtype,
            "precision": case.precision,
            "ops": case.graph.ops, "outcome": outcome.kind, "detail": outcome.detail,
            "reproduce": f"tilec compile model.onnx -o build --pipeline {case.pipeline}"
                         + (f" --precision {case.precision}" if case.precision else "") + " && tilec run build "
                         f"--inputs inputs.npz --outputs out.npz --backend emu --emu-order {case.order}"}
    (out / "case.json").write_text(json.dumps(info, indent=1) + "\n")
    return out


def _case_unit(case: Case, seconds: float, memory) -> Outcome:
    worker_memory_limit(memory)
    return run_case(case, seconds)


def pipeline_campaign(n: int, seed: int = 0, max_nodes: int = 8, save_dir=None, seconds: float = 600.0,
                      progress=None, dtype: str | None = None, precision: str | None = None, executor=None,
                      worker_memory=None) -> dict:
    """Run cases ``seed .. seed + n - 1`` (all in ``dtype`` or with ``precision`` when given: ``make_case``)
    on ``executor`` (``tilec.testing.campaign``; default here, in order). Returns ``{"all": Tally, <pipeline>:
    Tally, <dtype>: Tally, ...}``; each failing case is saved under ``save_dir`` when given (by this process,
    as results come back in case order)."""
    tallies = {"all": Tally("random graphs, full pipeline under the emulator (all)")}
    cases = [make_case(k, max_nodes, dtype=dtype, precision=precision) for k in range(seed, seed + n)]
    # One unit per case, the case itself its content: a Ray worker runs it as this process would.
    units = [Unit.of(_case_unit, case, seconds, worker_memory) for case in cases]
    report = (lambda i, o: progress(cases[i], o)) if progress else None   # as each case finishes
    outcomes = (executor or LocalExecutor()).run(units, report)
    for case, o in zip(cases, outcomes):
        fail = is_failure(o)
        for key in ("all", case.pipeline, case.precision or case.dtype):
            t = tallies.setdefault(key, Tally(f"random graphs, full pipeline under the emulator ({key})"))
            t.add(case.name, o, finding=fail)
        if fail and save_dir is not None:
            save_case(case, o, save_dir)
    return tallies


def f16_ops_available(opset: int = 18) -> list:
    """The ops an f16 case may draw (for the docs and tests)."""
    from ..frontend.registry import supported_ops
    return available_ops(opset, set(supported_ops()) - F16_EXCLUDED)
