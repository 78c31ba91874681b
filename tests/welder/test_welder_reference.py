"""A Welder build runs on the numpy backend too: the interpreter executes tile.kernel groups."""
import subprocess
import sys

import numpy as np
import onnxruntime as ort


def tilec(*args):
    r = subprocess.run([sys.executable, "-m", "tilec.cli.main", *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def test_welder_build_on_numpy_backend_matches_onnxruntime(tmp_path):
    tilec("compile", "samples/mlp.onnx", "-o", str(tmp_path / "b"), "--pipeline", "welder")
    assert "tile.kernel" in (tmp_path / "b" / "reference.tir").read_text()
    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    tilec("run", str(tmp_path / "b"), "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "o.npz"),
          "--backend", "numpy")
    want = ort.InferenceSession("samples/mlp.onnx").run(None, {"x": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "o.npz")["y"], want, rtol=1e-4, atol=1e-5)
