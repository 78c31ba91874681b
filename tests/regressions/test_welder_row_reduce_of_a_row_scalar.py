"""Found by the full-pipeline fuzzer (seed 6663, rammer pipeline; welder and grinder too): Welder put
ReduceSumSquare(axis 1) of a 5x2 tensor and a ReduceMean(axis 1) of its 5x1 result into one "row" group of
length 2. ``_row_shape`` (analysis/welder/search.py) discards reduce extents of 1, and the row lowering
(fusion/row/kernel.py) folds every reduction member over the whole row, so the second reduction added
the row scalar twice (2x the right value). Fixed: a reduction joins a row group only if its reduce extent is
the row length; here the two reductions stay apart (checked below) and the result is right."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor


@pytest.mark.parametrize("pipeline", ["none", "welder"])
def test_reduce_of_a_keepdims_reduction_in_one_row_group(tmp_path, pipeline):
    axes = nh.from_array(np.array([1], np.int64), "axes")
    nodes = [h.make_node("ReduceSumSquare", ["x", "axes"], ["s"], keepdims=1),
             h.make_node("ReduceMean", ["s", "axes"], ["y"], keepdims=1)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, [5, 2])],
                     [h.make_tensor_value_info("y", T.FLOAT, [5, 1])], [axes])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline=pipeline)
    # the two reductions run as two kernels (no kernel's origin holds both)
    assert "graph.reduce_sum_square+" not in (tmp_path / "b" / "model.tir").read_text()
    x = np.random.default_rng(0).uniform(-2, 2, (5, 2)).astype(np.float32)
    y = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["y"]
    np.testing.assert_allclose(y, (x * x).sum(axis=1, keepdims=True), rtol=1e-5)
