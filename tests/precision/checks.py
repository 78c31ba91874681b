"""Shared checks of the precision-mode tests: run a model built with ``--precision`` under numpy and the
emulator and compare with onnxruntime's f32 outputs at the mode's tolerance.

Tolerances are relative to the output's scale (``max |y|`` of onnxruntime's output), from the formats:
a product rounds its two inputs by at most the unit roundoff u each (u = 2^-11 for f16 and tf32, whose
mantissas have 10 bits, 2^-8 for bf16's 7), f32 accumulation adds nothing that shows at these scales, and
f16/bf16 results round once more (u). The rounding errors of a K-term sum are random in sign, so they grow
like sqrt(K) u |a||b| and stay a few u of the scale; chains of layers add a few of those. A tolerance of
about 20 u (f16: 1e-2), 13 u (bf16: 5e-2) and 10 u (tf32: 5e-3) holds that with room, while a mode that
did not round at all, or rounded to the wrong type, is caught by ``assert_rounded`` (it must differ from
exact f32 by more than the f32 noise).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

TOLERANCE = {"fp32": 1e-4, "tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2}
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")


def feeds_for(model: onnx.ModelProto, seed: int = 0) -> dict:
    """Seeded inputs: standard normal floats, 0/1 ints (ids and masks): ``bench.measure.model_feeds``."""
    from tilec.bench.measure import model_feeds
    return model_feeds(model, seed)


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict) -> dict:
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want|`` over ``max |want|`` (the output's scale)."""
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.abs(want).max()) if want.size else 1.0
    return float(np.abs(np.asarray(got, dtype=np.float64) - want).max()) / (scale or 1.0) if want.size else 0.0


def build_and_run(model: onnx.ModelProto, tmp: Path, precision: str, backends=("numpy", "emu"),
                  pipeline: str = "default") -> tuple:
    """Compile ``model`` with ``precision`` into ``tmp/build`` and run it on seeded inputs on each backend.
    Returns ``(onnxruntime outputs, {backend: outputs}, report.json)``."""
    from tilec.driver import compile_model
    path = tmp / "model.onnx"
    onnx.save(model, str(path))
    feeds = feeds_for(model)
    want = onnxruntime_outputs(model, feeds)
    compile_model(str(path), str(tmp / "build"), pipeline=pipeline, precision=precision)
    got = {b: run(tmp / "build", feeds, b) for b in backends}
    return want, got, json.loads((tmp / "build" / "report.json").read_text())


def run(build: Path, feeds: dict, backend: str) -> dict:
    if backend == "numpy":
        from tilec.driver import load_target
        from tilec.runtime.interpreter import run_module
        return run_module(load_target(str(build)), feeds)
    from tilec.driver import make_executor
    return make_executor(str(build), backend).run(feeds)


def assert_within(want: dict, got: dict, precision: str) -> dict:
    """Every float output within the mode's tolerance of onnxruntime's, ints exact; returns the errors."""
    errors = {}
    for name, ref in want.items():
        out = np.asarray(got[name])
        assert out.dtype == ref.dtype and out.shape == ref.shape, (name, out.dtype, out.shape)
        if ref.dtype.kind != "f":
            np.testing.assert_array_equal(out, ref, err_msg=name)
            continue
        errors[name] = scaled_error(out, ref)
        assert errors[name] <= TOLERANCE[precision], f"{name}: {errors[name]:.3g} > {TOLERANCE[precision]} ({precision})"
    return errors


def assert_rounded(want: dict, got: dict, floor: float = 2e-5) -> None:
    """Some float output differs from exact f32 by more than f32's own noise: the mode really rounded."""
    errors = [scaled_error(got[n], r) for n, r in want.items() if r.dtype.kind == "f"]
    assert errors and max(errors) > floor, errors
