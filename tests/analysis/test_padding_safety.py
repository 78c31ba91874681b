"""``analysis/padding.py`` rule by rule, and ``frontend/shape_uses.py``: each case is a one- or two-node ONNX
graph imported at one shape, with the dynamic axes labeled ``b`` (and ``s``)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.analysis.padding import padding_facts
from tilec.frontend.importer import import_onnx
from tilec.frontend.shape_uses import size_value_uses


def _model(nodes, inputs: dict, out_shape, inits=None, out_type=TensorProto.FLOAT, opset: int = 17):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", out_type, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _facts(nodes, inputs: dict, labels: dict, out_shape=None, inits=None, **kw):
    """Import the graph at ``inputs``' shapes and run the analysis with ``labels`` per input."""
    module = import_onnx(_model(nodes, inputs, out_shape, inits, **kw))
    return padding_facts(module, labels)


def _node(op, ins, **attrs):
    return helper.make_node(op, ins, ["y"], **attrs)


def _w(*shape):
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def test_elementwise_with_broadcast_keeps_the_label():
    f = _facts([_node("Add", ["x", "bias"])], {"x": [4, 3]}, {"x": ("b", None)}, inits={"bias": _w(3)})
    assert f.safe("b") and f.outputs["y"] == {"b": 0}


def test_a_labeled_axis_broadcast_from_size_one_is_unsafe():
    f = _facts([_node("Add", ["x", "z"])], {"x": [1, 3], "z": [5, 3]}, {"x": ("b", None)})
    assert not f.safe("b") and "broadcast" in f.unsafe["b"]


def test_two_dims_meeting_on_one_axis_are_both_unsafe():
    f = _facts([_node("Add", ["x", "z"])], {"x": [4, 3], "z": [4, 3]}, {"x": ("b", None), "z": ("s", None)})
    assert not f.safe("b") and not f.safe("s")


def test_a_label_on_two_axes_is_unsafe():
    f = _facts([_node("Mul", ["x", "z"])], {"x": [4, 1], "z": [1, 4]}, {"x": ("b", None), "z": (None, "b")})
    assert not f.safe("b") and "two axes" in f.unsafe["b"]


def test_matmul_keeps_batch_and_m_and_n():
    f = _facts([_node("MatMul", ["x", "w"])], {"x": [2, 4, 3]}, {"x": ("b", "s", None)}, inits={"w": _w(3, 5)})
    assert f.safe("b") and f.safe("s") and f.outputs["y"] == {"b": 0, "s": 1}
    f = _facts([_node("MatMul", ["w", "x"])], {"x": [3, 4]}, {"x": (None, "b")}, inits={"w": _w(5, 3)})
    assert f.safe("b") and f.outputs["y"] == {"b": 1}


def test_matmul_contracting_a_labeled_k_is_unsafe():
    f = _facts([_node("MatMul", ["x", "w"])], {"x": [2, 4]}, {"x": (None, "b")}, inits={"w": _w(4, 5)})
    assert not f.safe("b") and "contracted" in f.unsafe["b"]


@pytest.mark.parametrize("trans_a, labeled_axis, safe", [(0, 0, True), (0, 1, False), (1, 1, True),
                                                         (1, 0, False)])
def test_gemm_keeps_m_and_refuses_k(trans_a, labeled_axis, safe):
    shape = [4, 3] if not trans_a else [3, 4]
    labels = tuple("b" if i == labeled_axis else None for i in range(2))
    f = _facts([_node("Gemm", ["x", "w", "c"], transA=trans_a)], {"x": shape}, {"x": labels},
               inits={"w": _w(3, 5), "c": _w(5)})
    assert f.safe("b") is safe


@pytest.mark.parametrize("axes, keepdims, out_axis", [([1], 1, 0), ([0], 0, None), ([0], 1, None)])
def test_reductions(axes, keepdims, out_axis):
    f = _facts([_node("ReduceSum", ["x", "axes"], keepdims=keepdims)], {"x": [4, 3]}, {"x": ("b", None)},
               inits={"axes": np.int64(axes)})
    assert f.safe("b") is (out_axis is not None)
    if out_axis is not None:
        assert f.outputs["y"] == {"b": out_axis}


def test_reduction_keepdims_0_moves_the_label():
    f = _facts([_node("ReduceMean", ["x", "axes"], keepdims=0)], {"x": [3, 4]}, {"x": (None, "b")},
               inits={"axes": np.int64([0])}, opset=18)
    assert f.safe("b") and f.outputs["y"] == {"b": 0}


@pytest.mark.parametrize("axis, safe", [(-1, False), (1, True)])
def test_softmax(axis, safe):
    f = _facts([_node("Softmax", ["x"], axis=axis)], {"x": [2, 4, 3]}, {"x": (None, None, "s")})
    assert f.safe("s") is safe


def test_layer_norm_over_a_labeled_axis_is_unsafe_and_over_others_safe():
    inits = {"g": _w(3), "bb": _w(3)}
    f = _facts([_node("LayerNormalization", ["x", "g", "bb"], axis=-1)], {"x": [4, 3]}, {"x": ("b", None)},
               inits=inits)
    assert f.safe("b")
    f = _facts([_node("LayerNormalization", ["x", "g", "bb"], axis=0)], {"x": [4, 3]}, {"x": ("b", None)},
               inits={"g": _w(4, 3), "bb": _w(4, 3)})
    assert not f.safe("b") and "normalised" in f.unsafe["b"]


def test_transpose_permutes():
    f = _facts([_node("Transpose", ["x"], perm=[1, 2, 0])], {"x": [4, 2, 3]}, {"x": ("b", "s", None)})
    assert f.outputs["y"] == {"b": 2, "s": 0}


@pytest.mark.parametrize("src, dst, labels, out", [
    ([4, 6], [4, 2, 3], ("b", None), {"b": 0}),          # splitting another dim
    ([3, 5, 4], [3, 5, 2, 2], (None, "b", None), {"b": 1}),
    ([2, 5, 4], [10, 4], (None, "b", None), None),        # merged with the dim before it
    ([5, 4], [20], ("b", None), None),
    ([6, 4], [3, 2, 4], ("b", None), None),               # split
])
def test_reshape_keeps_a_label_only_one_to_one(src, dst, labels, out):
    f = _facts([_node("Reshape", ["x", "shape"])], {"x": src}, {"x": labels},
               inits={"shape": np.int64(dst)})
    if out is None:
        assert not f.safe("b") and "merged or split" in f.unsafe["b"]
    else:
        assert f.safe("b") and f.outputs["y"] == out


@pytest.mark.parametrize("axis, safe", [(0, False), (1, True)])
def test_concat(axis, safe):
    f = _facts([_node("Concat", ["x", "z"], axis=axis)], {"x": [4, 3], "z": [4, 3]}, {"x": ("b", None)})
    assert f.safe("b") is safe


def test_slice_along_a_labeled_axis_is_unsafe_unless_it_keeps_all():
    def run(starts, ends, steps):
        return _facts([_node("Slice", ["x", "st", "en", "ax", "sp"])], {"x": [4, 3]}, {"x": ("b", None)},
                      inits={"st": np.int64(starts), "en": np.int64(ends), "ax": np.int64([0]),
                             "sp": np.int64(steps)})
    assert not run([1], [4], [1]).safe("b")
    assert not run([-1], [-5], [-1]).safe("b")          # same size, reversed
    assert run([0], [100], [1]).safe("b")


def test_gather_along_a_labeled_axis_is_unsafe_and_labeled_indices_label_the_output():
    f = _facts([_node("Gather", ["x", "i"], axis=0)], {"x": [4, 3]}, {"x": ("b", None)},
               inits={"i": np.int64([0, 2])})
    assert not f.safe("b")
    table = _w(10, 3)
    model = helper.make_model(helper.make_graph(
        [_node("Gather", ["t", "ids"], axis=0)], "g",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(table, "t")]),
        opset_imports=[helper.make_opsetid("", 17)])
    f = padding_facts(import_onnx(model), {"ids": ("b", "s")})
    assert f.safe("b") and f.safe("s") and f.outputs["y"] == {"b": 0, "s": 1}


def test_conv_keeps_batch_only():
    f = _facts([_node("Conv", ["x", "w"], pads=[1, 1, 1, 1])], {"x": [2, 3, 5, 5]},
               {"x": ("b", None, "h", None)}, inits={"w": _w(4, 3, 3, 3)})
    assert f.safe("b") and not f.safe("h") and f.outputs["y"] == {"b": 0}


@pytest.mark.parametrize("equation, labels, out", [
    ("bk,kn->bn", ("b", None), {"b": 0}), ("bk,kn->nb", ("b", None), {"b": 1}),
    ("bk,kn", ("b", None), {"b": 0}),                    # implicit output: b and n, sorted
    ("bk,kn->n", ("b", None), None), ("bk,kn->bn", (None, "k"), None), ("...k,kn->...n", ("b", None), None)])
def test_einsum(equation, labels, out):
    f = _facts([_node("Einsum", ["x", "w"], equation=equation)], {"x": [4, 3]}, {"x": labels},
               inits={"w": _w(3, 2)})
    label = next(x for x in labels if x)
    assert f.safe(label) is (out is not None)
    if out is not None:
        assert f.outputs["y"] == out


def test_an_op_without_a_rule_is_unsafe():
    f = _facts([_node("CumSum", ["x", "axis"])], {"x": [4, 3]}, {"x": ("b", None)},
               inits={"axis": np.int64(1)})
    assert f.safe("b")   # CumSum has a rule: along another axis
    f = _facts([_node("DepthToSpace", ["x"], blocksize=2)], {"x": [2, 4, 2, 2]}, {"x": ("b", None, None, None)})
    assert not f.safe("b") and "no padding rule" in f.unsafe["b"]


def test_unlabeled_dims_stay_untouched():
    f = _facts([_node("Einsum", ["x", "w"], equation="...k,kn->...n")], {"x": [4, 3]}, {"x": (None, None)},
               inits={"w": _w(3, 2)})
    assert f.unsafe == {} and f.outputs["y"] == {}


def _shape_model(nodes):
    inits = {"one": np.int64(1), "zero": np.int64(0), "last": np.int64(-1), "ends": np.int64([2]),
             "starts": np.int64([1])}
    return _model(nodes, {"x": ["batch", 8]}, None, inits=inits)


def _value_use(index: str, *, sliced: bool = False, size: bool = False):
    """x / Cast(Shape(x)[index]) (or Size(x), or Shape(x)[1:2] squeezed) as a float."""
    pick = ([helper.make_node("Slice", ["s", "starts", "ends"], ["n"])] if sliced else
            [helper.make_node("Gather", ["s", index], ["n"], axis=0)])
    source = [helper.make_node("Size", ["x"], ["n"])] if size else [helper.make_node("Shape", ["x"], ["s"])] + pick
    return _shape_model(source + [helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT, name="to_float"),
                                  helper.make_node("Div", ["x", "nf"], ["y"])])


def test_sizes_that_only_shape_things_are_fine():
    m = _shape_model([helper.make_node("Shape", ["x"], ["s"]),
                      helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
                      helper.make_node("Range", ["zero", "n", "one"], ["r"]),
                      helper.make_node("Reshape", ["x", "s"], ["y"])])
    assert size_value_uses(m) == []


@pytest.mark.parametrize("model, found", [
    (lambda: _value_use("zero"), True),                   # the dynamic batch, as a number
    (lambda: _value_use("last"), False),                  # the fixed 8: a constant in every bucket
    (lambda: _value_use("", sliced=True), False),         # Shape(x)[1:2], fixed too
    (lambda: _value_use("", size=True), True),            # the element count depends on the batch
])
def test_a_dynamic_size_used_as_a_value_is_found(model, found):
    assert size_value_uses(model()) == ([("Cast 'to_float'", frozenset({"batch"}))] if found else [])


def test_a_size_that_only_cuts_a_slice_or_picks_a_shape_is_fine():
    """HF's ``buffer[:, :seq]`` and torch's ``Where(Equal(shape, -1), 1, shape)`` before an Expand."""
    m = _shape_model([helper.make_node("Shape", ["x"], ["s"]),
                      helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
                      helper.make_node("Unsqueeze", ["n", "zero"], ["n1"]),
                      helper.make_node("Slice", ["x", "zero1", "n1"], ["cut"]),
                      helper.make_node("Equal", ["s", "minus1"], ["is_any"]),
                      helper.make_node("Where", ["is_any", "ones", "s"], ["target"]),
                      helper.make_node("Expand", ["cut", "target"], ["y"])])
    m.graph.initializer.extend([numpy_helper.from_array(np.int64([0]), "zero1"),
                                numpy_helper.from_array(np.int64([-1, -1]), "minus1"),
                                numpy_helper.from_array(np.int64([1, 1]), "ones")])
    assert size_value_uses(m) == []
