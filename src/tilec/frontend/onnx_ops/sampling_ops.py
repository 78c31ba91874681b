"""Converters for ONNX ops that sample a feature map at computed, data-dependent positions: RoiAlign,
GridSample and DeformConv.

Each computes its sample positions, clamps and interpolation weights with graph ops (on the device, from
the rois / grid / offsets) and reads the map with GatherND at the taps, following ONNX's reference step
by step, so every pipeline compiles them with kernels it already has.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES
from ..registry import converter
from .compose import Emitter


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
    return pixel_taps(g, x, size, mode, padding, lo, hi)


def pixel_taps(g, x, size: int, mode: str, padding: str, lo: float, hi: float):
    """:func:`_grid_taps` from pixel coordinates ``x`` (reflection folds into [lo, hi])."""
    f = (lambda v: g.const(v, "f32"))
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


@converter("DeformConv", since=19)
def deform_conv(ctx, node):
    """A 2-D conv whose every kernel tap reads X at its regular position plus a learned offset, by
    bilinear interpolation with zeros outside (the reference's GridSample with align_corners), times the
    optional mask: the sampled columns ``[N, kh, kw, oh, ow, C]`` (one GatherND per corner and offset
    group), then an einsum with the weights per group, plus the bias."""
    g = Emitter(ctx)
    x, w, offset = (ctx.input(node, i) for i in range(3))
    bias = ctx.input(node, 3)
    mask = ctx.input(node, 4)
    if x.type.rank != 4 or w.type.rank != 4 or offset.type.rank != 4 or x.type.dtype not in FLOAT_DTYPES:
        raise ctx.error(node, "DeformConv supports 2-D convolutions (X [N, C, H, W]) only")
    n, c, height, width = x.type.shape
    oc, cpg, kh, kw = w.type.shape
    groups, ogroups = int(ctx.attr(node, "group", 1)), int(ctx.attr(node, "offset_group", 1))
    strides = list(ctx.attr(node, "strides", None) or [1, 1])
    dil = list(ctx.attr(node, "dilations", None) or [1, 1])
    pads = list(ctx.attr(node, "pads", None) or [0, 0, 0, 0])
    oh, ow = offset.type.shape[2:]
    if c != cpg * groups or oc % groups or c % ogroups or offset.type.shape[:2] != (n, ogroups * kh * kw * 2) \
            or (mask is not None and mask.type.shape != (n, ogroups * kh * kw, oh, ow)):
        raise ctx.error(node, f"DeformConv shapes do not fit: X {list(x.type.shape)}, W {list(w.type.shape)}, "
                              f"offset {list(offset.type.shape)}, group {groups}, offset_group {ogroups}")
    f32 = (lambda v: g.cast(v, "f32"))
    off = g.reshape(f32(offset), [n, ogroups, kh, kw, 2, oh, ow])
    base_y = (np.arange(oh) * strides[0] - pads[0]).reshape(1, 1, 1, -1, 1) + \
        (np.arange(kh) * dil[0]).reshape(1, -1, 1, 1, 1)
    base_x = (np.arange(ow) * strides[1] - pads[1]).reshape(1, 1, 1, 1, -1) + \
        (np.arange(kw) * dil[1]).reshape(1, 1, -1, 1, 1)
    channels_last = g.transpose(f32(x), [0, 2, 3, 1])
    per = c // ogroups
    full = [n, kh, kw, oh, ow, 1]
    batch = g.const(np.broadcast_to(np.arange(n).reshape(-1, 1, 1, 1, 1, 1), full), "i64")
    cols = []
    for og in range(ogroups):
        part = (lambda k: g.op("squeeze", [g.op("slice", [off], starts=[og, k], ends=[og + 1, k + 1], axes=[1, 4],
                                                steps=[1, 1])], axes=[1, 4]))          # [N, kh, kw, oh, ow]
        py = g.op("add", [part(0), g.const(base_y, "f32")])
        px = g.op("add", [part(1), g.const(base_x, "f32")])
        ys = pixel_taps(g, py, height, "linear", "zeros", 0.0, height - 1.0)
        xs = pixel_taps(g, px, width, "linear", "zeros", 0.0, width - 1.0)
        data = g.op("slice", [channels_last], starts=[og * per], ends=[(og + 1) * per], axes=[3], steps=[1])
        sampled = None
        for (iy, wy), (ix, wx) in ((a, b) for a in ys for b in xs):
            idx = g.op("concat", [batch, g.op("unsqueeze", [iy], axes=[5]), g.op("unsqueeze", [ix], axes=[5])], axis=5)
            v = g.op("mul", [g.op("gather_nd", [data, idx], batch_dims=0),
                             g.op("unsqueeze", [g.op("mul", [wy, wx])], axes=[5])])
            sampled = v if sampled is None else g.op("add", [sampled, v])
        if mask is not None:
            m = g.op("slice", [g.reshape(f32(mask), [n, ogroups, kh, kw, oh, ow])], starts=[og], ends=[og + 1],
                     axes=[1], steps=[1])
            sampled = g.op("mul", [sampled, g.reshape(m, full)])
        cols.append(sampled)
    cols = cols[0] if ogroups == 1 else g.op("concat", cols, axis=5)                    # [N, kh, kw, oh, ow, C]
    cols = g.reshape(cols, [n, kh, kw, oh, ow, groups, cpg])
    wg = g.reshape(f32(w), [groups, oc // groups, cpg, kh, kw])
    y = g.op("einsum", [cols, wg], equation="nijhwgc,gocij->ngohw")
    y = g.reshape(y, [n, oc, oh, ow])
    if bias is not None:
        y = g.op("add", [y, g.reshape(f32(bias), [1, oc, 1, 1])])
    return [g.cast(y, x.type.dtype)]


def _round_half_away(g, v):
    """C's round(): halves away from zero (graph.round rounds them to even)."""
    return g.op("mul", [g.op("sign", [v]), g.op("floor", [g.op("add", [g.op("abs", [v]), g.const(0.5, "f32")])])])


def _roi_bins(g, start, end, bins: int, extent: int):
    """Each bin's ``[lo, hi)`` rows of the roi ``[start, end]`` (rounded corners), clipped to the map, as
    a bool mask ``[R, bins, extent]`` (Caffe's and onnxruntime's bin rule)."""
    f = (lambda v: g.const(v, "f32"))
    size = g.op("max", [g.op("add", [g.op("sub", [end, start]), f(1.0)]), f(1.0)])       # [R, 1]
    step = g.op("div", [size, f(float(bins))])
    p = f(np.arange(bins, dtype=np.float64).reshape(1, -1))
    lo = g.op("add", [g.op("floor", [g.op("mul", [p, step])]), start])
    hi = g.op("add", [g.op("ceil", [g.op("mul", [g.op("add", [p, f(1.0)]), step])]), start])
    lo, hi = (g.op("clip", [t], min=0.0, max=float(extent)) for t in (lo, hi))          # [R, bins]
    pos = f(np.arange(extent, dtype=np.float64).reshape(1, 1, -1))
    lo, hi = (g.op("unsqueeze", [t], axes=[2]) for t in (lo, hi))
    return g.op("and", [g.op("greater_or_equal", [pos, lo]), g.op("less", [pos, hi])])


@converter("MaxRoiPool", since=1)
def max_roi_pool(ctx, node):
    """The max of each of the ``pooled_shape`` bins of every roi (rois ``[R, 5]``: batch index, x1, y1,
    x2, y2 in input coordinates times spatial_scale, rounded), 0 for an empty bin; the bins are masks over
    rows and columns, reduced one axis at a time (R x C x H x bins x W values at the widest step)."""
    g = Emitter(ctx)
    x, rois = ctx.input(node, 0), ctx.input(node, 1)
    pooled = ctx.attr(node, "pooled_shape", None)
    if x.type.rank != 4 or x.type.dtype not in FLOAT_DTYPES or rois.type.rank != 2 or rois.type.shape[1] != 5 \
            or pooled is None or len(pooled) != 2 or min(pooled) < 1:
        raise ctx.error(node, "MaxRoiPool needs X [N, C, H, W], rois [R, 5] and a pooled_shape of two sizes")
    ph, pw = (int(p) for p in pooled)
    scale = float(ctx.attr(node, "spatial_scale", 1.0))
    n_rois = rois.type.shape[0]
    _, c, height, width = x.type.shape
    r = g.cast(rois, "f32")
    col = (lambda k: g.op("slice", [r], starts=[k], ends=[k + 1], axes=[1], steps=[1]))     # [R, 1]
    corner = (lambda k: _round_half_away(g, g.op("mul", [col(k), g.const(scale, "f32")])))
    rows = _roi_bins(g, corner(2), corner(4), ph, height)                                   # [R, ph, H]
    cols = _roi_bins(g, corner(1), corner(3), pw, width)                                    # [R, pw, W]
    batch = g.cast(g.reshape(col(0), [n_rois]), "i64")
    feats = g.op("gather", [g.cast(x, "f32"), batch], axis=0)                               # [R, C, H, W]
    neg = g.const(-np.inf, "f32")
    # Max over each bin's columns: [R, C, H, pw, W] -> [R, C, H, pw].
    wide = g.op("where", [g.reshape(cols, [n_rois, 1, 1, pw, width]),
                          g.reshape(feats, [n_rois, c, height, 1, width]), neg])
    by_col = g.op("reduce_max", [wide], axes=[4], keepdims=0)
    # Then over its rows: [R, C, ph, H, pw] -> [R, C, ph, pw].
    tall = g.op("where", [g.reshape(rows, [n_rois, 1, ph, height, 1]),
                          g.reshape(by_col, [n_rois, c, 1, height, pw]), neg])
    out = g.op("reduce_max", [tall], axes=[3], keepdims=0)
    empty = g.op("equal", [out, neg])
    return [g.cast(g.op("where", [empty, g.const(0.0, "f32"), out]), x.type.dtype)]
