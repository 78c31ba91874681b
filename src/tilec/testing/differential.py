"""Differential testing: onnxruntime against tilec at each stage a graph can reach.

Stages: ``import`` (the numpy interpreter on graph IR), ``decompose`` (after the driver's
``FRONT_PASSES``, so the interpreter runs tile.compute expressions) and ``emu`` (a build folder run by
the CUDA emulator; only when the driver has a pipeline with ``lower-cuda``). Each stage's outcome is one of
``ok``, ``mismatch``, ``diagnostic`` (tilec rejected a valid graph), ``crash``, ``timeout``, ``memory`` or
``skipped``.
"""
from __future__ import annotations

import copy
import tempfile

import numpy as np

from .guard import DIAGNOSTIC, OK, Outcome, run_guarded

STAGES = ("import", "decompose", "emu")
MISMATCH, SKIPPED = "mismatch", "skipped"
RTOL, ATOL = 1e-3, 1e-4
# A g++ build per kernel makes emu slow (tens of seconds for a 12-kernel graph on a loaded machine):
# its limit catches hangs, not slowness.
EMU_SECONDS = 600.0


class Mismatch(Exception):
    pass


def run_onnxruntime(model, inputs: dict) -> dict:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, inputs)))


def compare(expected: dict, got: dict, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Raise :class:`Mismatch` naming the first output that differs (NaN matches NaN)."""
    for name, ref in expected.items():
        if name not in got:
            raise Mismatch(f"output '{name}' missing (tilec gave {sorted(got)})")
        out = np.asarray(got[name])
        if out.shape != ref.shape:
            raise Mismatch(f"output '{name}': shape {list(out.shape)}, expected {list(ref.shape)}")
        if not np.allclose(out.astype(np.float64), ref.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True):
            err = np.nanmax(np.abs(out.astype(np.float64) - ref.astype(np.float64)))
            raise Mismatch(f"output '{name}': max abs error {err:.3g}")


def emu_pipeline() -> str | None:
    """The name of a driver pipeline that lowers to CUDA, or None while there is none."""
    from ..driver import PIPELINES
    return next((name for name, spec in PIPELINES.items() if "lower-cuda" in spec), None)


def _stage_import(model, inputs, expected):
    from ..frontend.importer import import_onnx
    from ..runtime.interpreter import run_module
    compare(expected, run_module(import_onnx(copy.deepcopy(model)), inputs))


def _stage_decompose(model, inputs, expected):
    from ..driver import FRONT_PASSES
    from ..frontend.importer import import_onnx
    from ..passes.pipeline import PassManager, parse_pipeline
    from ..runtime.interpreter import run_module
    module = import_onnx(copy.deepcopy(model))
    PassManager(passes=parse_pipeline(FRONT_PASSES)).run(module)
    compare(expected, run_module(module, inputs))


def _stage_emu(model, inputs, expected):
    import onnx

    from ..driver import compile_model, make_executor
    with tempfile.TemporaryDirectory(prefix="tilec-fuzz-") as d:
        path = f"{d}/model.onnx"
        onnx.save(model, path)
        compile_model(path, f"{d}/build", pipeline=emu_pipeline())
        compare(expected, make_executor(f"{d}/build", "emu").run(inputs))


_RUNNERS = {"import": _stage_import, "decompose": _stage_decompose, "emu": _stage_emu}


def stage_available(stage: str) -> str | None:
    """None when ``stage`` can run in this checkout, else why not."""
    if stage == "emu" and emu_pipeline() is None:
        return "no driver pipeline runs lower-cuda yet"
    return None


def check_graph(model, inputs: dict, stages=STAGES, seconds: float = 30.0) -> dict:
    """``{stage: Outcome}`` for one graph; onnxruntime failing to run it is a generator bug (raised)."""
    expected = run_onnxruntime(model, inputs)
    out = {}
    for stage in stages:
        why = stage_available(stage)
        if why:
            out[stage] = Outcome(SKIPPED, why)
            continue
        limit = max(seconds, EMU_SECONDS) if stage == "emu" else seconds
        o = guard_mismatch(_RUNNERS[stage], model, inputs, expected, limit)
        out[stage] = o
    return out


def guard_mismatch(fn, model, inputs, expected, seconds) -> Outcome:
    """``run_guarded(fn, model, inputs, expected)``, with a :class:`Mismatch` it raises reported as one."""
    result = {}

    def call():
        try:
            fn(model, inputs, expected)
        except Mismatch as e:
            result["mismatch"] = str(e)
    o = run_guarded(call, seconds=seconds)
    if o.kind == OK and "mismatch" in result:
        return Outcome(MISMATCH, result["mismatch"])
    return o


def failing(outcomes: dict) -> list:
    """Stages that failed: a mismatch, a crash, or a diagnostic (the graphs are valid and use only ops
    tilec supports, so rejecting one is a bug too). A skipped stage did not fail."""
    return [s for s, o in outcomes.items() if o.kind in (MISMATCH, DIAGNOSTIC) or o.is_finding]
