"""Regression found by the full-pipeline fuzzer (seed 5455, none pipeline, 64x64 Trilu): the elementwise
lowering vectorised Trilu's ``select(d1 - d0 <= 0, X[d0, d1], 0.0)`` into float4 lanes, but all four
lanes used the first lane's d1, so a quarter of the diagonal band was wrong. Fixed in
backend/lower/elementwise.py: an expression that uses the innermost axis as a value is not vectorised."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor


@pytest.mark.parametrize("upper,k", [(0, -2), (1, 0), (0, 1)])
def test_trilu_on_a_vectorisable_shape(tmp_path, upper, k):
    shape = [3, 64, 64]   # innermost extent a multiple of 4 and enough elements: the float4 path
    g = h.make_graph([h.make_node("Trilu", ["x", "k"], ["y"], upper=upper)], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, shape)], [h.make_tensor_value_info("y", T.FLOAT, shape)],
                     [nh.from_array(np.array(k, np.int64), "k")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="none")
    x = np.random.default_rng(0).uniform(-2, 2, shape).astype(np.float32)
    y = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["y"]
    want = np.triu(x, k) if upper else np.tril(x, k)
    np.testing.assert_array_equal(y, want)
