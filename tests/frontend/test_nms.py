"""NonMaxSuppression beyond its ONNX node tests: random overlapping boxes (several batches and classes, both
box formats, with and without a score threshold) against ONNX's reference evaluator, in the numpy
interpreter and compiled under the emulator; the row-count representation (``ir/row_counts.py``): the
hidden count never reaches the caller, a consumer of the padded value is refused, constant inputs fold to
the exact result, and an absent or zero max_output_boxes_per_class selects nothing."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError
from tilec.ir.core import main_function
from tilec.runtime.interpreter import run_module

B, N, C = 2, 40, 3


def _model(center=0, inputs=("boxes", "scores", "max_out", "iou", "score"), inits=(), extra_nodes=(), out="sel"):
    nodes = [h.make_node("NonMaxSuppression", list(inputs), ["sel"], center_point_box=center), *extra_nodes]
    ins = [h.make_tensor_value_info("boxes", T.FLOAT, [B, N, 4]), h.make_tensor_value_info("scores", T.FLOAT, [B, C, N])]
    names = {i.name for i in inits}
    ins += [h.make_tensor_value_info(n, T.FLOAT if n != "max_out" else T.INT64, [1])
            for n in inputs[2:] if n and n not in names]
    outs = [h.make_tensor_value_info(out, T.INT64, None)]
    g = h.make_graph(nodes, "nms", [i for i in ins if i.name not in names], outs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", 13)])


def _boxes(center: int, seed: int = 0):
    """Boxes clustered around a few centres so that many overlap, some exactly alike, in either format."""
    rng = np.random.default_rng(seed)
    centres = rng.random((B, 4, 2)) * 10
    pick = rng.integers(0, 4, size=(B, N))
    xy = np.take_along_axis(centres, pick[..., None], axis=1) + rng.normal(0, 0.4, (B, N, 2))
    wh = rng.random((B, N, 2)) * 2 + 1.5
    xy[:, 3] = xy[:, 2]
    wh[:, 3] = wh[:, 2]   # two identical boxes (equal IoU 1) with equal scores: ties go to the lower index
    if center:
        boxes = np.concatenate([xy, wh], axis=-1)
    else:   # [y1, x1, y2, x2], corners swapped in half of them (the format allows either order)
        lo, hi = xy - wh / 2, xy + wh / 2
        boxes = np.stack([lo[..., 1], lo[..., 0], hi[..., 1], hi[..., 0]], axis=-1)
        boxes[:, ::2] = boxes[:, ::2][..., [2, 3, 0, 1]]
    scores = rng.random((B, C, N)).round(2)   # rounded: equal scores happen
    scores[:, :, 3] = scores[:, :, 2]
    return boxes.astype(np.float32), scores.astype(np.float32)


def _feeds(center, max_out=7, iou=0.3, score=0.25, seed=0):
    boxes, scores = _boxes(center, seed)
    return {"boxes": boxes, "scores": scores, "max_out": np.array([max_out], np.int64),
            "iou": np.array([iou], np.float32), "score": np.array([score], np.float32)}


def _reference(model, feeds):
    from onnx.reference import ReferenceEvaluator
    names = [i.name for i in model.graph.input]
    return ReferenceEvaluator(model).run(None, {k: v for k, v in feeds.items() if k in names})[0]


def _import(model, feeds):
    frozen = {"max_out": feeds["max_out"]} if any(i.name == "max_out" for i in model.graph.input) else {}
    return import_onnx(model, {"boxes": (B, N, 4), "scores": (B, C, N)}, frozen_inputs=frozen)


def _args(model, feeds):
    return {k: v for k, v in feeds.items() if k in {i.name for i in model.graph.input} and k != "max_out"}


@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("inputs", [("boxes", "scores", "max_out", "iou", "score"),
                                    ("boxes", "scores", "max_out", "iou")], ids=["score-threshold", "no-threshold"])
def test_matches_onnx_reference_in_the_interpreter(center, inputs):
    model = _model(center, inputs)
    for seed in range(3):
        feeds = _feeds(center, seed=seed)
        want = _reference(model, feeds)
        got = run_module(_import(model, feeds), _args(model, feeds))
        assert list(got) == ["sel"]   # the hidden row count is not an output
        assert got["sel"].dtype == np.int64 and 0 < len(want) < B * C * 7
        np.testing.assert_array_equal(got["sel"], want)


def test_compiled_under_the_emulator_matches_onnx_reference(tmp_path):
    """Both box formats in one graph (two NonMaxSuppression nodes, two row counts), compiled with the
    default pipeline: the selection kernel and the compaction run on the device."""
    import tilec
    second = h.make_node("NonMaxSuppression", ["boxes", "scores", "max_out", "iou", "score"], ["sel_c"],
                         center_point_box=1)
    model = _model(0, extra_nodes=[second])
    model.graph.output.append(h.make_tensor_value_info("sel_c", T.INT64, None))
    model.graph.input.remove(next(i for i in model.graph.input if i.name == "max_out"))
    model.graph.initializer.append(numpy_helper.from_array(np.array([5], np.int64), "max_out"))
    feeds = _feeds(0, max_out=5)
    want = {"sel": _reference(model, feeds)}
    want["sel_c"] = _reference(_model(1, inits=[numpy_helper.from_array(np.array([5], np.int64), "max_out")]), feeds)
    compiled = tilec.compile(model, backend="emu", input_shapes={"boxes": (B, N, 4), "scores": (B, C, N)})
    assert compiled.output_names == ["sel", "sel_c"]
    got = compiled(**_args(model, feeds))
    assert sorted(got) == ["sel", "sel_c"]
    assert compiled.run_report()["totals"]["host_ops"] == 0   # selection and compaction ran on the device
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("max_out", [None, 0])
def test_no_limit_selects_nothing(max_out):
    inputs = ("boxes", "scores", "max_out" if max_out is not None else "", "iou")
    model = _model(0, inputs)
    feeds = _feeds(0, max_out=max_out or 0)
    got = run_module(_import(model, feeds), _args(model, feeds))["sel"]
    assert got.shape == (0, 3) and got.dtype == np.int64
    if max_out is not None:   # (ONNX's reference evaluator raises without the input; the spec's default is 0)
        assert _reference(model, feeds).size == 0


def test_constant_boxes_fold_to_the_exact_result():
    feeds = _feeds(0)
    inits = [numpy_helper.from_array(feeds[k], k) for k in ("boxes", "scores", "max_out", "iou", "score")]
    model = _model(0, inits=inits)
    module = import_onnx(model)
    fn = main_function(module)
    assert "result_rows" not in fn.attributes   # a constant of the exact shape, no row count
    want = _reference(model, feeds)
    assert fn.attributes["function_type"].results[0].shape == want.shape
    np.testing.assert_array_equal(run_module(module, {})["sel"], want)


def test_row_count_in_the_ir():
    feeds = _feeds(0)
    fn = main_function(_import(_model(0), feeds))
    assert fn.attributes["result_rows"] == {"sel": "sel.rows"}
    assert fn.attributes["result_names"] == ["sel", "sel.rows"]
    padded, count = fn.attributes["function_type"].results
    assert padded.shape == (B * C * 7, 3) and count.shape == () and count.dtype == "i64"


def test_a_consumer_of_the_padded_rows_is_refused():
    cast = h.make_node("Cast", ["sel"], ["sel_f"], to=T.FLOAT, name="to_float")
    model = _model(0, extra_nodes=[cast], out="sel_f")
    model.graph.output[0].type.tensor_type.elem_type = T.FLOAT
    with pytest.raises(CompileError) as e:
        _import(model, _feeds(0))
    msg = str(e.value)
    assert "'sel' has a row count that depends on the data" in msg and "'Cast'" in msg and "to_float" in msg
