"""fold-constants keeps a fresh result of the right type as it is (no second copy of a large folded weight) and
copies one that may be a view of an input constant: no two weights share memory after folding."""
from __future__ import annotations

import itertools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tilec.driver import load_target
from tilec.ir.weights import module_weights
from tilec.passes.pipeline import PassManager, parse_pipeline


def test_folded_weights_are_right_and_share_no_memory(tmp_path):
    w = np.arange(64 * 48, dtype=np.float32).reshape(64, 48) / 7
    nodes = [helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),          # a fresh array
             helper.make_node("Reshape", ["w", "shape"], ["wr"]),                 # a view of w's array
             helper.make_node("MatMul", ["x", "wt"], ["y"]),
             helper.make_node("MatMul", ["x2", "wr"], ["z"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 48]),
                     helper.make_tensor_value_info("x2", TensorProto.FLOAT, [2, 48])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 64]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 64])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([48, 64], np.int64), "shape")])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    module = load_target(str(path))
    PassManager(parse_pipeline("canonicalize,infer-shapes,fold-constants,dce")).run(module)
    arrays = list(module_weights(module).values())
    assert any(a.shape == (48, 64) and np.array_equal(a, w.T) for a in arrays)
    assert sum(a.shape == (48, 64) and np.array_equal(a, w.reshape(48, 64)) for a in arrays) == 1
    for a, b in itertools.combinations(arrays, 2):
        assert not np.shares_memory(a, b)
