"""Regression found by the full-pipeline fuzzer (seed 5099, grinder pipeline, f16): an f16 AveragePool whose
border windows see fewer taps (pads with count_include_pad=0) was decomposed with an f32 tensor of counts,
so the verifier rejected decompose's output ("'tile.compute' expression computes f32 but the result is
f16"). Fixed in passes/decompose_rules/nn_rules.py: the counts take the output's dtype."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from tilec.driver import compile_model, make_executor


def _model(dtype):
    node = h.make_node("AveragePool", ["x"], ["y"], kernel_shape=[1, 3], strides=[1, 2], pads=[0, 1, 0, 1],
                       count_include_pad=0)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", dtype, [2, 1, 5, 5])],
                     [h.make_tensor_value_info("y", dtype, [2, 1, 5, 3])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 9
    return m


def _expected(x):
    """Window [j*2 - 1, j*2 + 1] clipped to the row, averaged over the taps inside it."""
    out = np.zeros(x.shape[:3] + (3,), np.float64)
    for j in range(3):
        lo, hi = max(2 * j - 1, 0), min(2 * j + 2, 5)
        out[..., j] = x[..., lo:hi].astype(np.float64).mean(axis=-1)
    return out


@pytest.mark.parametrize("pipeline", ["none", "grinder"])
def test_f16_average_pool_with_border_windows(tmp_path, pipeline):
    onnx.save(_model(T.FLOAT16), tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline=pipeline)
    x = np.random.default_rng(0).uniform(-2, 2, (2, 1, 5, 5)).astype(np.float16)
    y = make_executor(str(tmp_path / "b"), "emu", "shuffle").run({"x": x})["y"]
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float64), _expected(x), rtol=2e-3, atol=2e-3)
