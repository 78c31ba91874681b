"""``graph.nms_select`` (the selection of ONNX NonMaxSuppression): one thread per batch and class runs the
greedy selection of the reference. Instead of sorting (which would need scratch memory), each step scans
the scores for the best candidate ranked below the previous one (score descending, ties to the lower
index), then checks it against the boxes already selected, which it reads back from its own output row.
Quadratic in the box count per class, and a launch of batch x class threads: right for the post-processing
sizes of detection exports, not a fast NMS. The IoU arithmetic is the reference's in f32, products with
``__fmul_rn`` so no FMA contraction moves a box across the threshold."""
from __future__ import annotations

from . import opaque_kernel
from .common import elementwise_facts, elementwise_source_func, params_of


def _extent(box: str, values: list, center: int) -> list:
    """C lines giving ``{box}x0, {box}x1, {box}y0, {box}y1`` (the box's extent) from its four values, as the
    reference's ``box_extent``."""
    p = f"k_{box}"
    v0, v1, v2, v3 = values
    if center:
        return [f"const float {p}hw = {v2} / 2.0f, {p}hh = {v3} / 2.0f;",
                f"const float {p}x0 = {v0} - {p}hw, {p}x1 = {v0} + {p}hw;",
                f"const float {p}y0 = {v1} - {p}hh, {p}y1 = {v1} + {p}hh;"]
    return [f"const float {p}v0 = {v0}, {p}v1 = {v1}, {p}v2 = {v2}, {p}v3 = {v3};",
            f"const float {p}x0 = {p}v1 >= {p}v3 ? {p}v3 : {p}v1, {p}x1 = {p}v1 >= {p}v3 ? {p}v1 : {p}v3;",
            f"const float {p}y0 = {p}v0 >= {p}v2 ? {p}v2 : {p}v0, {p}y1 = {p}v0 >= {p}v2 ? {p}v0 : {p}v2;"]


@opaque_kernel("graph.nms_select", facts=elementwise_facts)
def nms_select_kernel(op, name: str):
    boxes, scores = op.operands[0].type, op.operands[1].type
    n, k = boxes.shape[1], int(op.attributes["max_per_class"])
    classes = scores.shape[1]
    center = int(op.attributes.get("center_point_box", 0))
    params = params_of(op, ["boxes", "scores", "iou_threshold", "score_threshold"], ["out"])
    B, S, IOU, FLOOR, Y = (p["name"] for p in params)
    cand = [f"TL_LD({B}, k_a + {j}LL)" for j in range(4)]
    kept = [f"TL_LD({B}, k_o + {j}LL)" for j in range(4)]
    lines = [
        f"const long long k_base = (k_t / {classes}LL) * {n}LL * 4LL;   // this batch's boxes",
        f"const float k_iou = TL_LD({IOU}, 0LL), k_floor = TL_LD({FLOOR}, 0LL);",
        "long long k_n = 0, k_prev = -1;",
        "float k_prev_s = 0.0f;",
        f"for (long long k_step = 0; k_step < {n}LL && k_n < {k}LL; ++k_step) {{",
        "  long long k_j = -1;",
        "  float k_js = 0.0f;",
        f"  for (long long k_i = 0; k_i < {n}LL; ++k_i) {{",
        f"    const float k_s = TL_LD({S}, k_t * {n}LL + k_i);",
        "    if (k_use_floor && !(k_s > k_floor)) continue;",
        "    if (k_prev >= 0 && !(k_s < k_prev_s || (k_s == k_prev_s && k_i > k_prev))) continue;",
        "    if (k_j < 0 || k_s > k_js) { k_j = k_i; k_js = k_s; }",
        "  }",
        "  if (k_j < 0) break;",
        "  k_prev = k_j;",
        "  k_prev_s = k_js;",
        "  const long long k_a = k_base + k_j * 4LL;",
        *("  " + s for s in _extent("a", cand, center)),
        "  bool k_keep = true;",
        "  for (long long k_m = 0; k_m < k_n && k_keep; ++k_m) {",
        f"    const long long k_o = k_base + TL_LD({Y}, k_t * {k}LL + k_m) * 4LL;",
        *("    " + s for s in _extent("b", kept, center)),
        "    const float k_ix0 = k_bx0 > k_ax0 ? k_bx0 : k_ax0, k_ix1 = k_bx1 < k_ax1 ? k_bx1 : k_ax1;",
        "    const float k_iy0 = k_by0 > k_ay0 ? k_by0 : k_ay0, k_iy1 = k_by1 < k_ay1 ? k_by1 : k_ay1;",
        "    if (k_ix1 <= k_ix0 || k_iy1 <= k_iy0) continue;",
        "    const float k_inter = __fmul_rn(k_ix1 - k_ix0, k_iy1 - k_iy0);",
        "    const float k_area_a = __fmul_rn(k_ax1 - k_ax0, k_ay1 - k_ay0);",
        "    const float k_area_b = __fmul_rn(k_bx1 - k_bx0, k_by1 - k_by0);",
        "    const float k_union = (k_area_a + k_area_b) - k_inter;",
        "    if (k_inter <= 0.0f || k_area_a <= 0.0f || k_area_b <= 0.0f || k_union <= 0.0f) continue;",
        "    if (k_inter / k_union > k_iou) k_keep = false;",
        "  }",
        "  if (k_keep) {",
        f"    TL_ST({Y}, k_t * {k}LL + k_n, k_j);",
        "    ++k_n;",
        "  }",
        "}",
        f"for (long long k_m = k_n; k_m < {k}LL; ++k_m) TL_ST({Y}, k_t * {k}LL + k_m, -1LL);",
    ]
    use_floor = "true" if op.attributes.get("use_score_threshold", 0) else "false"
    lines.insert(2, f"const bool k_use_floor = {use_floor};")
    total = scores.shape[0] * classes
    loaded = total * (n * 4 * (n + k) + n * 4 * 4 * k)   # the scans of the scores, the boxes compared
    return elementwise_source_func(op, name, params, "\n".join(lines), total, loaded)
