"""Decompositions of the graph math family into ``tile.compute`` tensor expressions.

Elementwise ops are one compute with numpy-broadcast indices; reductions are one compute with a
combiner (``+=``, ``max=``, ...) plus an elementwise epilogue where needed (mean, L2, log-sum);
softmax is max, exp(x - max), sum, divide; the norms compute their statistics, then normalise.
"""
from __future__ import annotations

import math

from ...ir.texpr import parse_texpr
from ...ir.types import FLOAT_DTYPES, TensorType, itemsize
from . import axes_for, broadcast_index, decomposition


def lit(value, dtype: str) -> str:
    """A literal of ``value`` for an expression over ``dtype`` (ints stay ints)."""
    if dtype in FLOAT_DTYPES:
        text = repr(float(value))
        return f"({text})" if text.startswith("-") else text
    if dtype == "bool":
        return "1" if value else "0"
    return f"({int(value)})" if value < 0 else str(int(value))


def access(name: str, shape, out_axes) -> str:
    return f"{name}[{broadcast_index(shape, out_axes)}]"


def elementwise(b, op, template: str, **consts) -> list:
    """One compute: ``template`` with ``{0}``, ``{1}``... for the operands read at broadcast indices."""
    out = op.result.type
    axes = axes_for(out.rank)
    reads = [access(f"X{i}", v.type.shape, axes) for i, v in enumerate(op.operands)]
    text = f"Y[{', '.join(axes)}] = {template.format(*reads, **consts)}"
    # A compute binds its operands in the order the expression first reads them, which a template
    # need not follow (select({1} < 8, f({0}, {1}), 0) reads X1 first).
    order = [int(name[1:]) for name in parse_texpr(text).inputs]
    return [b.compute(text, [op.operands[i] for i in order], out, origin=op.name)]


_BINARY = {"graph.add": "{0} + {1}", "graph.sub": "{0} - {1}", "graph.mul": "{0} * {1}",
           "graph.div": "{0} / {1}", "graph.pow": "pow({0}, {1})",
           "graph.equal": "{0} == {1}", "graph.less": "{0} < {1}", "graph.greater": "{0} > {1}",
           "graph.less_or_equal": "{0} <= {1}", "graph.greater_or_equal": "{0} >= {1}",
           "graph.and": "{0} && {1}", "graph.or": "{0} || {1}", "graph.xor": "{0} != {1}",
           "graph.where": "select({0}, {1}, {2})", "graph.not": "!{0}", "graph.is_nan": "{0} != {0}",
           "graph.prelu": "select({0} < {z}, {0} * {1}, {0})",
           "graph.bitwise_and": "bitand({0}, {1})", "graph.bitwise_or": "bitor({0}, {1})",
           "graph.bitwise_xor": "bitxor({0}, {1})", "graph.bitwise_not": "bitnot({0})"}


@decomposition(*_BINARY)
def _binary(b, op, attrs):
    return elementwise(b, op, _BINARY[op.name], z=lit(0, op.operands[0].type.dtype))


@decomposition("graph.mod")
def _mod(b, op, attrs):
    """C's remainder (``%``: fmod on floats, truncating on ints), moved to the divisor's sign for fmod = 0
    as numpy's mod does (a zero takes the divisor's sign). An integer divisor of 0 or -1 is read as 1 (the
    remainder is 0 either way), so no kernel divides by zero or overflows on INT_MIN % -1."""
    dt = op.result.type.dtype
    z = lit(0, dt)
    if dt in FLOAT_DTYPES:
        r = "({0} % {1})"
    elif dt in ("u8", "bool"):
        r = f"({{0}} % select({{1}} == {z}, 1, {{1}}))"
    else:
        r = f"({{0}} % select({{1}} == {z} || {{1}} == (-1), 1, {{1}}))"
    if int(attrs.get("fmod", 0)):
        return elementwise(b, op, r)
    moved = f"select(({r} < {z}) != ({{1}} < {z}), {r} + {{1}}, {r})"
    if dt not in FLOAT_DTYPES:
        return elementwise(b, op, f"select({r} != {z}, {moved}, {z})")
    return elementwise(b, op, f"select({r} != {z}, {moved}, select({{1}} < {z}, -{z}, {z}))")


@decomposition("graph.bitcast")
def _bitcast(b, op, attrs):
    return elementwise(b, op, f"bits_{attrs['to']}({{0}})")


@decomposition("graph.bit_shift")
def _bit_shift(b, op, attrs):
    """C's shifts, kept inside the type's width (C leaves wider or negative shifts undefined): out of
    range, a left shift gives 0 and a right shift the sign (-1 or 0), as ONNX's reference. A left shift
    of a signed value shifts its bits (the reference's unsigned view), and the store wraps it."""
    dt = op.result.type.dtype
    bits = 8 * itemsize(dt)
    inside = f"({{1}} >= 0 && {{1}} < {bits})"
    if attrs["direction"] == "LEFT":
        return elementwise(b, op, f"select({inside}, shl({{0}}, {{1}}), 0)")
    if dt in ("u8", "bool"):
        return elementwise(b, op, f"select({inside}, shr({{0}}, {{1}}), 0)")
    return elementwise(b, op, f"shr({{0}}, select({inside}, {{1}}, {bits - 1}))")


@decomposition("graph.min", "graph.max", "graph.sum", "graph.mean")
def _variadic(b, op, attrs):
    n = len(op.operands)
    kind = op.name.split(".")[1]
    if kind in ("min", "max"):
        body = "{0}"
        for i in range(1, n):
            body = f"{kind}({body}, {{{i}}})"
    else:
        body = " + ".join(f"{{{i}}}" for i in range(n))
        if kind == "mean":
            body = f"({body}) / {lit(n, op.result.type.dtype)}"
    return elementwise(b, op, body)


# Unary templates; {z} {one} are 0 and 1 in the operand's type, {a}, {g}, ... come from attributes.
_UNARY = {
    "sqrt": "sqrt({0})", "exp": "exp({0})", "log": "log({0})", "tanh": "tanh({0})", "erf": "erf({0})",
    "sin": "sin({0})", "cos": "cos({0})", "abs": "abs({0})", "floor": "floor({0})", "ceil": "ceil({0})",
    "round": "round({0})", "sigmoid": "sigmoid({0})", "neg": "-{0}", "relu": "max({0}, {z})",
    "reciprocal": "{one} / {0}", "sign": "select({0} > {z}, {one}, select({0} < {z}, -{one}, {z}))",
    "softplus": "log({one} + exp({0}))", "softsign": "{0} / ({one} + abs({0}))",
    "mish": "{0} * tanh(log({one} + exp({0})))",
    "hard_swish": "{0} * max({z}, min({one}, {0} / 6.0 + 0.5))",
    "tan": "tan({0})", "asin": "asin({0})", "acos": "acos({0})", "atan": "atan({0})", "sinh": "sinh({0})",
    "cosh": "cosh({0})",
    # The inverse hyperbolics by their logarithms (no such call in tensor expressions); asinh is odd, so
    # it is taken of |x| and given x's sign back, which keeps large negative x from cancelling.
    "asinh": "select({0} < {z}, -{one}, {one}) * log(abs({0}) + sqrt({0} * {0} + {one}))",
    "acosh": "log({0} + sqrt({0} * {0} - {one}))",
    "atanh": "0.5 * log(({one} + {0}) / ({one} - {0}))",
    "leaky_relu": "select({0} < {z}, {0} * {alpha}, {0})",
    "elu": "select({0} < {z}, {alpha} * (exp({0}) - {one}), {0})",
    "celu": "max({z}, {0}) + min({z}, {alpha} * (exp({0} / {alpha}) - {one}))",
    "selu": "{gamma} * select({0} > {z}, {0}, {alpha} * (exp({0}) - {one}))",
    "thresholded_relu": "select({0} > {alpha}, {0}, {z})",
    "hard_sigmoid": "max({z}, min({one}, {alpha} * {0} + {beta}))",
}


@decomposition(*(f"graph.{n}" for n in _UNARY))
def _unary(b, op, attrs):
    dt = op.operands[0].type.dtype
    consts = {k: lit(attrs[k], dt) for k in ("alpha", "beta", "gamma") if k in attrs}
    return elementwise(b, op, _UNARY[op.name.split(".")[1]], z=lit(0, dt), one=lit(1, dt), **consts)


@decomposition("graph.is_inf")
def _is_inf(b, op, attrs):
    """Comparisons with the infinities (not C's isinf, which the emulator's C++ does not see unqualified);
    an integer is never infinite."""
    dt = op.operands[0].type.dtype
    neg, pos = int(attrs.get("detect_negative", 1)), int(attrs.get("detect_positive", 1))
    if dt not in FLOAT_DTYPES or not (neg or pos):
        return elementwise(b, op, "{0} != {0} && {0} == {0}")   # false everywhere, NaN included
    if neg and pos:
        return elementwise(b, op, "abs({0}) == inf")
    return elementwise(b, op, "{0} == inf" if pos else "{0} == -inf")


@decomposition("graph.gelu")
def _gelu(b, op, attrs):
    dt = op.operands[0].type.dtype
    if attrs.get("approximate") == "tanh":
        k = lit(math.sqrt(2 / math.pi), dt)
        return elementwise(b, op, f"0.5 * {{0}} * (1.0 + tanh({k} * ({{0}} + 0.044715 * {{0}} * {{0}} * {{0}})))")
    return elementwise(b, op, f"0.5 * {{0}} * (1.0 + erf({{0}} * {lit(1 / math.sqrt(2), dt)}))")


@decomposition("graph.clip")
def _clip(b, op, attrs):
    dt = op.operands[0].type.dtype
    body = "{0}"
    if attrs.get("min") is not None:
        body = f"max({body}, {lit(attrs['min'], dt)})"
    if attrs.get("max") is not None:
        body = f"min({body}, {lit(attrs['max'], dt)})"
    return elementwise(b, op, body)


@decomposition("graph.cast")
def _cast(b, op, attrs):
    return elementwise(b, op, f"{attrs['to']}({{0}})")


# --- reductions ----------------------------------------------------------------------------------------
def reduce_expr(x_shape, axes, keepdims: bool):
    """(output axes, input index list, reduce axes) for reducing ``axes`` of a tensor of ``x_shape``."""
    out_axes, idx, red = [], [], []
    for i in range(len(x_shape)):
        if i in axes:
            red.append(f"r{i}")
            idx.append(f"r{i}")
            if keepdims:
                out_axes.append(f"k{i}")  # extent 1, never read: the kept dim
        else:
            out_axes.append(f"d{i}")
            idx.append(f"d{i}")
    return out_axes, ", ".join(idx), red


def reduce_compute(b, x, axes, keepdims, combiner, read="{0}", origin=None, dtype=None):
    """``Y[out] <combiner> read(X[idx])``: one reduction compute."""
    out_axes, idx, red = reduce_expr(x.type.shape, axes, keepdims)
    shape = [1 if i in axes else d for i, d in enumerate(x.type.shape)] if keepdims else \
        [d for i, d in enumerate(x.type.shape) if i not in axes]
    ty = TensorType(tuple(shape), dtype or x.type.dtype)
    body = read.format(f"X[{idx}]")
    return b.compute(f"Y[{', '.join(out_axes)}] {combiner} {body}", [x], ty, origin=origin)


def map_compute(b, v, template: str, origin=None, dtype=None):
    """An elementwise compute over one tensor."""
    axes = axes_for(v.type.rank)
    body = template.format(f"X[{', '.join(axes)}]")
    return b.compute(f"Y[{', '.join(axes)}] = {body}", [v], v.type.with_dtype(dtype or v.type.dtype), origin=origin)


_REDUCE = {  # op -> (pre-read template, combiner, post template or None)
    "reduce_sum": ("{0}", "+=", None), "reduce_max": ("{0}", "max=", None), "reduce_min": ("{0}", "min=", None),
    "reduce_prod": ("{0}", "*=", None), "reduce_sum_square": ("{0} * {0}", "+=", None),
    "reduce_l1": ("abs({0})", "+=", None), "reduce_l2": ("{0} * {0}", "+=", "sqrt({0})"),
    "reduce_log_sum": ("{0}", "+=", "log({0})"), "reduce_mean": ("{0}", "+=", "{0} / {n}"),
}


@decomposition(*(f"graph.{n}" for n in _REDUCE))
def _reduce(b, op, attrs):
    x = op.operands[0]
    axes, keep = attrs["axes"], bool(attrs["keepdims"])
    kind = op.name.split(".")[1]
    pre, comb, post = _REDUCE[kind]
    if not axes:  # ONNX's noop_with_empty_axes: only the elementwise parts apply
        template = "{0}" if kind == "reduce_mean" else pre
        if post is not None and kind != "reduce_mean":
            template = post.replace("{0}", f"({template})")
        return [map_compute(b, x, template, origin=op.name)]
    y = reduce_compute(b, x, axes, keep, comb, pre, origin=op.name)
    if post is not None:
        n = math.prod(x.type.shape[a] for a in axes)
        y = map_compute(b, y, post.replace("{n}", lit(n, y.type.dtype)), origin=op.name)
    return [y]


@decomposition("graph.reduce_log_sum_exp")
def _reduce_log_sum_exp(b, op, attrs):
    x = op.operands[0]
    axes, keep = attrs["axes"], bool(attrs["keepdims"])
    if not axes:
        return [map_compute(b, x, "log(exp({0}))", origin=op.name)]
    # Stable: m + log(sum(exp(x - m))).
    m = reduce_compute(b, x, axes, True, "max=", origin=op.name)
    e = _with_stat(b, x, m, "exp({x} - {s})", op.name)
    s = reduce_compute(b, e, axes, keep, "+=", origin=op.name)
    m_out = m if keep else _squeeze(b, m, axes, op.name)
    return [_binary_compute(b, s, m_out, "log({0}) + {1}", op.name)]


def _squeeze(b, v, axes, origin):
    """Drop the size-1 ``axes`` of ``v`` with a compute (a view would need engineer B's reshape)."""
    keep = [i for i in range(v.type.rank) if i not in axes]
    idx = ", ".join(f"d{i}" if i in keep else "0" for i in range(v.type.rank))
    ty = v.type.with_shape([v.type.shape[i] for i in keep])
    return b.compute(f"Y[{', '.join(f'd{i}' for i in keep)}] = X[{idx}]", [v], ty, origin=origin)


def _binary_compute(b, u, v, template, origin):
    axes = axes_for(u.type.rank)
    body = template.format(access("A", u.type.shape, axes), access("B", v.type.shape, axes))
    return b.compute(f"Y[{', '.join(axes)}] = {body}", [u, v], u.type, origin=origin)


def _with_stat(b, x, stat, template, origin, dtype=None):
    """Elementwise over ``x`` with a keepdims statistic ``stat`` broadcast in: ``{x}`` and ``{s}``."""
    axes = axes_for(x.type.rank)
    body = template.format(x=access("X", x.type.shape, axes), s=access("S", stat.type.shape, axes))
    return b.compute(f"Y[{', '.join(axes)}] = {body}", [x, stat], x.type.with_dtype(dtype or x.type.dtype),
                     origin=origin)


@decomposition("graph.softmax", "graph.log_softmax")
def _softmax(b, op, attrs):
    x = op.operands[0]
    axis = attrs["axis"]
    axes = list(range(axis, x.type.rank)) if attrs.get("flatten") else [axis]
    m = reduce_compute(b, x, axes, True, "max=", origin=op.name)
    if op.name == "graph.softmax":
        e = _with_stat(b, x, m, "exp({x} - {s})", op.name)
        s = reduce_compute(b, e, axes, True, "+=", origin=op.name)
        return [_binary_compute(b, e, s, "{0} / {1}", op.name)]
    s = reduce_compute(b, _with_stat(b, x, m, "exp({x} - {s})", op.name), axes, True, "+=", origin=op.name)
    axes_ = axes_for(x.type.rank)
    body = (f"{access('X', x.type.shape, axes_)} - {access('M', m.type.shape, axes_)} - "
            f"log({access('S', s.type.shape, axes_)})")
    return [b.compute(f"Y[{', '.join(axes_)}] = {body}", [x, m, s], x.type, origin=op.name)]


# --- normalisations -----------------------------------------------------------------------------------
def _moments(b, x, axes, eps, origin):
    """(mean, rstd) over ``axes`` with keepdims: mean = sum/N, rstd = rsqrt(sum((x-mean)^2)/N + eps)."""
    dt = x.type.dtype
    n = math.prod(x.type.shape[a] for a in axes)
    mean = reduce_compute(b, x, axes, True, "+=", f"{{0}} / {lit(n, dt)}", origin=origin)
    sq = _with_stat(b, x, mean, "({x} - {s}) * ({x} - {s})", origin)
    var = reduce_compute(b, sq, axes, True, "+=", f"{{0}} / {lit(n, dt)}", origin=origin)
    rstd = map_compute(b, var, f"rsqrt({{0}} + {lit(eps, dt)})", origin=origin)
    return mean, rstd


@decomposition("graph.layer_norm")
def _layer_norm(b, op, attrs):
    x, scale = op.operands[0], op.operands[1]
    bias = op.operands[2] if len(op.operands) > 2 else None
    out_dt = x.type.dtype
    wide = out_dt != "f32" and attrs.get("stash_type", 1) == 1
    xs = map_compute(b, x, "f32({0})", origin=op.name, dtype="f32") if wide else x
    axes = list(range(attrs["axis"], x.type.rank))
    mean, rstd = _moments(b, xs, axes, attrs["epsilon"], op.name)
    ax = axes_for(x.type.rank)
    norm = (f"({access('X', xs.type.shape, ax)} - {access('M', mean.type.shape, ax)}) * "
            f"{access('R', rstd.type.shape, ax)}")
    if wide:
        norm = f"{out_dt}({norm})"
    body = f"{norm} * {access('W', scale.type.shape, ax)}"
    operands = [xs, mean, rstd, scale]
    if bias is not None:
        body += f" + {access('B', bias.type.shape, ax)}"
        operands.append(bias)
    return [b.compute(f"Y[{', '.join(ax)}] = {body}", operands, x.type, origin=op.name)]


@decomposition("graph.batch_norm")
def _batch_norm(b, op, attrs):
    x, scale, bias, mean, var = op.operands
    dt = x.type.dtype
    c_ty = scale.type
    # Per-channel scale and shift first (constants fold them), then one fused multiply-add over x.
    sc = b.compute(f"Y[c] = S[c] * rsqrt(V[c] + {lit(attrs['epsilon'], dt)})", [scale, var], c_ty, origin=op.name)
    sh = b.compute("Y[c] = B[c] - M[c] * K[c]", [bias, mean, sc], c_ty, origin=op.name)
    ax = axes_for(x.type.rank)
    body = f"X[{', '.join(ax)}] * K[d1] + H[d1]"
    return [b.compute(f"Y[{', '.join(ax)}] = {body}", [x, sc, sh], x.type, origin=op.name)]


@decomposition("graph.instance_norm")
def _instance_norm(b, op, attrs):
    x, scale, bias = op.operands
    axes = list(range(2, x.type.rank))
    mean, rstd = _moments(b, x, axes, attrs["epsilon"], op.name)
    ax = axes_for(x.type.rank)
    body = (f"(X[{', '.join(ax)}] - {access('M', mean.type.shape, ax)}) * {access('R', rstd.type.shape, ax)}"
            " * W[d1] + B[d1]")
    return [b.compute(f"Y[{', '.join(ax)}] = {body}", [x, mean, rstd, scale, bias], x.type, origin=op.name)]
