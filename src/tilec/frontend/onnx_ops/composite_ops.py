"""Converters for ONNX activations, normalisations and pools that are compositions of graph ops.

Swish, SwiGLU, Shrink, Hardmax, OneHot, EyeLike, LpNormalization, MeanVarianceNormalization,
GroupNormalization, LpPool and GlobalLpPool: each is written as the formula ONNX's reference (or its
function body) computes, through :class:`compose.Emitter`, so no new graph op, reference or kernel is
needed and the fusion passes see ordinary elementwise / reduce / conv ops.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES, np_dtype
from ..registry import converter
from .compose import Emitter, attr_dtype, axis_in
from .nn_ops import resolve_pads


def _float_input(ctx, node, i: int = 0):
    x = ctx.input(node, i)
    if x.type.dtype not in FLOAT_DTYPES:
        raise ctx.error(node, f"{node.op_type} takes a float tensor, not {x.type.dtype}")
    return x


def swish(g, x, alpha: float):
    """``x * sigmoid(alpha * x)``."""
    a = g.const(alpha, x.type.dtype)
    return g.op("mul", [x, g.op("sigmoid", [g.op("mul", [x, a])])])


@converter("Swish", since=24)
def swish_op(ctx, node):
    return [swish(Emitter(ctx), _float_input(ctx, node), float(ctx.attr(node, "alpha", 1.0)))]


@converter("SwiGLU", since=1)
def swiglu(ctx, node):
    g = Emitter(ctx)
    a, b = _float_input(ctx, node, 0), _float_input(ctx, node, 1)
    if a.type != b.type:
        raise ctx.error(node, f"SwiGLU inputs must have one type and shape, not {a.type} and {b.type}")
    return [g.op("mul", [swish(g, a, float(ctx.attr(node, "alpha", 1.0))), b])]


@converter("Shrink", since=9)
def shrink(ctx, node):
    """``x + bias`` below -lambd, ``x - bias`` above lambd, 0 between."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    dt = x.type.dtype
    lambd, bias = float(ctx.attr(node, "lambd", 0.5)), float(ctx.attr(node, "bias", 0.0))
    if dt not in FLOAT_DTYPES and (lambd != int(lambd) or bias != int(bias)):
        raise ctx.error(node, f"Shrink of an {dt} tensor needs integral lambd and bias")
    c = (lambda v: g.const(v, dt))
    low = g.op("less", [x, c(-lambd)])
    high = g.op("greater", [x, c(lambd)])
    upper = g.op("where", [high, g.op("sub", [x, c(bias)]), c(0)])
    return [g.op("where", [low, g.op("add", [x, c(bias)]), upper])]


def _one_hot_along(g, index, depth: int, axis: int, rank: int):
    """bool ``[..., depth (at axis), ...]``: true where the position along ``axis`` equals ``index``
    (``index`` has size 1 at ``axis``)."""
    shape = [1] * rank
    shape[axis] = depth
    positions = g.const(np.arange(depth).reshape(shape), index.type.dtype)
    return g.op("equal", [positions, index])


@converter("Hardmax")
def hardmax(ctx, node):
    """1 at the first maximum along the axis, 0 elsewhere (before opset 13, of the input coerced to 2-D)."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    shape, rank = list(x.type.shape), x.type.rank
    legacy = ctx.opset < 13
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 1 if legacy else -1)), rank)
    v = x
    if legacy:
        outer = int(np.prod(shape[:axis], dtype=np.int64))
        v, axis = g.reshape(x, [outer, int(np.prod(shape[axis:], dtype=np.int64))]), 1
    arg = g.op("arg_max", [v], axis=axis, keepdims=1, select_last_index=0)
    y = g.cast(_one_hot_along(g, arg, v.type.shape[axis], axis, v.type.rank), x.type.dtype)
    return [g.reshape(y, shape)]


@converter("OneHot", since=9)
def one_hot(ctx, node):
    """``values[1]`` where the new axis' position equals the index (negative ones count from depth),
    ``values[0]`` elsewhere."""
    g = Emitter(ctx)
    idx = ctx.input(node, 0)
    depth = ctx.const_input(node, 1, "depth").reshape(-1)
    if depth.size != 1 or depth[0] < 1:
        raise ctx.error(node, "OneHot depth must be one positive value")
    depth = int(depth[0])
    values = ctx.input(node, 2)
    if values.type.numel != 2:
        raise ctx.error(node, "OneHot values must hold two elements: [off, on]")
    rank = idx.type.rank + 1
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", -1)), rank)
    # Compared in the indices' own type, as the reference does (a fractional float index matches nothing).
    dt = idx.type.dtype
    i = idx
    if dt not in ("u8", "bool"):
        i = g.op("where", [g.op("less", [i, g.const(0, dt)]), g.op("add", [i, g.const(depth, dt)]), i])
    hot = _one_hot_along(g, g.op("unsqueeze", [i], axes=[axis]), depth, axis, rank)
    flat = g.reshape(values, [2])
    off, on = (g.reshape(g.op("slice", [flat], starts=[k], ends=[k + 1], axes=[0], steps=[1]), [])
               for k in (0, 1))
    return [g.op("where", [hot, on, off])]


@converter("EyeLike", since=9)
def eye_like(ctx, node):
    """A constant: ones on the k-th diagonal of the input's 2-D shape (the input's values are unused)."""
    t = ctx.input_type(node, 0)
    if t.rank != 2:
        raise ctx.error(node, f"EyeLike takes a 2-D input, not rank {t.rank}")
    code = ctx.attr(node, "dtype", None)
    dt = attr_dtype(ctx, node, int(code), "EyeLike dtype") if code is not None else t.dtype
    return [ctx.constant(np.eye(t.shape[0], t.shape[1], int(ctx.attr(node, "k", 0)), dtype=np_dtype(dt)))]


@converter("LpNormalization")
def lp_normalization(ctx, node):
    """``x / (sum x^p)^(1/p)`` along the axis (p 1 or 2; the reference sums x, not |x|, for p = 1), 0
    where the norm is 0."""
    g = Emitter(ctx)
    x = _float_input(ctx, node)
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", -1)), x.type.rank)
    p = int(ctx.attr(node, "p", 2))
    if p not in (1, 2):
        raise ctx.error(node, f"LpNormalization p must be 1 or 2, not {p}")
    red = {"axes": [axis], "keepdims": 1}
    norm = g.op("reduce_sum", [x], **red) if p == 1 else g.op("reduce_l2", [x], **red)
    zero = g.const(0.0, x.type.dtype)
    return [g.op("where", [g.op("equal", [norm, zero]), zero, g.op("div", [x, norm])])]


@converter("MeanVarianceNormalization", since=9)
def mean_variance_normalization(ctx, node):
    """``(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)`` over ``axes`` (default N, H, W)."""
    g = Emitter(ctx)
    x = _float_input(ctx, node)
    rank = x.type.rank
    axes = sorted({axis_in(ctx, node, int(a), rank) for a in ctx.attr(node, "axes", [0, 2, 3])})
    red = {"axes": axes, "keepdims": 1}
    mean = g.op("reduce_mean", [x], **red)
    sq_mean = g.op("reduce_mean", [g.op("mul", [x, x])], **red)
    std = g.op("sqrt", [g.op("sub", [sq_mean, g.op("mul", [mean, mean])])])
    denom = g.op("add", [std, g.const(1e-9, x.type.dtype)])
    return [g.op("div", [g.op("sub", [x, mean]), denom])]


@converter("GroupNormalization", since=18)
def group_normalization(ctx, node):
    """Normalise each group of channels over its channels and spatial positions, then scale and shift
    per channel (opset 21) or per group (opset 18)."""
    g = Emitter(ctx)
    x, scale, bias = _float_input(ctx, node), ctx.input(node, 1), ctx.input(node, 2)
    shape, rank = list(x.type.shape), x.type.rank
    groups = int(ctx.attr(node, "num_groups", 0))
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    if rank < 2 or groups < 1 or shape[1] % groups:
        raise ctx.error(node, f"GroupNormalization num_groups {groups} must divide the channels of {shape}")
    if int(ctx.attr(node, "stash_type", 1)) != 1:
        raise ctx.error(node, "GroupNormalization stash_type other than 1 (float32) is not supported")
    c = shape[1]
    per_group = scale.type.numel == groups and c != groups and ctx.opset < 21
    if scale.type.numel != (groups if per_group else c) or bias.type.numel != scale.type.numel:
        raise ctx.error(node, f"GroupNormalization scale and bias must have {c} elements")
    dt = x.type.dtype
    xf = g.cast(x, "f32")
    grouped = g.reshape(xf, [shape[0], groups, int(np.prod(shape[1:], dtype=np.int64)) // groups])
    red = {"axes": [2], "keepdims": 1}
    mean = g.op("reduce_mean", [grouped], **red)
    centred = g.op("sub", [grouped, mean])
    var = g.op("reduce_mean", [g.op("mul", [centred, centred])], **red)
    inv = g.op("reciprocal", [g.op("sqrt", [g.op("add", [var, g.const(eps, "f32")])])])
    y = g.reshape(g.op("mul", [centred, inv]), shape)
    ones = [1] * (rank - 2)
    if per_group:   # opset 18: one scale per group, repeated over its channels
        rep = ctx.constant(np.repeat(np.arange(groups, dtype=np.int64), c // groups))
        scale, bias = (g.op("gather", [t, rep], axis=0) for t in (scale, bias))
    scale, bias = (g.reshape(g.cast(t, "f32"), [c] + ones) for t in (scale, bias))
    return [g.cast(g.op("add", [g.op("mul", [y, scale]), bias]), dt)]


def _abs_pow(g, x, p: int):
    """|x|^p (x * x for p = 2, no pow call)."""
    if p == 2:
        return g.op("mul", [x, x])
    a = g.op("abs", [x])
    return a if p == 1 else g.op("pow", [a, g.const(float(p), x.type.dtype)])


def _root(g, s, p: int):
    if p == 1:
        return s
    if p == 2:
        return g.op("sqrt", [s])
    return g.op("pow", [s, g.const(1.0 / p, s.type.dtype)])


@converter("GlobalLpPool", since=2)
def global_lp_pool(ctx, node):
    g = Emitter(ctx)
    x = _float_input(ctx, node)
    p = int(ctx.attr(node, "p", 2))
    if p < 1:
        raise ctx.error(node, f"GlobalLpPool p must be positive, not {p}")
    s = g.op("reduce_sum", [_abs_pow(g, x, p)], axes=list(range(2, x.type.rank)), keepdims=1)
    return [_root(g, s, p)]


@converter("LpPool", since=2)
def lp_pool(ctx, node):
    """``(sum over the window of |x|^p)^(1/p)``: the window sum is a depthwise conv with a kernel of
    ones, zeros padding it as the reference pads."""
    g = Emitter(ctx)
    x = _float_input(ctx, node)
    p = int(ctx.attr(node, "p", 2))
    kernel = ctx.attr(node, "kernel_shape", None)
    if kernel is None or p < 1:
        raise ctx.error(node, "LpPool needs kernel_shape and a positive p")
    if int(ctx.attr(node, "ceil_mode", 0)):
        raise ctx.error(node, "LpPool ceil_mode is not supported")
    n = x.type.rank - 2
    strides = list(ctx.attr(node, "strides", None) or [1] * n)
    dilations = list(ctx.attr(node, "dilations", None) or [1] * n)
    pads = resolve_pads(ctx, node, x.type.shape, kernel, dilations, strides)
    c = x.type.shape[1]
    ones = g.const(np.ones([c, 1] + list(kernel)), x.type.dtype)
    s = g.op("conv", [_abs_pow(g, x, p), ones], strides=strides, dilations=dilations, pads=pads, group=c)
    return [_root(g, s, p)]


@converter("CausalConvWithState", since=1)
def causal_conv_with_state(ctx, node):
    """A depthwise conv over ``concat(past_state or zeros, input)`` along length (no padding, so output
    t sees inputs t-k+1..t), then the optional SiLU (in f32); the new state is the last k-1 positions."""
    g = Emitter(ctx)
    x, w = _float_input(ctx, node, 0), ctx.input(node, 1)
    bias = ctx.input(node, 2)
    if x.type.rank != 3 or w.type.rank != 3 or w.type.shape[:2] != (x.type.shape[1], 1):
        raise ctx.error(node, f"CausalConvWithState needs input [batch, channels, length] and weight "
                              f"[channels, 1, k], not {list(x.type.shape)} and {list(w.type.shape)}")
    b, c, _ = x.type.shape
    k = w.type.shape[2]
    activation = ctx.attr(node, "activation", "none")
    if activation not in ("none", "silu", "swish"):
        raise ctx.error(node, f"CausalConvWithState activation must be none, silu or swish, not '{activation}'")
    if ctx.has_input(node, 3):
        past = ctx.input(node, 3)
        if past.type.shape != (b, c, k - 1):
            raise ctx.error(node, f"CausalConvWithState past_state must have shape {[b, c, k - 1]}")
    else:
        past = g.const(np.zeros((b, c, k - 1)), x.type.dtype)
    padded = g.op("concat", [past, x], axis=2) if k > 1 else x
    y = g.op("conv", [padded, w] + ([bias] if bias is not None else []), strides=[1], dilations=[1],
             pads=[0, 0], group=c)
    if activation != "none":
        yf = g.cast(y, "f32")
        y = g.cast(g.op("mul", [yf, g.op("sigmoid", [yf])]), x.type.dtype)
    length = padded.type.shape[2]
    state = g.op("slice", [padded], starts=[length - (k - 1)], ends=[length], axes=[2], steps=[1])
    return [y, state]


# Det by the Leibniz sum stays small up to this size (720 products of 6); larger needs a factorisation.
MAX_DET_SIZE = 6


@converter("Det", since=11)
def det(ctx, node):
    """``sum over permutations p of sign(p) * prod_i A[..., i, p(i)]``: one gather of the permuted
    entries, a product over i and a signed sum, for matrices up to MAX_DET_SIZE."""
    import itertools
    g = Emitter(ctx)
    a = _float_input(ctx, node)
    shape = list(a.type.shape)
    if a.type.rank < 2 or shape[-1] != shape[-2]:
        raise ctx.error(node, f"Det takes [..., M, M] matrices, not {shape}")
    m = shape[-1]
    if m > MAX_DET_SIZE:
        raise ctx.error(node, f"Det of {m}x{m} matrices is not supported (at most {MAX_DET_SIZE}x{MAX_DET_SIZE})")
    perms = np.array(list(itertools.permutations(range(m))), dtype=np.int64)            # [P, M]
    signs = np.array([np.linalg.det(np.eye(m)[p]) for p in perms]).round()
    flat = g.reshape(g.cast(a, "f64"), shape[:-2] + [m * m])
    picked = g.op("gather", [flat, ctx.constant(np.arange(m) * m + perms)], axis=a.type.rank - 2)
    terms = g.op("reduce_prod", [picked], axes=[a.type.rank - 1], keepdims=0)            # [..., P]
    total = g.op("reduce_sum", [g.op("mul", [terms, g.const(signs, "f64")])], axes=[a.type.rank - 2], keepdims=0)
    return [g.cast(total, a.type.dtype)]
