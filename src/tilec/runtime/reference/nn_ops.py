"""Numpy references of the graph NN family: matmul, gemm, einsum, conv, conv_transpose, pooling, resize,
arg_max/arg_min, top_k and cum_sum.

Convolution and pooling loop over kernel offsets (a few dozen at most) and do the rest with whole-array
numpy, which keeps them readable and fast enough for the node tests and sample models.
"""
from __future__ import annotations

import itertools

import numpy as np

from ...ir.dialects.graph_nn import parse_einsum, window_out, window_params
from . import reference


def _acc_dtype(dt):
    """Accumulate floats in at least f32 (f16/bf16 sums drift), ints in their own type."""
    return np.float32 if dt.kind == "f" and dt.itemsize < 4 or dt.name == "bfloat16" else dt


@reference("graph.matmul")
def matmul(inputs, attrs):
    a, b = inputs[0], inputs[1]
    acc = _acc_dtype(a.dtype)
    return [np.matmul(a.astype(acc), b.astype(acc)).astype(a.dtype)]


@reference("graph.gemm")
def gemm(inputs, attrs):
    a, b = inputs[0], inputs[1]
    acc = _acc_dtype(a.dtype)
    a = (a.T if attrs.get("trans_a") else a).astype(acc)
    b = (b.T if attrs.get("trans_b") else b).astype(acc)
    y = a @ b
    alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
    if alpha != 1.0:
        y = y * np.asarray(alpha, dtype=acc)
    if len(inputs) > 2 and inputs[2] is not None:
        y = y + inputs[2].astype(acc) * np.asarray(beta, dtype=acc)
    return [y.astype(inputs[0].dtype)]


@reference("graph.einsum")
def einsum(inputs, attrs):
    ins, out = parse_einsum(attrs["equation"], [x.ndim for x in inputs])
    # Rewritten with plain letters so numpy sees exactly the subscripts the rule and decomposition saw.
    eq = ",".join("".join(s) for s in ins) + "->" + "".join(out)
    acc = _acc_dtype(inputs[0].dtype)
    return [np.einsum(eq, *(x.astype(acc) for x in inputs)).astype(inputs[0].dtype)]


def _windows(xp, kernel, strides, dil, out_spatial):
    """Yield ``(kernel_offset, view)``: for each kernel position, the strided view of the padded input
    that it multiplies, of spatial shape ``out_spatial``."""
    for kpos in itertools.product(*(range(k) for k in kernel)):
        idx = [slice(None), slice(None)]
        for k, s, d, n in zip(kpos, strides, dil, out_spatial):
            idx.append(slice(k * d, k * d + s * (n - 1) + 1, s))
        yield kpos, xp[tuple(idx)]


def _pad_spatial(x, pb, pe, value, extra=None):
    """Pad the spatial dims (negative pads crop); ``extra`` adds end padding for ceil-mode windows."""
    extra = extra or [0] * len(pb)
    crop = tuple([slice(None)] * 2 + [slice(max(-b, 0), x.shape[2 + i] - max(-e, 0))
                                      for i, (b, e) in enumerate(zip(pb, pe))])
    x = x[crop]
    widths = [(0, 0), (0, 0)] + [(max(b, 0), max(e, 0) + x_) for b, e, x_ in zip(pb, pe, extra)]
    return np.pad(x, widths, constant_values=value)


@reference("graph.conv")
def conv(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    g = attrs.get("group", 1)
    s, d, pb, pe = window_params(x.shape, w.shape[2:], attrs)
    out_sp = [window_out(n, k, *a) for n, k, *a in zip(x.shape[2:], w.shape[2:], s, d, pb, pe)]
    acc = _acc_dtype(x.dtype)
    xp = _pad_spatial(x.astype(acc), pb, pe, 0)
    n, m = x.shape[0], w.shape[0]
    cg, mg = w.shape[1], m // g
    y = np.zeros((n, g, mg, *out_sp), dtype=acc)
    wg = w.astype(acc).reshape(g, mg, cg, *w.shape[2:])
    for kpos, view in _windows(xp, w.shape[2:], s, d, out_sp):
        v = view.reshape(n, g, cg, -1)
        y += np.einsum("ngcp,gmc->ngmp", v, wg[(slice(None),) * 3 + kpos]).reshape(y.shape)
    y = y.reshape(n, m, *out_sp)
    if b is not None:
        y += b.astype(acc).reshape((1, m) + (1,) * len(out_sp))
    return [y.astype(x.dtype)]


@reference("graph.conv_transpose")
def conv_transpose(inputs, attrs):
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    g = attrs.get("group", 1)
    s, d, pb, pe = window_params(x.shape, w.shape[2:], attrs)
    from ...ir.dialects.graph_nn import conv_transpose_out
    out_sp = conv_transpose_out(x.shape, w.shape, attrs)
    acc = _acc_dtype(x.dtype)
    n, c = x.shape[:2]
    cg, mg = c // g, w.shape[1]
    # Scatter every input element's contribution into a buffer big enough for begin padding + output.
    full = [max(si * (ni - 1) + (k - 1) * di + 1, b_ + o) for si, ni, k, di, b_, o
            in zip(s, x.shape[2:], w.shape[2:], d, pb, out_sp)]
    full = [f + max(-b_, 0) for f, b_ in zip(full, pb)]
    shift = [max(-b_, 0) for b_ in pb]
    y = np.zeros((n, g, mg, *full), dtype=acc)
    xg = x.astype(acc).reshape(n, g, cg, *x.shape[2:])
    wg = w.astype(acc).reshape(g, cg, mg, *w.shape[2:])
    for kpos in itertools.product(*(range(k) for k in w.shape[2:])):
        contrib = np.einsum("ngc...,gcm->ngm...", xg, wg[(slice(None),) * 3 + kpos])
        idx = [slice(None)] * 3 + [slice(sh + k * di, sh + k * di + si * (ni - 1) + 1, si)
                                   for sh, k, di, si, ni in zip(shift, kpos, d, s, x.shape[2:])]
        y[tuple(idx)] += contrib
    crop = tuple([slice(None)] * 3 + [slice(sh + b_, sh + b_ + o) for sh, b_, o in zip(shift, pb, out_sp)])
    y = y[crop].reshape(n, g * mg, *out_sp)
    if b is not None:
        y = y + b.astype(acc).reshape((1, -1) + (1,) * len(out_sp))
    return [y.astype(x.dtype)]


def _pool_setup(x, attrs):
    kernel = attrs["kernel_shape"]
    s, d, pb, pe = window_params(x.shape, kernel, attrs)
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    out_sp = [window_out(n, k, *a, ceil_mode) for n, k, *a in zip(x.shape[2:], kernel, s, d, pb, pe)]
    # Ceil mode may let the last window run past the end padding: pad further (it never counts).
    extra = [max(0, (o - 1) * si + (k - 1) * di + 1 - (n + b_ + e))
             for o, si, k, di, n, b_, e in zip(out_sp, s, kernel, d, x.shape[2:], pb, pe)]
    return kernel, s, d, pb, pe, out_sp, extra


def lowest(dtype) -> float:
    """The identity of max: -inf for floats, the smallest value for ints."""
    return -np.inf if dtype.kind == "f" or dtype.name == "bfloat16" else np.iinfo(dtype).min


@reference("graph.max_pool")
def max_pool(inputs, attrs):
    x = inputs[0]
    kernel, s, d, pb, pe, out_sp, extra = _pool_setup(x, attrs)
    xp = _pad_spatial(x, pb, pe, lowest(x.dtype), extra)
    y = None
    for _, view in _windows(xp, kernel, s, d, out_sp):
        y = view.copy() if y is None else np.maximum(y, view)
    return [y]


@reference("graph.average_pool")
def average_pool(inputs, attrs):
    x = inputs[0]
    kernel, s, d, pb, pe, out_sp, extra = _pool_setup(x, attrs)
    acc = _acc_dtype(x.dtype)
    xp = _pad_spatial(x.astype(acc), pb, pe, 0, extra)
    # The divisor counts the input, plus the explicit padding with count_include_pad; never the
    # ceil-mode overhang.
    ones = np.ones((1, 1) + x.shape[2:], dtype=acc)
    fill = 1 if attrs.get("count_include_pad", 0) else 0
    mask = np.pad(_pad_spatial(ones, pb, pe, fill), [(0, 0), (0, 0)] + [(0, e) for e in extra])
    total = np.zeros(x.shape[:2] + tuple(out_sp), dtype=acc)
    count = np.zeros((1, 1) + tuple(out_sp), dtype=acc)
    for (_, view), (_, mview) in zip(_windows(xp, kernel, s, d, out_sp), _windows(mask, kernel, s, d, out_sp)):
        total += view
        count += mview
    return [(total / np.maximum(count, 1)).astype(x.dtype)]


@reference("graph.global_average_pool")
def global_average_pool(inputs, attrs):
    x = inputs[0]
    axes = tuple(range(2, x.ndim))
    return [x.astype(_acc_dtype(x.dtype)).mean(axis=axes, keepdims=True).astype(x.dtype)]


@reference("graph.global_max_pool")
def global_max_pool(inputs, attrs):
    x = inputs[0]
    return [x.max(axis=tuple(range(2, x.ndim)), keepdims=True)]


def _arg(x, attrs, fn):
    axis = attrs["axis"]
    if attrs.get("select_last_index"):
        flipped = np.flip(x, axis)
        idx = x.shape[axis] - 1 - fn(flipped, axis=axis)
    else:
        idx = fn(x, axis=axis)
    if attrs.get("keepdims", 1):
        idx = np.expand_dims(idx, axis)
    return [idx.astype(np.int64)]


@reference("graph.arg_max")
def arg_max(inputs, attrs):
    return _arg(inputs[0], attrs, np.argmax)


@reference("graph.arg_min")
def arg_min(inputs, attrs):
    return _arg(inputs[0], attrs, np.argmin)


@reference("graph.top_k")
def top_k(inputs, attrs):
    x, axis, k = inputs[0], attrs["axis"], attrs["k"]
    # A stable sort keeps equal values in index order, as ONNX requires; largest sorts the negation
    # (for unsigned ints, the order reversed through the max).
    if attrs.get("largest", 1):
        key = -x.astype(np.float64) if x.dtype.kind in "fiu" or x.dtype.name == "bfloat16" else ~x
    else:
        key = x
    order = np.argsort(key, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


def _cumulative(x, attrs, scan, identity):
    """ONNX CumSum/CumProd along ``axis``: ``scan`` (np.cumsum/np.cumprod) with ``reverse`` and ``exclusive``
    (an exclusive scan starts from ``identity``: 0 for sums, 1 for products)."""
    axis = attrs["axis"]
    if attrs.get("reverse"):
        x = np.flip(x, axis)
    y = scan(x, axis=axis, dtype=x.dtype)
    if attrs.get("exclusive"):
        first = np.full_like(np.take(y, [0], axis=axis), identity)
        y = np.concatenate([first, np.take(y, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
    if attrs.get("reverse"):
        y = np.flip(y, axis)
    return [np.asarray(y, order="C")]


@reference("graph.cum_sum")
def cum_sum(inputs, attrs):
    return _cumulative(inputs[0], attrs, np.cumsum, 0)


@reference("graph.cum_prod")
def cum_prod(inputs, attrs):
    return _cumulative(inputs[0], attrs, np.cumprod, 1)



# --- resize ------------------------------------------------------------------------------------------
def _source_coords(ctm: str, y, scale: float, n_in: int, n_out: int, roi):
    """Output index -> fractional input coordinate (ONNX ``coordinate_transformation_mode``)."""
    out_w = scale * n_in  # the un-rounded output length, as the ONNX spec uses it
    if ctm == "align_corners":
        return np.zeros_like(y) if out_w == 1 else y * (n_in - 1) / (out_w - 1)
    if ctm == "asymmetric":
        return y / scale
    if ctm == "tf_crop_and_resize":
        lo, hi = roi
        if out_w == 1:
            return np.full_like(y, (hi - lo) * (n_in - 1) / 2) + lo * (n_in - 1)
        return y * (hi - lo) * (n_in - 1) / (out_w - 1) + lo * (n_in - 1)
    if ctm == "pytorch_half_pixel":
        return np.full_like(y, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5
    if ctm == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if ctm == "half_pixel_symmetric":
        offset = n_in / 2 * (1 - n_out / out_w)
        return offset + (y + 0.5) / scale - 0.5
    if ctm == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    raise ValueError(f"unknown coordinate_transformation_mode '{ctm}'")


def _cubic(ratio, a):
    r = ratio
    return np.array([((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
                     ((a + 2) * r - (a + 3)) * r * r + 1,
                     ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
                     ((a * (2 - r) - 5 * a) * (2 - r) + 8 * a) * (2 - r) - 4 * a])


def _antialias(ratio, scale, support, kernel):
    scale = min(scale, 1.0)
    start = int(np.floor(-support / scale) + 1)
    args = (np.arange(start, 2 - start) - ratio) * scale
    c = kernel(np.abs(args))
    return c / c.sum()


def _coeffs_fn(attrs):
    mode, a = attrs.get("mode", "nearest"), attrs.get("cubic_coeff_a", -0.75)
    if mode == "nearest":
        nm = attrs.get("nearest_mode", "round_prefer_floor")
        pick = {"round_prefer_floor": lambda r: r > 0.5, "round_prefer_ceil": lambda r: r >= 0.5,
                "floor": lambda r: False, "ceil": lambda r: True}
        if nm not in pick:
            raise ValueError(f"unknown nearest_mode '{nm}'")
        return lambda r, s: np.array([0.0, 1.0]) if r == 1.0 or pick[nm](r) else np.array([1.0, 0.0])
    if mode == "linear":
        if attrs.get("antialias"):
            return lambda r, s: _antialias(r, s, 1, lambda x: np.clip(1 - x, 0, 1))
        return lambda r, s: np.array([1 - r, r])
    if mode == "cubic":
        if attrs.get("antialias"):
            def k(x):
                return np.where(x <= 1, (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1,
                                np.where(x < 2, a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a, 0.0))
            return lambda r, s: _antialias(r, s, 2, k)
        return lambda r, s: _cubic(r, a)
    raise ValueError(f"unknown resize mode '{mode}'")


def _resize_axis(data, axis, scale, n_out, coeffs_fn, attrs, roi):
    n_in = data.shape[axis]
    ctm = attrs.get("coordinate_transformation_mode", "half_pixel")
    x = _source_coords(ctm, np.arange(n_out, dtype=np.float64), scale, n_in, n_out, roi)
    base = np.floor(x)
    # An exact integer coordinate uses ratio 1 on the left pair of taps (the ONNX reference's convention).
    ratio = np.where(x == base, 1.0, x - base)
    coeffs = np.stack([coeffs_fn(float(r), scale) for r in ratio]) if n_out else np.zeros((0, 2))
    taps = coeffs.shape[1]
    frac = x - base
    if taps % 2 == 0:
        start = base + np.where(frac == 0, -(taps // 2), -(taps // 2) + 1)
    else:
        start = base + np.where(frac <= 0.5, -((taps - 1) // 2), -((taps - 1) // 2) + 1)
    idx = start.astype(np.int64)[:, None] + np.arange(taps)[None, :]
    if attrs.get("exclude_outside"):
        coeffs = np.where((idx < 0) | (idx >= n_in), 0.0, coeffs)
        total = coeffs.sum(axis=1, keepdims=True)
        coeffs = coeffs / np.where(total == 0, 1.0, total)
    gathered = np.take(data, np.clip(idx, 0, n_in - 1), axis=axis)
    shape = (1,) * axis + coeffs.shape + (1,) * (data.ndim - axis - 1)
    out = (gathered * coeffs.reshape(shape)).sum(axis=axis + 1)
    if ctm == "tf_crop_and_resize":
        outside = ((x < 0) | (x > n_in - 1)).reshape((1,) * axis + (n_out,) + (1,) * (data.ndim - axis - 1))
        out = np.where(outside, attrs.get("extrapolation_value", 0.0), out)
    return out


@reference("graph.resize")
def resize(inputs, attrs):
    x = inputs[0]
    sizes = attrs["sizes"]
    scales = attrs.get("scales") or [o / i if i else 1.0 for o, i in zip(sizes, x.shape)]
    roi = attrs.get("roi") or [0.0] * x.ndim + [1.0] * x.ndim
    coeffs_fn = _coeffs_fn(attrs)
    y = x.astype(np.float64)
    for axis in range(x.ndim):
        if scales[axis] == 1.0 and sizes[axis] == x.shape[axis] and \
                attrs.get("coordinate_transformation_mode") != "tf_crop_and_resize":
            continue
        y = _resize_axis(y, axis, float(scales[axis]), sizes[axis], coeffs_fn, attrs,
                         (roi[axis], roi[axis + x.ndim]))
    if x.dtype.kind in "iu":
        y = np.clip(np.round(y), np.iinfo(x.dtype).min, np.iinfo(x.dtype).max)
    return [y.astype(x.dtype)]
