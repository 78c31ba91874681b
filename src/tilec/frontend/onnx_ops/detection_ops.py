"""Converter for ONNX NonMaxSuppression, whose output's row count depends on the data.

``graph.nms_select`` picks, per batch and class, up to ``max_output_boxes_per_class`` box indices (then
-1): a hand-written kernel, one thread per batch and class (``backend/opaque/nms_select.py``). The ONNX
output ``[num_selected, 3]`` is then built from existing graph ops at its largest size (every slot) with
the selected rows first: an exclusive running sum of the valid slots gives each its row, a ScatterND puts
``(batch, class, box)`` there (invalid slots all land on one spare row, cut off), and the number of valid
slots is the row count the runtimes slice to (``ir/row_counts.py``). max_output_boxes_per_class decides
the size, so it must be known at import (``--freeze-input`` for a graph input); the thresholds may be
run-time scalars. With constant boxes and scores the whole node folds to its exact result.
"""
from __future__ import annotations

import numpy as np

from ..registry import converter
from .compose import Emitter


@converter("NonMaxSuppression", since=10)
def non_max_suppression(ctx, node):
    boxes, scores = ctx.input(node, 0), ctx.input(node, 1)
    if boxes.type.rank != 3 or scores.type.rank != 3:
        raise ctx.error(node, f"boxes {list(boxes.type.shape)} and scores {list(scores.type.shape)} must be "
                              "[batches, boxes, 4] and [batches, classes, boxes]")
    batches, n_boxes, classes = boxes.type.shape[0], boxes.type.shape[1], scores.type.shape[1]
    center = int(ctx.attr(node, "center_point_box", 0))
    if center not in (0, 1):
        raise ctx.error(node, f"center_point_box must be 0 or 1, not {center}")
    k = 0
    if ctx.has_input(node, 2):
        limit = ctx.const_input(node, 2, "max_output_boxes_per_class").reshape(-1)
        k = max(int(limit[0]), 0) if limit.size else 0
    k = min(k, n_boxes)
    if k == 0 or batches * classes == 0:   # ONNX's default of 0 selects nothing
        return [ctx.constant(np.zeros((0, 3), np.int64))]
    e = Emitter(ctx)
    iou = _scalar(ctx, e, node, 3, "iou_threshold")
    floor = _scalar(ctx, e, node, 4, "score_threshold")
    attrs = {"max_per_class": k, "center_point_box": center, "use_score_threshold": int(ctx.has_input(node, 4))}
    chosen = ctx.emit("graph.nms_select", [boxes, scores, iou, floor], attrs)[0]   # [B, C, k], -1 padded
    slots = batches * classes * k
    flat = e.reshape(chosen, [slots])
    valid = e.op("greater_or_equal", [flat, e.const(0, "i64")])
    ones = e.cast(valid, "i64")
    count = e.op("reduce_sum", [ones], axes=[0], keepdims=0)
    row = e.op("where", [valid, e.op("cum_sum", [ones], axis=0, exclusive=1), e.const(slots, "i64")])
    bc = np.stack(np.unravel_index(np.arange(slots) // k, (batches, classes)), axis=1)
    triples = e.op("concat", [e.const(bc, "i64"), e.reshape(flat, [slots, 1])], axis=1)
    zeros = e.op("expand", [e.const(np.zeros((1, 1)), "i64")], shape=[slots + 1, 3])
    spread = e.op("scatter_nd", [zeros, e.reshape(row, [slots, 1]), triples])
    rows = e.op("slice", [spread], starts=[0, 0], ends=[slots, 3], steps=[1, 1])
    if hasattr(rows, "array") and hasattr(count, "array"):   # folded: constant boxes and scores
        return [ctx.constant(rows.array[:int(count.array)])]
    rows, count = ctx.value(rows), ctx.value(count)
    ctx.row_counts[rows] = count
    return [rows]


def _scalar(ctx, e, node, i: int, what: str):
    """Optional threshold input ``i`` as an f32 scalar (0 when absent, as ONNX's default)."""
    if not ctx.has_input(node, i):
        return e.const(0.0, "f32")
    t = ctx.input_type(node, i)
    if t.dtype != "f32" or t.numel != 1:
        raise ctx.error(node, f"{what} must be one f32 value, not {t}")
    return e.reshape(ctx.input(node, i), [])
