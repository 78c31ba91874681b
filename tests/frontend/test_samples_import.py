"""Every sample model imports, verifies, and the reference interpreter reproduces onnxruntime (hand-built
samples) or the saved torch outputs (torch exports, ``<name>.io.npz``).

Models that use an op without a converter yet are skipped with the op named (pending converters).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError, verify
from tilec.runtime.interpreter import run_module

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
HAND_BUILT = sorted(SAMPLES.glob("*.onnx"))
TORCH = sorted(SAMPLES.glob("torch/**/*.onnx"))


def _import(path: Path):
    try:
        module = import_onnx(str(path))
    except CompileError as e:
        if "unsupported ONNX op" in str(e):
            pytest.skip(f"pending converter: {e.diagnostic.message}")
        raise
    verify(module)
    return module


@pytest.mark.parametrize("path", HAND_BUILT, ids=lambda p: p.name)
def test_hand_built_matches_onnxruntime(path):
    import onnxruntime as ort
    module = _import(path)
    model = onnx.load(str(path), load_external_data=False)
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    got = run_module(module, feeds)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, feeds)
    for out, w in zip(model.graph.output, want):
        np.testing.assert_allclose(got[out.name], w, rtol=1e-4, atol=1e-5, err_msg=out.name)


@pytest.mark.parametrize("path", TORCH, ids=lambda p: str(p.relative_to(SAMPLES / "torch")))
def test_torch_export_matches_saved_outputs(path):
    module = _import(path)
    io = np.load(path.with_name(path.stem + ".io.npz"))
    model = onnx.load(str(path), load_external_data=False)
    feeds = {vi.name: io[vi.name] for vi in model.graph.input}
    got = run_module(module, feeds)
    for out in model.graph.output:
        np.testing.assert_allclose(got[out.name], io[out.name], rtol=1e-4, atol=1e-5, err_msg=out.name)
