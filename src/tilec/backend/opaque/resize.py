"""``graph.resize`` (ONNX Resize), nearest and (multi-)linear: one thread per output element maps its
coordinate back per resized dim (``coordinate_transformation_mode``) and reads 1 or 2^k input elements.
Linear interpolation clamps the source coordinate to the input (as onnxruntime does). ``antialias``
(a filter whose width grows as the scale shrinks) has no kernel here and stays on the host."""
from __future__ import annotations

import math

from ...ir.types import itemsize
from . import opaque_kernel
from .common import coords, elementwise_facts, elementwise_source_func, linear, params_of

_TRANSFORMS = {
    "half_pixel": "((float)({x}) + 0.5f) / {s} - 0.5f",
    "pytorch_half_pixel": "({one} ? -0.5f : ((float)({x}) + 0.5f) / {s} - 0.5f)",
    "align_corners": "({one} ? 0.0f : (float)({x}) * {a}f)",
    "asymmetric": "(float)({x}) / {s}",
    "tf_half_pixel_for_nn": "((float)({x}) + 0.5f) / {s}",
}
_NEAREST = {
    "round_prefer_floor": "(({v}) == floorf({v}) + 0.5f ? floorf({v}) : rintf({v}))",
    "round_prefer_ceil": "(({v}) == floorf({v}) + 0.5f ? ceilf({v}) : rintf({v}))",
    "floor": "floorf({v})",
    "ceil": "ceilf({v})",
}


@opaque_kernel("graph.resize", facts=elementwise_facts)
def resize_kernel(op, name: str):
    x, out = op.operands[0].type, op.results[0].type
    mode = op.attributes.get("mode", "nearest")
    ctm = op.attributes.get("coordinate_transformation_mode", "half_pixel")
    nearest = op.attributes.get("nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear") or ctm not in _TRANSFORMS or nearest not in _NEAREST:
        return None
    if x.dtype not in ("f32", "f16", "bf16") or x.rank != out.rank or op.attributes.get("antialias"):
        return None
    scales = op.attributes.get("scales")
    if not (isinstance(scales, list) and len(scales) == x.rank):
        scales = [o / i if i else 1.0 for o, i in zip(out.shape, x.shape)]
    params = params_of(op, ["x"], ["y"])
    X, Y = params[0]["name"], params[-1]["name"]
    lines = coords(out.shape)
    resized = [d for d in range(x.rank) if out.shape[d] != x.shape[d] or float(scales[d]) != 1.0]
    if mode == "linear" and len(resized) > 3:
        return None
    src = [f"k_c{d}" for d in range(x.rank)]
    for d in resized:
        s = repr(float(scales[d])) + "f"
        # ONNX scales by the un-rounded output length (scale * input length), not the rounded one: a
        # 4 -> 2 align_corners resize at scale 0.6 maps output 1 to 1 * 3 / 1.4, not to 3.
        length = float(scales[d]) * x.shape[d]
        one = "true" if length == 1.0 else "false"
        a = repr((x.shape[d] - 1) / (length - 1)) if length != 1.0 else "0.0"
        lines.append(f"float k_x{d} = {_TRANSFORMS[ctm].format(x=f'k_c{d}', s=s, one=one, a=a)};")
        hi = x.shape[d] - 1
        if mode == "nearest":
            lines.append(f"long long k_n{d} = (long long){_NEAREST[nearest].format(v=f'k_x{d}')};")
            lines.append(f"k_n{d} = k_n{d} < 0 ? 0 : (k_n{d} > {hi} ? {hi} : k_n{d});")
            src[d] = f"k_n{d}"
        else:
            lines.append(f"k_x{d} = fminf(fmaxf(k_x{d}, 0.0f), {float(hi)!r}f);")
            lines.append(f"const long long k_l{d} = (long long)k_x{d};")
            lines.append(f"const long long k_h{d} = k_l{d} + 1 < {x.shape[d]} ? k_l{d} + 1 : {hi};")
            lines.append(f"const float k_w{d} = k_x{d} - (float)k_l{d};")
    load = _to_float(x.dtype, "TL_LD({X}, {idx})").replace("{X}", X)
    if mode == "nearest":
        lines.append(f"TL_ST({Y}, k_t, TL_LD({X}, {linear(src, x.shape)}));")
        per = 1
    else:
        terms = []
        for corner in range(1 << len(resized)):
            idx, weights = list(src), []
            for bit, d in enumerate(resized):
                up = (corner >> bit) & 1
                idx[d] = f"k_h{d}" if up else f"k_l{d}"
                weights.append(f"k_w{d}" if up else f"(1.0f - k_w{d})")
            terms.append(" * ".join(weights + [load.replace("{idx}", linear(idx, x.shape))]))
        lines.append("const float k_v = " + "\n    + ".join(terms) + ";")
        lines.append(f"TL_ST({Y}, k_t, {_from_float(out.dtype, 'k_v')});")
        per = 1 << len(resized)
    total = math.prod(out.shape)
    return elementwise_source_func(op, name, params, "\n".join(lines), total, total * per * itemsize(x.dtype))


def _to_float(dtype: str, text: str) -> str:
    return {"f16": f"__half2float({text})", "bf16": f"__bfloat162float({text})"}.get(dtype, text)


def _from_float(dtype: str, text: str) -> str:
    return {"f16": f"__float2half({text})", "bf16": f"__float2bfloat16({text})"}.get(dtype, text)
