"""Reference of ``graph.nms_select`` (the selection step of ONNX NonMaxSuppression), in float32 as
ONNX's reference evaluator computes it, so a box at exactly the IoU threshold is decided the same way."""
from __future__ import annotations

import numpy as np

from . import reference


def box_extent(box: np.ndarray, center_point_box: int) -> tuple:
    """``(x_min, x_max, y_min, y_max)`` of one box, f32: corners in either order ([y1, x1, y2, x2]), or a
    centre and a size ([x_center, y_center, width, height])."""
    if center_point_box:
        half_w, half_h = box[2] / np.float32(2), box[3] / np.float32(2)
        return box[0] - half_w, box[0] + half_w, box[1] - half_h, box[1] + half_h
    return min(box[1], box[3]), max(box[1], box[3]), min(box[0], box[2]), max(box[0], box[2])


def suppresses(a: np.ndarray, b: np.ndarray, center_point_box: int, iou_threshold: np.float32) -> bool:
    """Whether boxes ``a`` and ``b`` overlap by an IoU above the threshold (an empty box never does)."""
    ax0, ax1, ay0, ay1 = box_extent(a, center_point_box)
    bx0, bx1, by0, by1 = box_extent(b, center_point_box)
    ix0, ix1, iy0, iy1 = max(ax0, bx0), min(ax1, bx1), max(ay0, by0), min(ay1, by1)
    if ix1 <= ix0 or iy1 <= iy0:
        return False
    inter = (ix1 - ix0) * (iy1 - iy0)
    area_a, area_b = (ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0)
    union = area_a + area_b - inter
    if inter <= 0 or area_a <= 0 or area_b <= 0 or union <= 0:
        return False
    return bool(inter / union > iou_threshold)


@reference("graph.nms_select")
def nms_select(inputs, attrs):
    boxes, scores = np.asarray(inputs[0], np.float32), np.asarray(inputs[1], np.float32)
    iou, floor = np.float32(inputs[2]), np.float32(inputs[3])
    k, cpb = int(attrs["max_per_class"]), int(attrs.get("center_point_box", 0))
    out = np.full(scores.shape[:2] + (k,), -1, dtype=np.int64)
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            cand = [i for i in range(s.size) if not attrs.get("use_score_threshold") or s[i] > floor]
            cand.sort(key=lambda i: (-s[i], i))   # score descending, ties to the lower index
            chosen: list = []
            for i in cand:
                if len(chosen) == k:
                    break
                if not any(suppresses(boxes[b, i], boxes[b, j], cpb, iou) for j in chosen):
                    chosen.append(i)
            out[b, c, :len(chosen)] = chosen
    return [out]
