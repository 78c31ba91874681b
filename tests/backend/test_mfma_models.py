"""The MFMA engine in whole models for mi250x (issue #23): Welder's fused epilogues (bias, activation, residual,
casts) on the MFMA accumulators, and a small MLP compiled with ``--precision fp16``, run under the 64-lane
emulator against numpy and onnxruntime."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "precision"))
from test_mma_engine_fused import TOL, build, run_emu  # noqa: E402

from tilec.driver import compile_model  # noqa: E402


@pytest.mark.parametrize("dtype,x_shape,n,act,residual,out,orders", [
    ("f16", (72, 48), 40, "Relu", True, None, ("normal", "reverse")),   # m, n past the block tile
    ("bf16", (3, 24, 32), 56, "Gelu", True, None, ("normal",)),        # bf16, batch folded into m, erf GELU
    ("f16", (2, 40, 64), 24, "Sigmoid", False, "f32", ("normal",)),    # a Cast to f32 stored
])
def test_fused_epilogue_on_mfma(tmp_path, dtype, x_shape, n, act, residual, out, orders):
    build_dir, ins, want = build(tmp_path, dtype, x_shape, n, act, residual, out, arch="mi250x")
    tir = (build_dir / "model.tir").read_text()
    assert 'engine = "mfma"' in tir and "fused_epilogue" in tir and "tl_mfma_" in tir
    (k,) = json.loads((build_dir / "report.json").read_text())["kernels"]   # the contraction and every member
    assert k["kind"] == "tiled_mma" and k["cu"].endswith(".hip")
    for order in orders:
        got, run = run_emu(tmp_path, build_dir, ins, dtype, order)
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(want).max())
        (rk,) = run["kernels"]
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


def _mlp(batch=96, d=128, h=256, o=72):
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal(s) / np.sqrt(s[0])).astype(np.float32), name)
             for name, s in (("W1", (d, h)), ("W2", (h, o)))]
    inits += [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), name)
              for name, s in (("b1", (h,)), ("b2", (o,)))]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "W2"], ["o"]),
             helper.make_node("Add", ["o", "b2"], ["y"])]
    g = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, o])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_fp16_mlp_on_mi250x_matches_onnxruntime(tmp_path):
    pytest.importorskip("onnxruntime")
    from checks import assert_rounded, assert_within, feeds_for, onnxruntime_outputs, run
    model = _mlp()
    onnx.save(model, str(tmp_path / "m.onnx"))
    feeds = feeds_for(model)
    want = onnxruntime_outputs(model, feeds)
    from tilec.backend import hipcc
    checked = hipcc.find_hipcc() is not None   # --check-hip where the AMD compiler is installed
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch="mi250x", precision="fp16", check_hip=checked)
    rows = json.loads((tmp_path / "b" / "report.json").read_text())["kernels"]
    mfma = [k for k in rows if k["kind"] == "tiled_mma"]
    assert len(mfma) == 2, [k["kind"] for k in rows]   # both products on the matrix cores
    if checked:   # hipcc: no spills anywhere, the MFMA kernels' accumulators in AGPRs
        assert all(k["hip"]["spills"] == 0 for k in rows), [(k["name"], k["hip"]) for k in rows]
        assert all(k["hip"]["agprs"] > 0 for k in mfma), [k["hip"] for k in mfma]
    assert (tmp_path / "b" / "model.tir").read_text().count('engine = "mfma"') == 2
    got = run(tmp_path / "b", feeds, "emu")
    assert_within(want, got, "fp16")
    assert_rounded(want, got)   # really f16: visibly off exact f32
