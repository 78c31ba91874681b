"""Converters for ONNX's quantized-inference ops, built from existing graph ops (no new graph op).

QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul and
QLinearConv become casts, elementwise arithmetic, ``round`` (half to even) / ``clip`` and an integer
``matmul`` / ``conv`` in i32, so every pipeline, the decomposition and the emulator handle them with the
kernels they already have, and Welder fuses the (de)quantisation into its neighbours like any other
elementwise op. The arithmetic follows the ONNX reference step by step: the integer product is exact in
i32, and the requantisation of QLinearMatMul / QLinearConv runs in f64 as the reference's numpy promotion
does (i32 * f32 -> f64), so the rounding ties land where the reference puts them.

Element types: int8 and uint8 quantised tensors (what onnxruntime's QDQ quantiser emits), per-tensor,
per-axis and blocked scales. 16-, 4- and 2-bit integers and the float8/float4 formats are element types
tilec does not carry; such a node is refused with a diagnostic.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import np_dtype
from ..registry import converter
from .compose import Emitter, attr_dtype

# The integer range of each quantised element type tilec carries.
QUANT_RANGES = {"u8": (0, 255), "i8": (-128, 127)}


def _axis(ctx, node, rank: int) -> int:
    """The node's ``axis`` attribute, non-negative; checked only where a per-axis or blocked parameter
    uses it (the default 1 is meaningless, and legal, for a rank-1 input with per-tensor scales)."""
    axis = int(ctx.attr(node, "axis", 1))
    return axis + rank if axis < 0 else axis


def quant_param(g, node, v, x_shape, axis: int, block_size: int = 0):
    """A scale or zero point made to broadcast against ``x_shape``: a scalar or one-element tensor as is,
    a 1-D tensor along ``axis`` (per-axis), or with ``block_size``, a tensor whose ``axis`` dim counts
    blocks, repeated block_size times along it (blocked quantisation; ONNX's ``reshape_input``)."""
    ctx, t = g.ctx, v.type
    if t.numel == 1 and not block_size:
        return g.reshape(v, [])
    if not 0 <= axis < len(x_shape):
        raise ctx.error(node, f"axis {axis} is out of range for rank {len(x_shape)}")
    if block_size:
        if block_size < 0:
            raise ctx.error(node, f"block_size must be positive, not {block_size}")
        n = x_shape[axis]
        want = list(x_shape)
        want[axis] = -(-n // block_size)
        if list(t.shape) != want:
            raise ctx.error(node, f"a blocked scale or zero point must have shape {want}, not {list(t.shape)}")
        idx = ctx.constant(np.arange(n, dtype=np.int64) // block_size)
        return g.op("gather", [v, idx], axis=axis)
    if t.rank != 1 or t.shape[0] != x_shape[axis]:
        raise ctx.error(node, f"a per-axis scale or zero point must have shape [{x_shape[axis]}] "
                              f"(axis {axis} of {list(x_shape)}), not {list(t.shape)}")
    shape = [1] * len(x_shape)
    shape[axis] = x_shape[axis]
    return g.reshape(v, shape)


def _quant_dtype(ctx, node, dtype: str, what: str) -> str:
    if dtype not in QUANT_RANGES:
        raise ctx.error(node, f"{node.op_type} {what} of element type {dtype} is not supported "
                              "(tilec quantises to int8 and uint8)")
    return dtype


def _zero_point_or_zero(ctx, node, i: int, dtype: str):
    """Input ``i`` (a zero point), or a scalar 0 of ``dtype`` when absent."""
    if ctx.has_input(node, i):
        return ctx.input(node, i)
    return ctx.constant(np.zeros((), dtype=np_dtype(dtype)))


def requantize(g, acc, factor, zero_point, out_dtype: str):
    """``clip(rint(acc * factor + zero_point))`` in ``out_dtype``'s range, computed in f64 (the reference's
    numpy promotion of an i32 accumulator times a float scale)."""
    lo, hi = QUANT_RANGES[out_dtype]
    y = g.op("mul", [g.cast(acc, "f64"), g.cast(factor, "f64")])
    y = g.op("add", [y, g.cast(zero_point, "f64")])
    y = g.op("clip", [g.op("round", [y])], min=float(lo), max=float(hi))
    return g.cast(y, out_dtype)


@converter("QuantizeLinear", since=10)
def quantize_linear(ctx, node):
    g = Emitter(ctx)
    x, scale = ctx.input(node, 0), ctx.input(node, 1)
    rank = x.type.rank
    axis = _axis(ctx, node, rank)
    block = int(ctx.attr(node, "block_size", 0))
    out_attr = int(ctx.attr(node, "output_dtype", 0))
    if ctx.has_input(node, 2):
        out = ctx.input_type(node, 2).dtype
        if out_attr and attr_dtype(ctx, node, out_attr, "QuantizeLinear output_dtype") != out:
            raise ctx.error(node, "QuantizeLinear output_dtype differs from the zero point's element type")
    else:
        out = attr_dtype(ctx, node, out_attr, "QuantizeLinear output_dtype") if out_attr else "u8"
    _quant_dtype(ctx, node, out, "output")
    precision = int(ctx.attr(node, "precision", 0))
    calc = attr_dtype(ctx, node, precision, "QuantizeLinear precision") if precision else x.type.dtype
    s = quant_param(g, node, g.cast(scale, calc), x.type.shape, axis, block)
    q = g.op("round", [g.op("div", [g.cast(x, calc), s])])
    # The zero point is added in f32 (exact for every int8/uint8 value), then saturated.
    zp = quant_param(g, node, _zero_point_or_zero(ctx, node, 2, out), x.type.shape, axis, block)
    lo, hi = QUANT_RANGES[out]
    y = g.op("add", [g.cast(q, "f32"), g.cast(zp, "f32")])
    return [g.cast(g.op("clip", [y], min=float(lo), max=float(hi)), out)]


@converter("DequantizeLinear", since=10)
def dequantize_linear(ctx, node):
    g = Emitter(ctx)
    x, scale = ctx.input(node, 0), ctx.input(node, 1)
    if x.type.dtype not in QUANT_RANGES and x.type.dtype != "i32":
        _quant_dtype(ctx, node, x.type.dtype, "input")
    axis = _axis(ctx, node, x.type.rank)
    block = int(ctx.attr(node, "block_size", 0))
    out_attr = int(ctx.attr(node, "output_dtype", 0))
    out = attr_dtype(ctx, node, out_attr, "DequantizeLinear output_dtype") if out_attr else scale.type.dtype
    dx = g.cast(x, "f32")
    if ctx.has_input(node, 2):
        zp = ctx.input(node, 2)
        if zp.type.dtype != x.type.dtype:
            raise ctx.error(node, f"DequantizeLinear zero point ({zp.type.dtype}) and input ({x.type.dtype}) "
                                  "have different element types")
        dx = g.op("sub", [dx, quant_param(g, node, g.cast(zp, "f32"), x.type.shape, axis, block)])
    y = g.op("mul", [dx, quant_param(g, node, g.cast(scale, "f32"), x.type.shape, axis, block)])
    return [g.cast(y, out)]


@converter("DynamicQuantizeLinear", since=11)
def dynamic_quantize_linear(ctx, node):
    """uint8 with a scale and zero point from the tensor's own range (extended to include 0)."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    dt = x.type.dtype
    if dt != "f32":
        raise ctx.error(node, f"DynamicQuantizeLinear takes float32 input, not {dt}")
    every = {"axes": list(range(x.type.rank)), "keepdims": 0}
    zero, one = g.const(0.0, dt), g.const(1.0, dt)
    hi = g.op("max", [g.op("reduce_max", [x], **every), zero])
    lo = g.op("min", [g.op("reduce_min", [x], **every), zero])
    span = g.op("where", [g.op("equal", [hi, lo]), one, g.op("sub", [hi, lo])])
    scale = g.op("div", [span, g.const(255.0, dt)])
    zp = g.op("clip", [g.op("sub", [zero, g.op("div", [lo, scale])])], min=0.0, max=255.0)
    zp = g.op("round", [zp])
    y = g.op("add", [g.op("round", [g.op("div", [x, scale])]), zp])
    y = g.op("clip", [y], min=0.0, max=255.0)
    return [g.cast(y, "u8"), scale, g.cast(zp, "u8")]


def _centered(g, node, v, zp, rows_axis: int | None = None):
    """``int32(v) - int32(zp)``; a 1-D zero point of more than one element applies along ``rows_axis``
    (MatMulInteger's per-row A zero point) or along the last axis (per-column B)."""
    ctx = g.ctx
    if v.type.dtype not in QUANT_RANGES:
        _quant_dtype(ctx, node, v.type.dtype, "input")
    out = g.cast(v, "i32")
    if zp is None:
        return out
    if zp.type.dtype != v.type.dtype:
        raise ctx.error(node, f"{node.op_type} zero point ({zp.type.dtype}) and input ({v.type.dtype}) "
                              "have different element types")
    zp = g.cast(zp, "i32")
    if zp.type.numel == 1:
        zp = g.reshape(zp, [])
    elif rows_axis is not None:
        shape = [1] * v.type.rank
        shape[rows_axis] = zp.type.numel
        zp = g.reshape(zp, shape)
    return g.op("sub", [out, zp])


def _integer_matmul(g, node, a, a_zp, b, b_zp):
    a_rows = a.type.rank - 2 if a.type.rank >= 2 else None
    return g.op("matmul", [_centered(g, node, a, a_zp, a_rows), _centered(g, node, b, b_zp)])


@converter("MatMulInteger", since=10)
def matmul_integer(ctx, node):
    g = Emitter(ctx)
    return [_integer_matmul(g, node, ctx.input(node, 0), ctx.input(node, 2), ctx.input(node, 1),
                            ctx.input(node, 3))]


def _integer_conv(g, node, x, x_zp, w, w_zp, bias):
    """Conv of the zero-point-centred i32 tensors; padding adds zeros after centring, i.e. it pads x
    with its zero point, as the reference does."""
    from .nn_ops import conv_attrs
    ctx = g.ctx
    xc = _centered(g, node, x, x_zp)
    wc = _centered(g, node, w, w_zp, rows_axis=0)
    values = [xc, wc] + ([bias] if bias is not None else [])
    return g.op("conv", values, **conv_attrs(ctx, node, x.type.shape, w.type.shape))


@converter("ConvInteger", since=10)
def conv_integer(ctx, node):
    g = Emitter(ctx)
    return [_integer_conv(g, node, ctx.input(node, 0), ctx.input(node, 2), ctx.input(node, 1),
                          ctx.input(node, 3), None)]


def _out_dtype(ctx, node, y_zp_index: int, fallback: str) -> str:
    dt = ctx.input_type(node, y_zp_index).dtype if ctx.has_input(node, y_zp_index) else fallback
    return _quant_dtype(ctx, node, dt, "output")


@converter("QLinearMatMul", since=10)
def qlinear_matmul(ctx, node):
    g = Emitter(ctx)
    a, a_s, a_zp, b, b_s, b_zp, y_s = (ctx.input(node, i) for i in range(7))
    out = _out_dtype(ctx, node, 7, a.type.dtype)
    acc = _integer_matmul(g, node, a, a_zp, b, b_zp)
    if a_s.type.numel > 1 and a.type.rank >= 2:  # per-row scale of A
        a_s = g.reshape(a_s, [a_s.type.numel, 1])
    factor = g.op("div", [g.op("mul", [a_s, b_s]), y_s])
    zp = _zero_point_or_zero(ctx, node, 7, out)
    return [requantize(g, acc, factor, zp, out)]


@converter("QLinearConv", since=10)
def qlinear_conv(ctx, node):
    g = Emitter(ctx)
    x, x_s, x_zp, w, w_s, w_zp, y_s = (ctx.input(node, i) for i in range(7))
    out = _out_dtype(ctx, node, 7, x.type.dtype)
    bias = ctx.input(node, 8)
    if bias is not None and bias.type.dtype != "i32":
        raise ctx.error(node, f"QLinearConv bias must be int32, not {bias.type.dtype}")
    acc = _integer_conv(g, node, x, x_zp, w, w_zp, bias)
    if w_s.type.numel > 1:  # per output channel
        w_s = g.reshape(w_s, [1, w_s.type.numel] + [1] * (x.type.rank - 2))
    factor = g.op("div", [g.op("mul", [x_s, w_s]), y_s])
    zp = _zero_point_or_zero(ctx, node, 7, out)
    return [requantize(g, acc, factor, zp, out)]
