"""samples/parallel: the committed models are what build.py writes (byte for byte) and pass the ONNX
checker; numpy's reference agrees with onnxruntime on them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from tilec.testing.scripts import load_file_module

DIR = Path(__file__).resolve().parents[2] / "samples" / "parallel"
MODELS = ("nasnet_cell", "resnext_block", "inception_block", "lstm_cell")


def test_rebuild_is_byte_identical(tmp_path):
    mod = load_file_module(DIR / "build.py", "parallel_build")
    mod.main(["--out", str(tmp_path)])
    for name in MODELS:
        assert (tmp_path / f"{name}.onnx").read_bytes() == (DIR / f"{name}.onnx").read_bytes(), name


@pytest.mark.parametrize("name", MODELS)
def test_numpy_reference_matches_onnxruntime(name):
    ort = pytest.importorskip("onnxruntime")
    from tilec.driver import load_target
    from tilec.runtime.interpreter import run_module
    path = DIR / f"{name}.onnx"
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    inputs = {i.name: rng.standard_normal(i.shape).astype(np.float32) for i in sess.get_inputs()}
    want = sess.run(None, inputs)[0]
    got = run_module(load_target(str(path)), inputs)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
