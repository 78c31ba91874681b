"""Converters for ONNX elementwise, logic, cast, softmax, reduction and normalisation ops.

Each converter normalises the node to the graph dialect's conventions: constant inputs that ONNX later
turned into inputs (Clip min/max, Reduce* axes) become attributes, axes are non-negative, and defaults
are explicit.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES
from ..onnx_load import ir_dtype
from ..registry import converter
from .compose import axis_in

BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Pow": "pow", "PRelu": "prelu",
          "Equal": "equal", "Less": "less", "Greater": "greater", "LessOrEqual": "less_or_equal",
          "GreaterOrEqual": "greater_or_equal", "And": "and", "Or": "or", "Xor": "xor"}
VARIADIC = {"Min": "min", "Max": "max", "Sum": "sum", "Mean": "mean"}
UNARY = {"Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Tanh": "tanh", "Sigmoid": "sigmoid", "Relu": "relu",
         "Neg": "neg", "Abs": "abs", "Reciprocal": "reciprocal", "Floor": "floor", "Ceil": "ceil",
         "Erf": "erf", "Sin": "sin", "Cos": "cos", "Sign": "sign", "Round": "round", "Softplus": "softplus",
         "Softsign": "softsign", "Mish": "mish", "HardSwish": "hard_swish", "Not": "not", "IsNaN": "is_nan",
         "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
         "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh"}
# ONNX op -> (graph op, {attribute: default}); the attributes are floats.
UNARY_WITH_ATTRS = {
    "LeakyRelu": ("leaky_relu", {"alpha": 0.01}),
    "Elu": ("elu", {"alpha": 1.0}),
    "Celu": ("celu", {"alpha": 1.0}),
    "Selu": ("selu", {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "ThresholdedRelu": ("thresholded_relu", {"alpha": 1.0}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": 0.2, "beta": 0.5}),
}


def _inputs(ctx, node):
    return [ctx.input(node, i) for i in range(len(node.input))]


def _emit(ctx, op, values, attrs=None):
    return ctx.emit(f"graph.{op}", values, attrs or {})


def _unify(ctx, node, values):
    """ONNX requires equal element types for these ops; a mismatch is a malformed model."""
    dtypes = {v.type.dtype for v in values if v is not None}
    if len(dtypes) > 1:
        raise ctx.error(node, f"{node.op_type} inputs have different element types: {', '.join(sorted(dtypes))}")


@converter(*BINARY)
def binary(ctx, node):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    if node.op_type != "Pow":
        _unify(ctx, node, [a, b])
    return _emit(ctx, BINARY[node.op_type], [a, b])


@converter("Mod", since=10)
def mod(ctx, node):
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    _unify(ctx, node, [a, b])
    fmod = int(ctx.attr(node, "fmod", 0))
    if fmod not in (0, 1):
        raise ctx.error(node, f"Mod fmod must be 0 or 1, not {fmod}")
    return _emit(ctx, "mod", [a, b], {"fmod": fmod})


BITWISE = {"BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or", "BitwiseXor": "bitwise_xor"}


def _integer_input(ctx, node, v):
    if v.type.dtype in FLOAT_DTYPES or v.type.dtype == "bool":
        raise ctx.error(node, f"{node.op_type} takes integer tensors, not {v.type.dtype}")
    return v


@converter(*BITWISE, since=18)
def bitwise(ctx, node):
    a, b = (_integer_input(ctx, node, ctx.input(node, i)) for i in (0, 1))
    _unify(ctx, node, [a, b])
    return _emit(ctx, BITWISE[node.op_type], [a, b])


@converter("BitwiseNot", since=18)
def bitwise_not(ctx, node):
    return _emit(ctx, "bitwise_not", [_integer_input(ctx, node, ctx.input(node, 0))])


@converter("BitShift", since=11)
def bit_shift(ctx, node):
    x, y = (_integer_input(ctx, node, ctx.input(node, i)) for i in (0, 1))
    _unify(ctx, node, [x, y])
    direction = ctx.attr(node, "direction", "")
    if direction not in ("LEFT", "RIGHT"):
        raise ctx.error(node, f"BitShift direction must be LEFT or RIGHT, not '{direction}'")
    return _emit(ctx, "bit_shift", [x, y], {"direction": direction})


@converter(*VARIADIC)
def variadic(ctx, node):
    values = [v for v in _inputs(ctx, node) if v is not None]
    if not values:
        raise ctx.error(node, f"{node.op_type} needs at least one input")
    _unify(ctx, node, values)
    return _emit(ctx, VARIADIC[node.op_type], values)


@converter(*UNARY)
def unary(ctx, node):
    return _emit(ctx, UNARY[node.op_type], [ctx.input(node, 0)])


@converter(*UNARY_WITH_ATTRS)
def unary_with_attrs(ctx, node):
    op, defaults = UNARY_WITH_ATTRS[node.op_type]
    attrs = {k: float(ctx.attr(node, k, d)) for k, d in defaults.items()}
    return _emit(ctx, op, [ctx.input(node, 0)], attrs)


@converter("Gelu", since=20)
def gelu(ctx, node):
    approximate = ctx.attr(node, "approximate", "none")
    if approximate not in ("none", "tanh"):
        raise ctx.error(node, f"Gelu approximate must be 'none' or 'tanh', not '{approximate}'")
    return _emit(ctx, "gelu", [ctx.input(node, 0)], {"approximate": approximate})


@converter("IsInf")
def is_inf(ctx, node):
    attrs = {k: int(ctx.attr(node, k, 1)) for k in ("detect_negative", "detect_positive")}
    return _emit(ctx, "is_inf", [ctx.input(node, 0)], attrs)


@converter("Where")
def where(ctx, node):
    c, x, y = _inputs(ctx, node)[:3]
    _unify(ctx, node, [x, y])
    return _emit(ctx, "where", [c, x, y])


@converter("Clip")
def clip(ctx, node):
    x = ctx.input(node, 0)
    is_float = x.type.dtype in FLOAT_DTYPES
    bounds = {}
    if ctx.opset < 11:
        for k, d in (("min", -3.4028234663852886e38), ("max", 3.4028234663852886e38)):
            bounds[k] = float(ctx.attr(node, k, d))
        return _emit(ctx, "clip", [x], bounds)
    y = x
    for i, (k, op) in enumerate((("min", "max"), ("max", "min")), start=1):
        if not ctx.has_input(node, i):
            continue
        if ctx.is_const(node, i):
            v = ctx.const_input(node, i, k).reshape(-1)
            if v.size != 1:
                raise ctx.error(node, f"Clip {k} must be a scalar")
            bounds[k] = float(v[0]) if is_float else int(v[0])
        else:
            # A bound computed at run time: clip is then an elementwise max/min with it.
            y = _emit(ctx, op, [y, ctx.input(node, i)])[0]
    return _emit(ctx, "clip", [y], bounds) if bounds or y is x else [y]


@converter("Cast")
def cast(ctx, node):
    to = ir_dtype(int(ctx.attr(node, "to", 0)), f"Cast target of node '{ctx.node_label}'", ctx.file)
    return _emit(ctx, "cast", [ctx.input(node, 0)], {"to": to})


# Pairs of carried element types of one width whose bits BitCast reinterprets (else a plain conversion
# keeps the bits: int8 <-> uint8 wraps, bool -> uint8 is 0/1).
BITCAST_PAIRS = {("f32", "i32"), ("i32", "f32"), ("f64", "i64"), ("i64", "f64")}


@converter("BitCast", since=26)
def bit_cast(ctx, node):
    x = ctx.input(node, 0)
    to = ir_dtype(int(ctx.attr(node, "to", 0)), f"BitCast target of node '{ctx.node_label}'", ctx.file)
    src = x.type.dtype
    if to == src:
        return [x]
    if (src, to) in BITCAST_PAIRS:
        return _emit(ctx, "bitcast", [x], {"to": to})
    if {src, to} <= {"i8", "u8"} or (src, to) in (("bool", "u8"), ("bool", "i8")):
        return _emit(ctx, "cast", [x], {"to": to})
    raise ctx.error(node, f"BitCast from {src} to {to} is not supported (the types differ in width, or tilec "
                          "does not carry one of them)")


@converter("CastLike", since=15)
def cast_like(ctx, node):
    return _emit(ctx, "cast", [ctx.input(node, 0)], {"to": ctx.input_type(node, 1).dtype})


@converter("Softmax", "LogSoftmax")
def softmax(ctx, node):
    x = ctx.input(node, 0)
    legacy = ctx.opset < 13  # before 13, the input is coerced to 2-D at axis (default 1)
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 1 if legacy else -1)), x.type.rank)
    op = "softmax" if node.op_type == "Softmax" else "log_softmax"
    return _emit(ctx, op, [x], {"axis": axis, "flatten": legacy and axis != x.type.rank - 1})


REDUCE = {"ReduceSum": "reduce_sum", "ReduceMean": "reduce_mean", "ReduceMax": "reduce_max",
          "ReduceMin": "reduce_min", "ReduceProd": "reduce_prod", "ReduceSumSquare": "reduce_sum_square",
          "ReduceL1": "reduce_l1", "ReduceL2": "reduce_l2", "ReduceLogSum": "reduce_log_sum",
          "ReduceLogSumExp": "reduce_log_sum_exp"}


def reduce_axes(ctx, node, rank: int, axes_input_since: int) -> list:
    """The node's reduction axes, sorted and non-negative; [] means 'reduce nothing'."""
    if ctx.opset >= axes_input_since:
        axes = [int(a) for a in ctx.const_input(node, 1, "axes").reshape(-1)] if ctx.has_input(node, 1) else []
    else:
        axes = list(ctx.attr(node, "axes", []))
    noop = int(ctx.attr(node, "noop_with_empty_axes", 0))
    if not axes:
        return [] if noop else list(range(rank))
    out = sorted({axis_in(ctx, node, a, rank) for a in axes})
    if len(out) != len(axes):
        raise ctx.error(node, f"{node.op_type} axes {axes} repeat an axis")
    return out


@converter(*REDUCE)
def reduce(ctx, node):
    x = ctx.input(node, 0)
    axes = reduce_axes(ctx, node, x.type.rank, 13 if node.op_type == "ReduceSum" else 18)
    keepdims = int(ctx.attr(node, "keepdims", 1))
    return _emit(ctx, REDUCE[node.op_type], [x], {"axes": axes, "keepdims": keepdims})


@converter("BatchNormalization")
def batch_norm(ctx, node):
    if int(ctx.attr(node, "training_mode", 0)) or len([o for o in node.output if o]) > 1:
        raise ctx.error(node, "BatchNormalization in training mode is not supported (inference only)")
    values = _inputs(ctx, node)[:5]
    if values[0].type.rank < 2:
        raise ctx.error(node, "BatchNormalization needs an input of rank 2 or more")
    return _emit(ctx, "batch_norm", values, {"epsilon": float(ctx.attr(node, "epsilon", 1e-5))})


@converter("InstanceNormalization")
def instance_norm(ctx, node):
    values = _inputs(ctx, node)[:3]
    return _emit(ctx, "instance_norm", values, {"epsilon": float(ctx.attr(node, "epsilon", 1e-5))})


@converter("LayerNormalization", since=17)
def layer_norm(ctx, node):
    x = ctx.input(node, 0)
    rank = x.type.rank
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", -1)), rank)
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    stash = int(ctx.attr(node, "stash_type", 1))
    scale = ctx.input(node, 1)
    bias = ctx.input(node, 2)
    y = _emit(ctx, "layer_norm", [x, scale, bias], {"axis": axis, "epsilon": eps, "stash_type": stash})[0]
    outs = [y]
    if any(node.output[1:]):
        # The optional Mean / InvStdDev outputs (training use), built from plain graph ops.
        if stash == 1 and x.type.dtype != "f32":
            x = _emit(ctx, "cast", [x], {"to": "f32"})[0]
        axes = {"axes": list(range(axis, rank)), "keepdims": 1}
        mean = _emit(ctx, "reduce_mean", [x], axes)[0]
        d = _emit(ctx, "sub", [x, mean])[0]
        var = _emit(ctx, "reduce_mean", [_emit(ctx, "mul", [d, d])[0]], axes)[0]
        eps_c = ctx.constant(np.asarray(eps, dtype=_np(var.type.dtype)))
        inv = _emit(ctx, "reciprocal", [_emit(ctx, "sqrt", [_emit(ctx, "add", [var, eps_c])[0]])[0]])[0]
        outs += [mean, inv]
    return outs


def _np(dtype):
    from ...ir.types import np_dtype
    return np_dtype(dtype)
