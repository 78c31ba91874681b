"""Converters for ONNX contraction, convolution, pooling, resize, arg/top-k and cumsum ops.

Normalisation done here (the graph ops never see it): ``auto_pad`` and ConvTranspose's ``output_shape``
become explicit ``pads``; Resize's roi/scales/sizes/axes/keep_aspect_ratio_policy become full-rank
``scales`` and ``sizes``; constant inputs (TopK k, CumSum axis) become attributes; axes are non-negative.
"""
from __future__ import annotations

import math

from ..registry import converter
from .compose import axis_in


def _inputs(ctx, node, n):
    return [ctx.input(node, i) for i in range(n)]


@converter("MatMul")
def matmul(ctx, node):
    return ctx.emit("graph.matmul", _inputs(ctx, node, 2))


@converter("Gemm")
def gemm(ctx, node):
    a, b, c = _inputs(ctx, node, 3)
    attrs = {"alpha": float(ctx.attr(node, "alpha", 1.0)), "beta": float(ctx.attr(node, "beta", 1.0)),
             "trans_a": int(ctx.attr(node, "transA", 0)), "trans_b": int(ctx.attr(node, "transB", 0))}
    if ctx.opset < 7 and int(ctx.attr(node, "broadcast", 0)) == 0 and c is not None and c.type.rank != 2:
        raise ctx.error(node, "Gemm before opset 7 without broadcast needs a 2-D C")
    return ctx.emit("graph.gemm", [a, b, c], attrs)


@converter("Einsum", since=12)
def einsum(ctx, node):
    values = [ctx.input(node, i) for i in range(len(node.input))]
    return ctx.emit("graph.einsum", values, {"equation": ctx.attr(node, "equation", "")})


def resolve_pads(ctx, node, x_shape, kernel, dilations=None, strides=None) -> list:
    """Explicit ``pads`` of a conv/pool node: ``auto_pad`` SAME_* / VALID resolved against ``x_shape``."""
    n = len(x_shape) - 2
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    strides = strides or ctx.attr(node, "strides", None) or [1] * n
    dilations = dilations or ctx.attr(node, "dilations", None) or [1] * n
    if auto in ("NOTSET", ""):
        pads = list(ctx.attr(node, "pads", None) or [0] * (2 * n))
        if len(pads) != 2 * n:
            raise ctx.error(node, f"pads has {len(pads)} values; {n} spatial dims need {2 * n}")
        return pads
    if auto == "VALID":
        return [0] * (2 * n)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.error(node, f"unknown auto_pad '{auto}'")
    begins, ends = [], []
    for size, k, s, d in zip(x_shape[2:], kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if auto == "SAME_UPPER" else big)
        ends.append(big if auto == "SAME_UPPER" else small)
    return begins + ends


def _window_attrs(ctx, node, rank):
    n = rank - 2
    return {"strides": list(ctx.attr(node, "strides", None) or [1] * n),
            "dilations": list(ctx.attr(node, "dilations", None) or [1] * n)}


def _check_kernel(ctx, node, kernel):
    given = ctx.attr(node, "kernel_shape", None)
    if given is not None and list(given) != list(kernel):
        raise ctx.error(node, f"kernel_shape {list(given)} does not match the weight's {list(kernel)}")


def conv_attrs(ctx, node, x_shape, w_shape) -> dict:
    """graph.conv's attributes for a Conv-like node (Conv, ConvInteger, QLinearConv): explicit pads."""
    kernel = w_shape[2:]
    _check_kernel(ctx, node, kernel)
    attrs = _window_attrs(ctx, node, len(x_shape))
    attrs["pads"] = resolve_pads(ctx, node, x_shape, kernel)
    attrs["group"] = int(ctx.attr(node, "group", 1))
    return attrs


@converter("Conv")
def conv(ctx, node):
    x, w, b = _inputs(ctx, node, 3)
    return ctx.emit("graph.conv", [x, w, b], conv_attrs(ctx, node, x.type.shape, w.type.shape))


@converter("ConvTranspose")
def conv_transpose(ctx, node):
    x, w, b = _inputs(ctx, node, 3)
    kernel = w.type.shape[2:]
    _check_kernel(ctx, node, kernel)
    n = x.type.rank - 2
    attrs = _window_attrs(ctx, node, x.type.rank)
    attrs["group"] = int(ctx.attr(node, "group", 1))
    attrs["output_padding"] = list(ctx.attr(node, "output_padding", None) or [0] * n)
    auto = ctx.attr(node, "auto_pad", "NOTSET")
    out_shape = ctx.attr(node, "output_shape", None)
    if out_shape is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        out_shape = [d * s for d, s in zip(x.type.shape[2:], attrs["strides"])]
    if out_shape is not None:
        out_shape = list(out_shape)[-n:]
        pb, pe = [], []
        for size, k, s, d, op, want in zip(x.type.shape[2:], kernel, attrs["strides"], attrs["dilations"],
                                           attrs["output_padding"], out_shape):
            total = s * (size - 1) + op + (k - 1) * d + 1 - want
            # ONNX: SAME_UPPER puts the smaller half first, otherwise the larger half goes first.
            first = total // 2 if auto == "SAME_UPPER" else total - total // 2
            pb.append(first)
            pe.append(total - first)
        attrs["pads"] = pb + pe
    elif auto == "VALID":
        attrs["pads"] = [0] * (2 * n)
    else:
        attrs["pads"] = list(ctx.attr(node, "pads", None) or [0] * (2 * n))
    return ctx.emit("graph.conv_transpose", [x, w, b], attrs)


def _pool_attrs(ctx, node, x):
    kernel = ctx.attr(node, "kernel_shape", None)
    if kernel is None:
        raise ctx.error(node, f"{node.op_type} requires kernel_shape")
    attrs = _window_attrs(ctx, node, x.type.rank)
    attrs["kernel_shape"] = list(kernel)
    attrs["pads"] = resolve_pads(ctx, node, x.type.shape, kernel, attrs["dilations"], attrs["strides"])
    attrs["ceil_mode"] = int(ctx.attr(node, "ceil_mode", 0))
    return attrs


@converter("MaxPool")
def max_pool(ctx, node):
    x = ctx.input(node, 0)
    attrs = _pool_attrs(ctx, node, x)
    y = ctx.emit("graph.max_pool", [x], attrs)
    if len(node.output) > 1 and node.output[1]:
        from .pool_indices import max_pool_indices
        y.append(max_pool_indices(ctx, node, x, y[0], attrs))
    return y


@converter("AveragePool")
def average_pool(ctx, node):
    x = ctx.input(node, 0)
    attrs = _pool_attrs(ctx, node, x)
    attrs["count_include_pad"] = int(ctx.attr(node, "count_include_pad", 0))
    return ctx.emit("graph.average_pool", [x], attrs)


@converter("GlobalAveragePool")
def global_average_pool(ctx, node):
    return ctx.emit("graph.global_average_pool", [ctx.input(node, 0)])


@converter("GlobalMaxPool")
def global_max_pool(ctx, node):
    return ctx.emit("graph.global_max_pool", [ctx.input(node, 0)])


@converter("ArgMax", "ArgMin")
def arg_reduce(ctx, node):
    x = ctx.input(node, 0)
    attrs = {"axis": axis_in(ctx, node, int(ctx.attr(node, "axis", 0)), x.type.rank),
             "keepdims": int(ctx.attr(node, "keepdims", 1)),
             "select_last_index": int(ctx.attr(node, "select_last_index", 0))}
    return ctx.emit("graph.arg_max" if node.op_type == "ArgMax" else "graph.arg_min", [x], attrs)


@converter("TopK")
def top_k(ctx, node):
    x = ctx.input(node, 0)
    if ctx.opset >= 10:
        k = ctx.const_input(node, 1, "k").reshape(-1)
        if k.size != 1:
            raise ctx.error(node, "TopK k must be a single value")
        k = int(k[0])
    else:
        k = int(ctx.attr(node, "k", 0))
    attrs = {"k": k, "axis": axis_in(ctx, node, int(ctx.attr(node, "axis", -1)), x.type.rank),
             "largest": int(ctx.attr(node, "largest", 1)), "sorted": int(ctx.attr(node, "sorted", 1))}
    return ctx.emit("graph.top_k", [x], attrs, n_results=2)


@converter("CumSum", "CumProd", since=11)
def cum_sum(ctx, node):
    x = ctx.input(node, 0)
    axis = ctx.const_input(node, 1, "axis").reshape(-1)
    if axis.size != 1:
        raise ctx.error(node, "CumSum axis must be a single value")
    attrs = {"axis": axis_in(ctx, node, int(axis[0]), x.type.rank),
             "exclusive": int(ctx.attr(node, "exclusive", 0)), "reverse": int(ctx.attr(node, "reverse", 0))}
    return ctx.emit("graph.cum_sum" if node.op_type == "CumSum" else "graph.cum_prod", [x], attrs)


# --- Resize ------------------------------------------------------------------------------------------
@converter("Resize", since=10)
def resize(ctx, node):
    x = ctx.input(node, 0)
    rank = x.type.rank
    shape = x.type.shape
    mode = ctx.attr(node, "mode", "nearest")
    attrs = {"mode": mode}
    if ctx.opset < 11:
        # Resize-10: asymmetric coordinates and floor rounding (what onnxruntime does for it).
        attrs.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
        scales = [float(s) for s in ctx.const_input(node, 1, "scales").reshape(-1)]
        sizes = None
        roi = None
    else:
        attrs["coordinate_transformation_mode"] = ctx.attr(node, "coordinate_transformation_mode", "half_pixel")
        attrs["nearest_mode"] = ctx.attr(node, "nearest_mode", "round_prefer_floor")
        attrs["cubic_coeff_a"] = float(ctx.attr(node, "cubic_coeff_a", -0.75))
        attrs["exclude_outside"] = int(ctx.attr(node, "exclude_outside", 0))
        attrs["extrapolation_value"] = float(ctx.attr(node, "extrapolation_value", 0.0))
        attrs["antialias"] = int(ctx.attr(node, "antialias", 0))
        roi = _opt_const(ctx, node, 1, "roi")
        scales = _opt_const(ctx, node, 2, "scales")
        sizes = _opt_const(ctx, node, 3, "sizes")
        scales = None if scales is None or scales.size == 0 else [float(s) for s in scales.reshape(-1)]
        sizes = None if sizes is None or sizes.size == 0 else [int(s) for s in sizes.reshape(-1)]
        roi = None if roi is None or roi.size == 0 else [float(r) for r in roi.reshape(-1)]
    if mode not in ("nearest", "linear", "cubic"):
        raise ctx.error(node, f"unknown Resize mode '{mode}'")
    if mode == "nearest" and attrs.get("antialias"):
        raise ctx.error(node, "Resize antialias applies to linear and cubic modes only")
    axes = ctx.attr(node, "axes", None)
    axes = list(range(rank)) if axes is None else [axis_in(ctx, node, int(a), rank) for a in axes]
    if (scales is None) == (sizes is None):
        raise ctx.error(node, "Resize needs exactly one of scales and sizes")
    if scales is not None:
        if len(scales) != len(axes):
            raise ctx.error(node, f"Resize has {len(scales)} scales for {len(axes)} axes")
        full_scales = [1.0] * rank
        for a, s in zip(axes, scales):
            if s <= 0:
                raise ctx.error(node, f"Resize scale {s} must be positive")
            full_scales[a] = s
        full_sizes = [int(math.floor(d * s)) for d, s in zip(shape, full_scales)]
    else:
        if len(sizes) != len(axes):
            raise ctx.error(node, f"Resize has {len(sizes)} sizes for {len(axes)} axes")
        full_sizes = list(shape)
        for a, s in zip(axes, sizes):
            full_sizes[a] = s
        full_scales = [o / d if d else 1.0 for o, d in zip(full_sizes, shape)]
        policy = ctx.attr(node, "keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            if policy not in ("not_larger", "not_smaller"):
                raise ctx.error(node, f"unknown keep_aspect_ratio_policy '{policy}'")
            pick = min if policy == "not_larger" else max
            s = pick(full_scales[a] for a in axes)
            full_scales = [s if i in axes else 1.0 for i in range(rank)]
            # Round half up, as the ONNX reference does.
            full_sizes = [int(math.floor(s * d + 0.5)) if i in axes else d for i, d in enumerate(shape)]
    attrs["scales"] = full_scales
    attrs["sizes"] = full_sizes
    if attrs.get("coordinate_transformation_mode") == "tf_crop_and_resize":
        if roi is None:
            raise ctx.error(node, "Resize tf_crop_and_resize needs roi")
        if len(roi) == 2 * len(axes) and len(axes) != rank:
            full = [0.0] * rank + [1.0] * rank
            for i, a in enumerate(axes):
                full[a], full[a + rank] = roi[i], roi[i + len(axes)]
            roi = full
        attrs["roi"] = roi
    return ctx.emit("graph.resize", [x], attrs)


def _opt_const(ctx, node, i, what):
    return ctx.const_input(node, i, what) if ctx.has_input(node, i) else None

