"""NN and shape ops (engineer B's family): each small model is checked three ways — the graph IR against
onnxruntime, the decomposed tensor expressions against the graph IR — plus the import-time
normalisations and error paths the ONNX node tests do not reach."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError, parse_module, print_module, verify
from tilec.passes import get_pass
from tilec.runtime.interpreter import run_module

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, None) for n, t in outputs],
                              initializer=list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _check(model, feeds, atol=1e-5):
    """Graph IR == onnxruntime, decomposed == graph IR, and the IR round-trips through text."""
    import onnxruntime as ort
    want = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    module = import_onnx(model)
    got = run_module(module, feeds)
    for w, g in zip(want, got.values()):
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)
    text = print_module(module)
    assert print_module(parse_module(text)) == text
    get_pass("decompose").apply(module)
    verify(module)
    for w, g in zip(want, run_module(module, feeds).values()):
        np.testing.assert_allclose(g, w, atol=atol, rtol=1e-5)
    return module


def _w(name, shape, seed=0):
    return onnx.numpy_helper.from_array(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), name)


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("group,cin,cout,kernel,attrs", [
    (1, 3, 4, (3, 3), {"strides": [2, 2], "pads": [1, 0, 1, 2], "dilations": [1, 2]}),
    (2, 4, 6, (3, 3), {"auto_pad": "SAME_UPPER"}),
    (4, 4, 4, (3, 3), {"pads": [1, 1, 1, 1]}),          # depthwise
    (4, 4, 8, (3, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),  # channel multiplier 2
    (1, 2, 3, (3,), {"pads": [2, 0]}),                  # 1-D
    (1, 2, 3, (2, 2, 2), {"strides": [1, 2, 1]}),       # 3-D
    (1, 2, 3, (1, 1), {"pads": [0, 0, 1, 1]}),          # 1x1 whose output outgrows the input
])
def test_conv(group, cin, cout, kernel, attrs):
    spatial = (7,) * len(kernel)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=group, **attrs)
    inits = [_w("w", (cout, cin // group, *kernel)), _w("b", (cout,), 2)]
    _check(_model([node], [("x", F, (1, cin, *spatial))], [("y", F)], inits), {"x": _x(1, cin, *spatial)})


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("MaxPool", {"kernel_shape": [2, 2], "dilations": [2, 2], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [2, 2], "auto_pad": "SAME_UPPER"}),
])
def test_pool(op, attrs):
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    _check(_model([node], [("x", F, (1, 2, 6, 6))], [("y", F)], opset=19), {"x": _x(1, 2, 6, 6)})


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad(mode):
    pads = onnx.numpy_helper.from_array(np.array([0, 2, 1, 0, 1, 2], dtype=np.int64), "pads")
    value = onnx.numpy_helper.from_array(np.array(1.5, dtype=np.float32), "v")
    node = helper.make_node("Pad", ["x", "pads", "v"], ["y"], mode=mode)
    _check(_model([node], [("x", F, (2, 3, 4))], [("y", F)], [pads, value], opset=19), {"x": _x(2, 3, 4)})


def test_shape_ops_chain():
    """Slice with a negative step and clamped bounds, Split, Concat, Tile, Transpose, Expand, Trilu,
    DepthToSpace / SpaceToDepth in one graph."""
    c = lambda n, v: onnx.numpy_helper.from_array(np.asarray(v, dtype=np.int64), n)  # noqa: E731
    nodes = [
        helper.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["s"]),
        helper.make_node("Split", ["x"], ["p0", "p1", "p2"], axis=1, num_outputs=3),
        helper.make_node("Concat", ["p2", "s", "p0"], ["cat"], axis=1),
        helper.make_node("Tile", ["cat", "reps"], ["t"]),
        helper.make_node("Transpose", ["t"], ["tt"], perm=[2, 0, 3, 1]),
        helper.make_node("Expand", ["x", "eshape"], ["e"]),
        helper.make_node("Trilu", ["x", "k"], ["tri"], upper=0),
        helper.make_node("SpaceToDepth", ["x"], ["sd"], blocksize=2),
        helper.make_node("DepthToSpace", ["sd"], ["ds"], blocksize=2, mode="CRD"),
    ]
    inits = [c("st", [100, -1]), c("en", [-100, -100]), c("ax", [1, 3]), c("sp", [-2, -1]), c("reps", [1, 2, 1, 1]),
             c("eshape", [2, 1, 1, 1]), c("k", [1])]
    outs = [("tt", F), ("e", F), ("tri", F), ("ds", F)]
    module = _check(_model(nodes, [("x", F, (1, 8, 4, 6))], outs, inits, opset=18), {"x": _x(1, 8, 4, 6)})
    assert not [op for op in module.walk() if op.name.startswith("graph.")]


def test_gather_with_constant_indices_is_a_slice():
    idx = onnx.numpy_helper.from_array(np.array([[3, 2], [1, 0]], dtype=np.int64), "i")
    scalar = onnx.numpy_helper.from_array(np.array(1, dtype=np.int64), "j")
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"], axis=1),
             helper.make_node("Gather", ["x", "j"], ["z"], axis=0)]
    module = _check(_model(nodes, [("x", F, (3, 5))], [("y", F), ("z", F)], [idx, scalar]), {"x": _x(3, 5)})
    assert not [op for op in module.walk() if op.name == "graph.gather"]


def test_matmul_gemm_einsum():
    nodes = [helper.make_node("MatMul", ["a", "b"], ["m"]),
             helper.make_node("Gemm", ["a2", "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Einsum", ["a", "b4"], ["e"], equation="...ij,...jk->...ik"),
             helper.make_node("MatMul", ["v", "b"], ["mv"])]
    inits = [_w("w", (5, 4)), _w("c", (5,), 3)]
    ins = [("a", F, (2, 1, 3, 4)), ("b", F, (3, 4, 6)), ("a2", F, (3, 4)), ("v", F, (4,)), ("b4", F, (2, 1, 4, 6))]
    feeds = {"a": _x(2, 1, 3, 4), "b": _x(3, 4, 6, seed=2), "a2": _x(3, 4, seed=3), "v": _x(4, seed=4),
             "b4": _x(2, 1, 4, 6, seed=5)}
    _check(_model(nodes, ins, [("m", F), ("g", F), ("e", F), ("mv", F)], inits), feeds)


def test_cumsum_and_reshape_views():
    axis = onnx.numpy_helper.from_array(np.array(-1, dtype=np.int64), "axis")
    shape = onnx.numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape")
    nodes = [helper.make_node("CumSum", ["x", "axis"], ["c"], exclusive=1, reverse=1),
             helper.make_node("Reshape", ["c", "shape"], ["r"])]
    module = _check(_model(nodes, [("x", F, (2, 3, 4))], [("r", F)], [axis, shape]), {"x": _x(2, 3, 4)})
    reshape = next(op for op in module.walk() if op.name == "graph.reshape")
    assert reshape.attributes["shape"] == [2, 12]


_POOLS = [((2, 3, 7, 6), dict(kernel_shape=[3, 2], strides=[2, 1], pads=[1, 0, 1, 1])),
          ((2, 3, 7, 6), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 1], ceil_mode=1, storage_order=1)),
          ((1, 2, 8, 9), dict(kernel_shape=[2, 2], dilations=[2, 3], strides=[1, 2])),
          ((2, 2, 11), dict(kernel_shape=[4], strides=[3], pads=[2, 1])),
          ((1, 2, 4, 5, 6), dict(kernel_shape=[2, 3, 2], strides=[2, 1, 2], pads=[1, 0, 1, 0, 1, 0], storage_order=1))]


@pytest.mark.parametrize("shape,attrs", _POOLS, ids=["pads", "ceil-colmajor", "dilated", "1d", "3d-colmajor"])
def test_maxpool_indices_match_onnxruntime(shape, attrs):
    # Values rounded to one decimal: windows with equal maxima, where the first in scan order must win.
    x = np.random.default_rng(0).standard_normal(shape).round(1).astype(np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], name="pool1", **attrs)
    model = _model([node], [("x", F, shape)], [("y", F), ("i", TensorProto.INT64)])
    module = _check(model, {"x": x})
    assert run_module(module, {"x": x})["i"].dtype == np.int64


def test_maxpool_indices_under_the_emulator():
    import onnxruntime as ort

    import tilec
    shape, attrs = _POOLS[1]
    x = np.random.default_rng(1).standard_normal(shape).round(1).astype(np.float32)
    model = _model([helper.make_node("MaxPool", ["x"], ["y", "i"], **attrs)], [("x", F, shape)],
                   [("y", F), ("i", TensorProto.INT64)])
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    got = tilec.compile(model, backend="emu").run(None, {"x": x})
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_non_constant_shape_input_names_the_node():
    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")
    model = _model([node], [("x", F, (2, 3)), ("s", TensorProto.INT64, (2,))], [("y", F)])
    with pytest.raises(CompileError, match="shape.*must be a constant.*'rs'"):
        import_onnx(model)


def test_bad_reshape_is_a_compile_error():
    shape = onnx.numpy_helper.from_array(np.array([4, -1], dtype=np.int64), "s")
    node = helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")
    with pytest.raises(CompileError, match="rs"):
        import_onnx(_model([node], [("x", F, (2, 3))], [("y", F)], [shape]))
