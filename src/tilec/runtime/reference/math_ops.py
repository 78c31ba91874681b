"""Numpy references of the graph dialect's math family: elementwise, logic, cast, reductions, norms.

Semantics follow ONNX: integer division truncates toward zero, Round is half-to-even, results keep the
first input's element type. Float math runs in the input precision except where ONNX's own reference
computes wider (erf/gelu), so fp16 results match it.
"""
from __future__ import annotations

import math
from functools import reduce as _fold

import numpy as np

from ...ir.types import np_dtype
from . import reference

_erf_scalar = np.vectorize(math.erf, otypes=[np.float64])


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, computed in float64 (numpy has none)."""
    return _erf_scalar(np.asarray(x, dtype=np.float64)).astype(x.dtype)


def _same(x, y):
    return [np.asarray(y).astype(x.dtype, copy=False)]


def _int_div(a, b):
    """ONNX integer division: truncation toward zero (numpy's // floors)."""
    q = np.floor_divide(a, b)
    fix = (np.remainder(a, b) != 0) & ((a < 0) != (b < 0))
    return q + fix.astype(q.dtype)


@reference("graph.add")
def add(i, a): return _same(i[0], i[0] + i[1])


@reference("graph.sub")
def sub(i, a): return _same(i[0], i[0] - i[1])


@reference("graph.mul")
def mul(i, a): return _same(i[0], i[0] * i[1])


@reference("graph.div")
def div(i, a):
    x, y = i
    if np.issubdtype(x.dtype, np.integer):
        with np.errstate(divide="ignore"):
            return _same(x, _int_div(x, y))
    with np.errstate(divide="ignore", invalid="ignore"):
        return _same(x, x / y)


@reference("graph.mod")
def mod(i, a):
    """numpy's mod (the divisor's sign) or fmod (the dividend's), as ONNX's reference; an integer
    remainder by 0 is 0 (numpy's result, without its warning)."""
    x, y = i
    fn = np.fmod if int(a.get("fmod", 0)) else np.mod
    with np.errstate(divide="ignore", invalid="ignore"):
        return _same(x, fn(x, y))


@reference("graph.pow")
def pow_(i, a):
    x, y = i
    if np.issubdtype(x.dtype, np.integer):
        return _same(x, np.power(x.astype(np.int64), y.astype(np.int64)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return _same(x, np.power(x, y.astype(x.dtype)))


@reference("graph.prelu")
def prelu(i, a):
    x, s = i
    return _same(x, np.where(x < 0, x * s, x))


@reference("graph.min")
def min_(i, a): return _same(i[0], _fold(np.minimum, i))


@reference("graph.max")
def max_(i, a): return _same(i[0], _fold(np.maximum, i))


@reference("graph.sum")
def sum_(i, a): return _same(i[0], _fold(np.add, i))


@reference("graph.mean")
def mean(i, a): return _same(i[0], _fold(np.add, i) / len(i))


for _name, _fn in {"equal": np.equal, "less": np.less, "greater": np.greater, "less_or_equal": np.less_equal,
                   "greater_or_equal": np.greater_equal, "and": np.logical_and, "or": np.logical_or,
                   "xor": np.logical_xor}.items():
    reference(f"graph.{_name}")(lambda i, a, _fn=_fn: [_fn(i[0], i[1])])


for _name, _fn in {"bitwise_and": np.bitwise_and, "bitwise_or": np.bitwise_or,
                   "bitwise_xor": np.bitwise_xor}.items():
    reference(f"graph.{_name}")(lambda i, a, _fn=_fn: _same(i[0], _fn(i[0], i[1])))


@reference("graph.bitwise_not")
def bitwise_not(i, a): return _same(i[0], np.invert(i[0]))


@reference("graph.bit_shift")
def bit_shift(i, a):
    """ONNX's reference: bits moved past the width are lost (a signed value shifts as its unsigned
    view); a shift out of [0, width) gives 0 to the left, the sign (-1 or 0) to the right."""
    x, y = np.broadcast_arrays(i[0], i[1].astype(np.int64))
    bits = 8 * x.dtype.itemsize
    inside = (y >= 0) & (y < bits)
    s = np.where(inside, y, 0)
    if a["direction"] == "LEFT":
        u = np.dtype(f"u{x.dtype.itemsize}")
        out = np.left_shift(x.view(u) if x.dtype.kind == "i" else x, s.astype(u)).view(x.dtype)
        return [np.where(inside, out, 0).astype(x.dtype)]
    out = np.right_shift(x, s.astype(x.dtype))
    return [np.where(inside, out, np.where(x < 0, -1, 0)).astype(x.dtype)]


@reference("graph.bitcast")
def bitcast(i, a): return [np.ascontiguousarray(i[0]).view(np_dtype(a["to"])).reshape(i[0].shape)]


@reference("graph.not")
def not_(i, a): return [np.logical_not(i[0])]


@reference("graph.where")
def where(i, a): return _same(i[1], np.where(i[0], i[1], i[2]))


def _softplus(x):
    return np.logaddexp(x, np.zeros_like(x))


_UNARY = {
    "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "tanh": np.tanh, "neg": np.negative, "abs": np.abs,
    "floor": np.floor, "ceil": np.ceil, "sin": np.sin, "cos": np.cos, "sign": np.sign, "round": np.round,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "relu": lambda x: np.maximum(x, np.zeros_like(x)),
    "reciprocal": lambda x: 1 / x,
    "erf": erf,
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "hard_swish": lambda x: x * np.clip(x / 6 + 0.5, 0, 1),
    "tan": np.tan, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
}
for _name, _fn in _UNARY.items():
    def _unary(i, a, _fn=_fn):
        with np.errstate(all="ignore"):
            return _same(i[0], _fn(i[0]))
    reference(f"graph.{_name}")(_unary)


def _elementwise(fn):
    def run(i, a):
        with np.errstate(all="ignore"):
            return _same(i[0], fn(i[0], a))
    return run


reference("graph.leaky_relu")(_elementwise(lambda x, a: np.where(x < 0, a["alpha"] * x, x)))
reference("graph.elu")(_elementwise(lambda x, a: np.where(x < 0, a["alpha"] * (np.exp(x) - 1), x)))
reference("graph.celu")(_elementwise(
    lambda x, a: np.maximum(0, x) + np.minimum(0, a["alpha"] * (np.exp(x / a["alpha"]) - 1))))
reference("graph.selu")(_elementwise(
    lambda x, a: a["gamma"] * np.where(x > 0, x, a["alpha"] * (np.exp(x) - 1))))
reference("graph.thresholded_relu")(_elementwise(lambda x, a: np.where(x > a["alpha"], x, 0)))
reference("graph.hard_sigmoid")(_elementwise(lambda x, a: np.clip(a["alpha"] * x + a["beta"], 0, 1)))


@reference("graph.gelu")
def gelu(i, a):
    x = i[0]
    if a.get("approximate", "none") == "tanh":
        y = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    else:
        y = 0.5 * x * (1 + erf(x / np.sqrt(2).astype(x.dtype)))
    return _same(x, y)


@reference("graph.clip")
def clip(i, a):
    x = i[0]
    lo, hi = a.get("min"), a.get("max")
    y = x
    if lo is not None:
        y = np.maximum(y, np.asarray(lo).astype(x.dtype))
    if hi is not None:
        y = np.minimum(y, np.asarray(hi).astype(x.dtype))
    return _same(x, y)


@reference("graph.is_nan")
def is_nan(i, a): return [np.isnan(i[0])]


@reference("graph.is_inf")
def is_inf(i, a):
    x = i[0]
    pos = np.isposinf(x) if a.get("detect_positive", 1) else np.zeros(x.shape, bool)
    neg = np.isneginf(x) if a.get("detect_negative", 1) else np.zeros(x.shape, bool)
    return [pos | neg]


@reference("graph.cast")
def cast(i, a):
    x = i[0]
    to = np_dtype(a["to"])
    if a["to"] == "bool":
        return [x != 0]
    if np.issubdtype(to, np.integer) and not np.issubdtype(x.dtype, np.integer) and x.dtype != np.bool_:
        with np.errstate(invalid="ignore"):
            return [np.trunc(x.astype(np.float64)).astype(to)]
    with np.errstate(over="ignore", invalid="ignore"):
        return [x.astype(to)]


def _norm_axes(x, a):
    axis = a["axis"]
    return tuple(range(axis, x.ndim)) if a.get("flatten") else (axis,)


@reference("graph.softmax")
def softmax(i, a):
    x = i[0]
    axes = _norm_axes(x, a)
    e = np.exp(x - x.max(axis=axes, keepdims=True))
    return _same(x, e / e.sum(axis=axes, keepdims=True))


@reference("graph.log_softmax")
def log_softmax(i, a):
    x = i[0]
    axes = _norm_axes(x, a)
    d = x - x.max(axis=axes, keepdims=True)
    return _same(x, d - np.log(np.exp(d).sum(axis=axes, keepdims=True)))


def _reduction(fn, pre=None, post=None):
    def run(i, a):
        x = i[0]
        axes = tuple(a["axes"])
        keep = bool(a.get("keepdims", 1))
        with np.errstate(all="ignore"):
            v = pre(x) if pre else x
            if axes:
                if x.size == 0 and fn in (np.max, np.min):
                    # An empty max/min reduction gives the identity (-inf / +inf), as ONNX's reference.
                    shape = np.sum(v, axis=axes, keepdims=keep).shape
                    fill = -np.inf if fn is np.max else np.inf
                    if x.dtype == np.bool_:
                        fill = fn is np.min  # the identities of any (max) and all (min)
                    elif np.issubdtype(x.dtype, np.integer):
                        info = np.iinfo(x.dtype)
                        fill = info.min if fn is np.max else info.max
                    v = np.full(shape, fill, dtype=x.dtype)
                else:
                    v = fn(v, axis=axes, keepdims=keep)
            elif not keep:
                pass  # no axes: nothing is reduced, keepdims has nothing to drop
            v = post(v) if post else v
        return _same(x, v)
    return run


reference("graph.reduce_sum")(_reduction(np.sum))
reference("graph.reduce_max")(_reduction(np.max))
reference("graph.reduce_min")(_reduction(np.min))
reference("graph.reduce_prod")(_reduction(np.prod))
reference("graph.reduce_sum_square")(_reduction(np.sum, pre=np.square))
reference("graph.reduce_l1")(_reduction(np.sum, pre=np.abs))
reference("graph.reduce_l2")(_reduction(np.sum, pre=np.square, post=np.sqrt))
reference("graph.reduce_log_sum")(_reduction(np.sum, post=np.log))
reference("graph.reduce_log_sum_exp")(_reduction(np.sum, pre=np.exp, post=np.log))


@reference("graph.reduce_mean")
def reduce_mean(i, a):
    x = i[0]
    axes = tuple(a["axes"])
    if not axes:
        return [x]
    with np.errstate(all="ignore"):
        return _same(x, np.mean(x, axis=axes, keepdims=bool(a.get("keepdims", 1))))


@reference("graph.batch_norm")
def batch_norm(i, a):
    x, scale, b, mean_, var = i
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda t: t.reshape(shape)  # noqa: E731  (per-channel parameters broadcast along dim 1)
    y = (x - r(mean_)) / np.sqrt(r(var) + a["epsilon"]) * r(scale) + r(b)
    return _same(x, y)


@reference("graph.layer_norm")
def layer_norm(i, a):
    x, scale = i[0], i[1]
    b = i[2] if len(i) > 2 else None
    axes = tuple(range(a["axis"], x.ndim))
    xf = x.astype(np.float32) if x.dtype in (np.float16,) or x.dtype.name == "bfloat16" else x
    mu = xf.mean(axis=axes, keepdims=True)
    d = xf - mu
    var = (d * d).mean(axis=axes, keepdims=True)
    y = d / np.sqrt(var + a["epsilon"]) * scale
    if b is not None:
        y = y + b
    return _same(x, y)


@reference("graph.instance_norm")
def instance_norm(i, a):
    x, scale, b = i
    axes = tuple(range(2, x.ndim))
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return _same(x, (x - mu) / np.sqrt(var + a["epsilon"]) * scale.reshape(shape) + b.reshape(shape))
