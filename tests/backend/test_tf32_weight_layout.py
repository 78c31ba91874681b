"""tf32 MatMuls with a [k][n] weight on sm_90 (issue #21, passes/tf32_layout.py): the precision pass stores the
constant weight [n][k] once at compile time, so wgmma m64nNk8 (K-major operands only) runs them; the emulator
agrees with numpy at tf32's tolerance with global bytes exact; a non-constant [k][n] operand and sm_80 keep
mma.sync, their builds unchanged."""
import json
from pathlib import Path

import numpy as np
import pytest

from tilec.driver import compile_model, run_target


def _matmul_onnx(path: Path, m: int, k: int, n: int, weight: np.ndarray | None):
    """Y = X @ W with W an initializer (``weight``) or a second graph input."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    f = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("x", f, [m, k])]
    inits = []
    if weight is None:
        inputs.append(helper.make_tensor_value_info("w", f, [k, n]))
    else:
        inits.append(numpy_helper.from_array(weight, "w"))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm", inputs,
                              [helper.make_tensor_value_info("y", f, [m, n])], initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _build(tmp_path, m, k, n, const, arch):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((k, n)).astype(np.float32)
    _matmul_onnx(tmp_path / "m.onnx", m, k, n, w if const else None)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch=arch, precision="tf32")
    return w, (tmp_path / "b" / "model.tir").read_text()


@pytest.mark.parametrize("m,k,n", [(96, 80, 72), (40, 36, 136)])   # ragged tiles; K shorter than a k tile
def test_constant_kn_weight_runs_wgmma_tf32(tmp_path, m, k, n):
    w, tir = _build(tmp_path, m, k, n, True, "h200")
    assert 'engine = "wgmma"' in tir and "m64n" in tir and "_kmajor" in tir
    x = np.random.default_rng(2).standard_normal((m, k)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    run_target(str(tmp_path / "b"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
               report_path=str(tmp_path / "run.json"))
    got = np.load(tmp_path / "out.npz")["y"].astype(np.float64)
    exact = x.astype(np.float64) @ w.astype(np.float64)
    trunc = [(v.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64) for v in (x, w)]
    scale = np.abs(exact).max()
    np.testing.assert_allclose(got, trunc[0] @ trunc[1], rtol=0, atol=1e-5 * scale)   # wgmma's truncation
    np.testing.assert_allclose(got, exact, rtol=0, atol=5e-3 * scale)                 # tf32's tolerance
    assert np.abs(got - exact).max() > 1e-6 * scale                                   # tf32, not f32
    (rk,) = json.load(open(tmp_path / "run.json"))["kernels"]
    assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


@pytest.mark.parametrize("const,arch", [(False, "h200"), (True, "a100")])
def test_input_weight_and_sm80_keep_mma_sync(tmp_path, const, arch):
    _, tir = _build(tmp_path, 64, 64, 64, const, arch)
    assert 'engine = "mma_sync"' in tir and "_kmajor" not in tir
