"""Open bug found by the full-pipeline fuzzer (make fuzz, seed 1743, rammer pipeline; welder and grinder
too): Welder fuses AveragePool -> CumSum(axis 1, reverse) into one ``conv_chain`` group. CumSum reads the
pool's output at ``X[d0, r, d2, d3]`` (another channel than its own, ``select(r >= d1, ...)``), and the
fused kernel gets it wrong (max abs error ~6.5); the ``none`` and ``roller`` pipelines are right. The group
kind is Welder's (analysis/welder/, backend/lower/fused*.py): a likely fix is that a conv_chain consumer
may reduce only over axes the producer tile covers whole, or must read the producer at its own coordinates.

It stays xfail(strict=True) until fixed; when it starts passing, drop the mark."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor
from tilec.testing.differential import run_onnxruntime


@pytest.mark.parametrize("pipeline", [
    "roller",
    pytest.param("welder", marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                     reason="conv_chain group mis-fuses CumSum")),
])
def test_average_pool_then_cumsum_over_channels(tmp_path, pipeline):
    nodes = [h.make_node("AveragePool", ["x"], ["p"], kernel_shape=[3, 2], pads=[0, 1, 0, 1], strides=[2, 2],
                         count_include_pad=0),
             h.make_node("CumSum", ["p", "axis"], ["y"], reverse=1)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [1, 33, 17, 1])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 33, 8, 1])],
                     [nh.from_array(np.array(-3, np.int64), "axis")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline=pipeline)
    x = np.random.default_rng(0).uniform(-2, 2, (1, 33, 17, 1)).astype(np.float32)
    y = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["y"]
    np.testing.assert_allclose(y, run_onnxruntime(model, {"x": x})["y"], rtol=1e-4, atol=1e-4)
