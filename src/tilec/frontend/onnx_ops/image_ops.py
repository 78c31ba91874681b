"""Converters for ONNX image ops built from graph ops: LRN, CenterCropPad, Upsample and AffineGrid.

LRN's channel-window sum is a conv of ones over the channel axis; CenterCropPad is a slice and a pad;
Upsample is Resize with Resize-10's coordinate rules; AffineGrid multiplies theta with a constant grid of
normalised homogeneous coordinates.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES
from ..registry import converter
from .compose import Emitter


@converter("LRN")
def lrn(ctx, node):
    """``x / (bias + alpha / size * sum of x^2 over channels c - (size-1)//2 .. c + ceil((size-1)/2))^beta``."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    if x.type.dtype not in FLOAT_DTYPES or x.type.rank < 3:
        raise ctx.error(node, "LRN takes a float tensor of rank 3 or more")
    size = int(ctx.attr(node, "size", 0))
    if size < 1:
        raise ctx.error(node, "LRN requires a positive size")
    alpha, beta = float(ctx.attr(node, "alpha", 1e-4)), float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    shape, dt = list(x.type.shape), x.type.dtype
    rest = int(np.prod(shape[2:], dtype=np.int64))
    sq = g.reshape(g.op("mul", [x, x]), [shape[0], 1, shape[1], rest])
    ones = g.const(np.ones((1, 1, size, 1)), dt)
    before, after = (size - 1) // 2, -(-(size - 1) // 2)
    window = g.op("conv", [sq, ones], strides=[1, 1], dilations=[1, 1], pads=[before, 0, after, 0], group=1)
    denom = g.op("add", [g.op("mul", [g.reshape(window, shape), g.const(alpha / size, dt)]), g.const(bias, dt)])
    return [g.op("div", [x, g.op("pow", [denom, g.const(beta, dt)])])]


@converter("CenterCropPad", since=18)
def center_crop_pad(ctx, node):
    """Each named axis cut or zero-padded to its new size, centred (the odd element at the end)."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    rank = x.type.rank
    sizes = [int(s) for s in ctx.const_input(node, 1, "shape").reshape(-1)]
    axes = ctx.attr(node, "axes", None)
    axes = list(range(rank)) if axes is None else [int(a) % rank if -rank <= int(a) < rank else None for a in axes]
    if None in axes or len(axes) != len(sizes) or any(s < 0 for s in sizes):
        raise ctx.error(node, f"CenterCropPad shape {sizes} does not match axes {axes} of rank {rank}")
    starts, ends, cut_axes, pads = [], [], [], [0] * (2 * rank)
    for a, s in zip(axes, sizes):
        dim = x.type.shape[a]
        if s < dim:
            begin = (dim - s) // 2
            starts.append(begin)
            ends.append(begin + s)
            cut_axes.append(a)
        elif s > dim:
            pads[a] = (s - dim) // 2
            pads[rank + a] = s - dim - pads[a]
    y = x
    if cut_axes:
        y = g.op("slice", [y], starts=starts, ends=ends, axes=cut_axes, steps=[1] * len(cut_axes))
    if any(pads):
        y = g.op("pad", [y], pads=pads, mode="constant", value=0.0)
    return [y]


@converter("Upsample", since=7)
def upsample(ctx, node):
    """Resize with ``floor(dim * scale)`` outputs, asymmetric coordinates and floor rounding for nearest
    (what Upsample meant, and how Resize-10 reads)."""
    x = ctx.input(node, 0)
    mode = ctx.attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise ctx.error(node, f"unknown Upsample mode '{mode}'")
    if ctx.opset >= 9:
        scales = [float(s) for s in ctx.const_input(node, 1, "scales").reshape(-1)]
    else:
        scales = [float(s) for s in ctx.attr(node, "scales", [])]
    if len(scales) != x.type.rank or any(s < 1 for s in scales):
        raise ctx.error(node, f"Upsample needs one scale >= 1 per input dim, got {scales}")
    attrs = {"mode": "linear" if mode == "bilinear" else mode, "coordinate_transformation_mode": "asymmetric",
             "nearest_mode": "floor", "scales": scales,
             "sizes": [int(np.floor(d * s)) for d, s in zip(x.type.shape, scales)]}
    return ctx.emit("graph.resize", [x], attrs)


def _normalised(n: int, align_corners: bool) -> np.ndarray:
    """The n sample positions of [-1, 1]: the ends themselves (align_corners) or the pixel centres."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return -1.0 + (2.0 * np.arange(n) + 1.0) / n


@converter("AffineGrid", since=20)
def affine_grid(ctx, node):
    """``grid[n, ..., :] = theta[n] @ (x, y[, z], 1)`` at every output position (2-D: ``[N, H, W, 2]``;
    3-D: ``[N, D, H, W, 3]``)."""
    g = Emitter(ctx)
    theta = ctx.input(node, 0)
    size = [int(s) for s in ctx.const_input(node, 1, "size").reshape(-1)]
    align = bool(int(ctx.attr(node, "align_corners", 0)))
    dims = len(size) - 2
    if dims not in (2, 3) or theta.type.shape != (size[0], dims, dims + 1) or theta.type.dtype not in FLOAT_DTYPES:
        raise ctx.error(node, f"AffineGrid theta {list(theta.type.shape)} does not fit size {size}")
    spatial = size[2:]
    axes = np.meshgrid(*(_normalised(n, align) for n in spatial), indexing="ij")
    # Homogeneous (x, y[, z], 1): the last spatial axis is x.
    coords = [a.reshape(-1) for a in reversed(axes)] + [np.ones(int(np.prod(spatial)))]
    base = g.const(np.stack(coords, axis=0), "f64")            # [dims + 1, positions]
    grid = g.op("matmul", [g.cast(theta, "f64"), base])          # [N, dims, positions]
    grid = g.transpose(grid, [0, 2, 1])
    return [g.cast(g.reshape(grid, [size[0]] + spatial + [dims]), theta.type.dtype)]


def _col2im_sources(image, block, dilations, pads, strides):
    """For each image position p (rows) and block offset k (columns), the sliding-block index l whose
    column holds x[.., k, l] for p, or -1 when none does. ``[prod(image), prod(block)]``."""
    n = len(image)
    blocks = [(d + pads[i] + pads[n + i] - dilations[i] * (b - 1) - 1) // strides[i] + 1
              for i, (d, b) in enumerate(zip(image, block))]
    if any(b < 1 for b in blocks):
        return None, blocks
    p = np.stack(np.meshgrid(*(np.arange(d) for d in image), indexing="ij"), -1).reshape(-1, 1, n)
    k = np.stack(np.meshgrid(*(np.arange(b) for b in block), indexing="ij"), -1).reshape(1, -1, n)
    q = p + np.asarray(pads[:n]) - k * np.asarray(dilations)            # [P, K, n] in block-stride units
    s = np.asarray(strides)
    ok = np.all((q % s == 0) & (q >= 0) & (q // s < np.asarray(blocks)), axis=-1)
    l = np.ravel_multi_index(tuple(np.moveaxis(np.clip(q // s, 0, np.asarray(blocks) - 1), -1, 0)), blocks)
    return np.where(ok, l, -1), blocks


@converter("Col2Im", since=18)
def col2im(ctx, node):
    """Sum of the sliding blocks back into the image: each output position gathers, for every block
    offset, the one column entry that covers it (or a zero), then sums over the offsets."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    image = [int(d) for d in ctx.const_input(node, 1, "image_shape").reshape(-1)]
    block = [int(d) for d in ctx.const_input(node, 2, "block_shape").reshape(-1)]
    n = len(image)
    dil = list(ctx.attr(node, "dilations", None) or [1] * n)
    pads = list(ctx.attr(node, "pads", None) or [0] * (2 * n))
    strides = list(ctx.attr(node, "strides", None) or [1] * n)
    kprod = int(np.prod(block, dtype=np.int64))
    if x.type.rank != 3 or n != len(block) or n < 1 or kprod < 1 or x.type.shape[1] % kprod:
        raise ctx.error(node, f"Col2Im input {list(x.type.shape)} does not fit block_shape {block}")
    src, blocks = _col2im_sources(image, block, dil, pads, strides)
    length = x.type.shape[2]
    if src is None or int(np.prod(blocks)) != length:
        raise ctx.error(node, f"Col2Im input has {length} blocks, the image {image} gives {blocks}")
    ctx.check_size(node, [x.type.shape[0], x.type.shape[1] // kprod, src.size], np.dtype(np.float32))
    batch, channels = x.type.shape[0], x.type.shape[1] // kprod
    cols = g.reshape(x, [batch, channels, kprod, length])
    cols = g.op("concat", [cols, g.const(np.zeros((batch, channels, kprod, 1)), x.type.dtype)], axis=3)
    flat = g.reshape(cols, [batch, channels, kprod * (length + 1)])
    k = np.arange(kprod).reshape(1, -1)
    idx = np.where(src >= 0, k * (length + 1) + src, k * (length + 1) + length)   # missing: the zero
    picked = g.op("gather", [flat, ctx.constant(idx.astype(np.int64))], axis=2)  # [N, C, P, K]
    summed = g.op("reduce_sum", [picked], axes=[3], keepdims=0)
    return [g.reshape(summed, [batch, channels] + image)]


def _roi_axis(g, start, size, bins: int, ratio: int, extent: int):
    """Bilinear sampling along one axis of every roi: the low and high source indices (i64, clamped as
    ONNX's reference clamps them) and their weights, 0 for samples outside [-1, extent]. Sample j of
    bin p sits at start + size / bins * (p + (j + 0.5) / ratio); each output ``[R, bins * ratio]``."""
    grid = (np.arange(bins).reshape(-1, 1) + (np.arange(ratio) + 0.5) / ratio).reshape(1, -1)
    pos = g.op("add", [start, g.op("mul", [g.op("div", [size, g.const(float(bins), "f32")]), g.const(grid, "f32")])])
    inside = g.op("and", [g.op("greater_or_equal", [pos, g.const(-1.0, "f32")]),
                          g.op("less_or_equal", [pos, g.const(float(extent), "f32")])])
    pos = g.op("max", [pos, g.const(0.0, "f32")])
    low = g.op("floor", [pos])
    last = g.const(float(extent - 1), "f32")
    at_end = g.op("greater_or_equal", [low, last])
    low = g.op("min", [low, last])
    high = g.op("min", [g.op("add", [low, g.const(1.0, "f32")]), last])
    frac = g.op("sub", [g.op("where", [at_end, last, pos]), low])
    keep = g.cast(inside, "f32")
    w_high = g.op("mul", [frac, keep])
    w_low = g.op("mul", [g.op("sub", [g.const(1.0, "f32"), frac]), keep])
    return g.cast(low, "i64"), g.cast(high, "i64"), w_low, w_high


@converter("RoiAlign", since=10)
def roi_align(ctx, node):
    """Each roi's ``output_height x output_width`` bins, each the average (or max) of sampling_ratio^2
    bilinear samples of its batch's feature map, as ONNX's reference computes them (samples outside the
    map count 0; max mode takes the largest weighted corner). The four corners are GatherND reads of the
    channels-last map at indices computed on the device from the rois."""
    g = Emitter(ctx)
    x, rois, batch = (ctx.input(node, i) for i in range(3))
    if x.type.rank != 4 or x.type.dtype not in FLOAT_DTYPES or rois.type.rank != 2 or rois.type.shape[1] != 4 \
            or batch.type.shape != (rois.type.shape[0],):
        raise ctx.error(node, "RoiAlign needs X [N, C, H, W], rois [R, 4] and batch_indices [R]")
    mode = ctx.attr(node, "mode", "avg")
    ratio = int(ctx.attr(node, "sampling_ratio", 0))
    oh, ow = int(ctx.attr(node, "output_height", 1)), int(ctx.attr(node, "output_width", 1))
    if mode not in ("avg", "max") or oh < 1 or ow < 1:
        raise ctx.error(node, f"RoiAlign mode '{mode}' / output size {oh}x{ow} is not supported")
    if ratio <= 0:
        raise ctx.error(node, "RoiAlign sampling_ratio 0 (an adaptive grid, sized from the roi values) is not "
                              "supported: tilec needs a positive sampling_ratio")
    ctm = ctx.attr(node, "coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else "output_half_pixel")
    half_pixel = ctm == "half_pixel"
    scale = float(ctx.attr(node, "spatial_scale", 1.0))
    n_rois = rois.type.shape[0]
    _, c, height, width = x.type.shape
    r = g.op("sub", [g.op("mul", [g.cast(rois, "f32"), g.const(scale, "f32")]), g.const(0.5 if half_pixel else 0.0, "f32")])
    col = (lambda k: g.op("slice", [r], starts=[k], ends=[k + 1], axes=[1], steps=[1]))   # [R, 1]
    start_w, start_h = col(0), col(1)
    size_w, size_h = g.op("sub", [col(2), start_w]), g.op("sub", [col(3), start_h])
    if not half_pixel:
        size_w, size_h = (g.op("max", [s, g.const(1.0, "f32")]) for s in (size_w, size_h))
    y_lo, y_hi, wy_lo, wy_hi = _roi_axis(g, start_h, size_h, oh, ratio, height)
    x_lo, x_hi, wx_lo, wx_hi = _roi_axis(g, start_w, size_w, ow, ratio, width)
    sy, sx = oh * ratio, ow * ratio
    full = [n_rois, sy, sx, 1]
    b = g.op("expand", [g.reshape(g.cast(batch, "i64"), [n_rois, 1, 1, 1])], shape=full)
    ys = {k: g.op("expand", [g.reshape(v, [n_rois, sy, 1, 1])], shape=full) for k, v in (("lo", y_lo), ("hi", y_hi))}
    xs = {k: g.op("expand", [g.reshape(v, [n_rois, 1, sx, 1])], shape=full) for k, v in (("lo", x_lo), ("hi", x_hi))}
    channels_last = g.transpose(g.cast(x, "f32"), [0, 2, 3, 1])
    wy = {"lo": g.reshape(wy_lo, [n_rois, sy, 1, 1]), "hi": g.reshape(wy_hi, [n_rois, sy, 1, 1])}
    wx = {"lo": g.reshape(wx_lo, [n_rois, 1, sx, 1]), "hi": g.reshape(wx_hi, [n_rois, 1, sx, 1])}
    corners = []
    for yk, xk in (("lo", "lo"), ("lo", "hi"), ("hi", "lo"), ("hi", "hi")):
        idx = g.op("concat", [b, ys[yk], xs[xk]], axis=3)                                  # [R, sy, sx, 3]
        value = g.op("gather_nd", [channels_last, idx], batch_dims=0)                      # [R, sy, sx, C]
        corners.append(g.op("mul", [value, g.op("mul", [wy[yk], wx[xk]])]))
    samples = g.op("max" if mode == "max" else "sum", corners)
    samples = g.reshape(samples, [n_rois, oh, ratio, ow, ratio, c])
    if mode == "max":
        pooled = g.op("reduce_max", [samples], axes=[2, 4], keepdims=0)
    else:
        pooled = g.op("div", [g.op("reduce_sum", [samples], axes=[2, 4], keepdims=0),
                              g.const(float(ratio * ratio), "f32")])
    return [g.cast(g.transpose(pooled, [0, 3, 1, 2]), x.type.dtype)]


def _reflect(g, c, lo: float, hi: float):
    """ONNX GridSample's reflection of ``c`` into [lo, hi] (by the near border, repeatedly)."""
    f = (lambda v: g.const(v, "f32"))
    span = f(hi - lo)

    def fold(dx, near, far):   # dx >= 0 past ``near``: even folds land near + r, odd ones far - r
        n = g.op("floor", [g.op("div", [dx, span])])
        r = g.op("sub", [dx, g.op("mul", [n, span])])
        odd = g.op("equal", [g.op("mod", [n, f(2.0)], fmod=0), f(1.0)])
        return g.op("where", [odd, far(r), near(r)])
    below = fold(g.op("sub", [f(lo), c]), lambda r: g.op("add", [f(lo), r]), lambda r: g.op("sub", [f(hi), r]))
    above = fold(g.op("sub", [c, f(hi)]), lambda r: g.op("sub", [f(hi), r]), lambda r: g.op("add", [f(lo), r]))
    return g.op("where", [g.op("less", [c, f(lo)]), below,
                          g.op("where", [g.op("greater", [c, f(hi)]), above, c])])


def _cubic_coeffs(g, t):
    """Keys' cubic convolution weights (A = -0.75) of the taps at -1, 0, 1, 2 for fraction t."""
    a = -0.75
    f = (lambda v: g.const(v, "f32"))
    poly = (lambda x, cs: g.op("add", [g.op("mul", [g.op("add", [g.op("mul", [g.op("add", [g.op("mul", [f(cs[0]), x]),
                                                                                              f(cs[1])]), x]),
                                                                  f(cs[2])]), x]), f(cs[3])]))
    far = (a, -5 * a, 8 * a, -4 * a)           # ((a x - 5a) x + 8a) x - 4a, for 1 <= x < 2
    near = (a + 2, -(a + 3), 0.0, 1.0)         # ((a+2) x - (a+3)) x^2 + 1, for x < 1
    one = f(1.0)
    return [poly(g.op("add", [t, one]), far), poly(t, near), poly(g.op("sub", [one, t]), near),
            poly(g.op("sub", [f(2.0), t]), far)]


def _grid_taps(g, c, size: int, mode: str, padding: str, align: bool):
    """The source indices (i64) and weights of one spatial dim's taps for coordinates ``c`` (normalised
    to [-1, 1]), with ONNX's padding: zeros weighs an outside tap 0, border clamps it, reflection folds it."""
    f = (lambda v: g.const(v, "f32"))
    if align:
        x = g.op("mul", [g.op("add", [c, f(1.0)]), f((size - 1) / 2.0)])
    else:
        x = g.op("div", [g.op("sub", [g.op("mul", [g.op("add", [c, f(1.0)]), f(float(size))]), f(1.0)]), f(2.0)])
    if mode == "nearest":
        x = g.op("round", [x])
    lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
    if padding == "border":
        x = g.op("clip", [x], min=0.0, max=float(size - 1))
    elif padding == "reflection":
        x = _reflect(g, x, lo, hi)
    if mode == "nearest":
        taps, weights = [x], [None]
    else:
        base = g.op("floor", [x])
        t = g.op("sub", [x, base])
        if mode == "linear":
            taps, weights = [base, g.op("add", [base, f(1.0)])], [g.op("sub", [f(1.0), t]), t]
        else:
            taps = [g.op("add", [base, f(k)]) for k in (-1.0, 0.0, 1.0, 2.0)]
            weights = _cubic_coeffs(g, t)
    out = []
    for i, w in zip(taps, weights):
        if padding == "zeros":
            inside = g.cast(g.op("and", [g.op("greater_or_equal", [i, f(0.0)]),
                                         g.op("less_or_equal", [i, f(size - 1.0)])]), "f32")
            w = inside if w is None else g.op("mul", [w, inside])
            i = g.op("clip", [i], min=0.0, max=float(size - 1))
        elif padding == "border":
            i = g.op("clip", [i], min=0.0, max=float(size - 1))
        else:
            i = g.op("clip", [g.op("floor", [_reflect(g, i, lo, hi)]) if mode != "nearest" else i],
                     min=0.0, max=float(size - 1))
        out.append((g.cast(i, "i64"), w))
    return out


@converter("GridSample", since=16)
def grid_sample(ctx, node):
    """Samples of X at the grid's normalised positions (2-D or 3-D), nearest / linear / cubic, with
    zeros / border / reflection padding, as ONNX's reference: per spatial dim a few taps (1, 2 or 4)
    with weights, and for each combination of taps one GatherND read of the channels-last input."""
    import itertools
    g = Emitter(ctx)
    x, grid = ctx.input(node, 0), ctx.input(node, 1)
    dims = x.type.rank - 2
    mode = ctx.attr(node, "mode", "linear" if ctx.opset >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    padding = ctx.attr(node, "padding_mode", "zeros")
    align = bool(int(ctx.attr(node, "align_corners", 0)))
    if dims < 1 or grid.type.rank != dims + 2 or grid.type.shape[0] != x.type.shape[0] \
            or grid.type.shape[-1] != dims or x.type.dtype not in FLOAT_DTYPES:
        raise ctx.error(node, f"GridSample grid {list(grid.type.shape)} does not fit X {list(x.type.shape)}")
    if mode not in ("nearest", "linear", "cubic") or padding not in ("zeros", "border", "reflection") \
            or (mode == "cubic" and dims != 2):
        raise ctx.error(node, f"GridSample mode '{mode}' with padding '{padding}' on {dims}-D data is not supported")
    n, c = x.type.shape[:2]
    out = list(grid.type.shape[1:-1])
    gf = g.cast(grid, "f32")
    last = grid.type.rank - 1
    taps = []
    for d in range(dims):   # the grid lists x (the last spatial dim) first
        k = dims - 1 - d
        coord = g.op("squeeze", [g.op("slice", [gf], starts=[k], ends=[k + 1], axes=[last], steps=[1])], axes=[last])
        taps.append(_grid_taps(g, coord, x.type.shape[2 + d], mode, padding, align))
    full = [n] + out + [1]
    batch = g.const(np.broadcast_to(np.arange(n).reshape([n] + [1] * (dims + 1)), full), "i64")
    channels_last = g.transpose(g.cast(x, "f32"), [0] + list(range(2, dims + 2)) + [1])
    total = None
    for combo in itertools.product(*taps):
        idx = g.op("concat", [batch] + [g.op("unsqueeze", [i], axes=[dims + 1]) for i, _ in combo], axis=dims + 1)
        value = g.op("gather_nd", [channels_last, idx], batch_dims=0)            # [N, *out, C]
        weight = None
        for _, w in combo:
            if w is not None:
                weight = w if weight is None else g.op("mul", [weight, w])
        if weight is not None:
            value = g.op("mul", [value, g.op("unsqueeze", [weight], axes=[dims + 1])])
        total = value if total is None else g.op("add", [total, value])
    return [g.cast(g.transpose(total, [0, dims + 1] + list(range(1, dims + 1))), x.type.dtype)]
