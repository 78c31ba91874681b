"""Found by the full-pipeline fuzzer (make fuzz, seed 1743, rammer pipeline; welder and grinder too): Welder
fuses AveragePool -> CumSum(axis 1, reverse) into one ``conv_chain`` group, and the fused kernel was wrong
(max abs error ~6.5) while ``none`` and ``roller`` were right.

Root cause: CumSum's body uses axes as values, ``select(r >= d1, X[d0, r, d2, d3], 0)``. The tiled kernel
(backend/lower/tiled.py ``_compute``) and the conv chain's P-tile fold (fused_conv.py) rendered such an axis
as the tile-local coordinate (the one that indexes shared memory) instead of the global one, which is right
only in the first block and reduce step. Alone, CumSum is a ``reduction`` and never reaches the tiled kernel;
a conv chain lowers both sides through it. Fixed by rendering value uses of axes as origin + local offset;
the chain stays fused (checked below), with CumSum as consumer (C) or as producer (P)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor
from tilec.testing.differential import run_onnxruntime


def _run(tmp_path, nodes, xshape, yshape, axis, pipeline):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, xshape)],
                     [h.make_tensor_value_info("y", T.FLOAT, yshape)],
                     [nh.from_array(np.array(axis, np.int64), "axis")])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline=pipeline)
    if pipeline == "welder":   # the fix keeps the fusion: the bug must be exercised, not avoided
        assert 'kind = "conv_chain"' in (tmp_path / "b" / "reference.tir").read_text()
    x = np.random.default_rng(0).uniform(-2, 2, xshape).astype(np.float32)
    y = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["y"]
    np.testing.assert_allclose(y, run_onnxruntime(model, {"x": x})["y"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("pipeline", ["roller", "welder"])
def test_average_pool_then_cumsum_over_channels(tmp_path, pipeline):
    """CumSum is the chain's consumer: its reduce steps (4 of 33 channels) start past 0."""
    nodes = [h.make_node("AveragePool", ["x"], ["p"], kernel_shape=[3, 2], pads=[0, 1, 0, 1], strides=[2, 2],
                         count_include_pad=0),
             h.make_node("CumSum", ["p", "axis"], ["y"], reverse=1)]
    _run(tmp_path, nodes, [1, 33, 17, 1], [1, 33, 8, 1], -3, pipeline)


def test_cumsum_then_average_pool_over_rows(tmp_path):
    """CumSum is the chain's producer: its P tile starts at the window's halo (row -1), so tile-local rows
    are off by one from CumSum's (max abs error ~1.9 before the fix)."""
    nodes = [h.make_node("CumSum", ["x", "axis"], ["p"], reverse=1),
             h.make_node("AveragePool", ["p"], ["y"], kernel_shape=[3, 1], pads=[1, 0, 1, 0], strides=[2, 1])]
    _run(tmp_path, nodes, [1, 4, 256, 8], [1, 4, 128, 8], 2, "welder")
