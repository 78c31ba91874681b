"""numpy semantics of tensor-expression values, for the reference evaluator.

Values live as float64 (every float type), int64 (every int type) or bool arrays; only explicit casts
and the final store round to narrower types. Integer ``/`` and ``%`` follow C (truncate toward zero,
remainder takes the dividend's sign), as the generated CUDA does; float ``%`` is ``fmod``. Inside an
index, ``/`` and ``%`` are floor division and floor modulus (see :func:`index_binary`).
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

NP_DTYPES = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16),
             "f64": np.dtype(np.float64), "i64": np.dtype(np.int64), "i32": np.dtype(np.int32),
             "i8": np.dtype(np.int8), "u8": np.dtype(np.uint8), "bool": np.dtype(np.bool_)}

_erf = np.frompyfunc(math.erf, 1, 1)


def is_intlike(x) -> bool:
    return np.asarray(x).dtype.kind in "iub"


def widen(a: np.ndarray) -> np.ndarray:
    """An input as the evaluator computes on it: float64, int64 or bool."""
    a = np.asarray(a)
    kind = a.dtype.kind
    if kind == "b":
        return a
    if kind in "iu":
        return a.astype(np.int64, copy=False)
    return a.astype(np.float64, copy=False)  # f16, f32, bf16 (kind 'V' in ml_dtypes), f64


def pad_for(a: np.ndarray, pad: float):
    """The pad value as read from ``a``: ±inf clamps to the limits of an integer input's dtype."""
    kind = np.asarray(a).dtype.kind
    if kind == "b":
        return bool(pad) if not math.isnan(pad) else False
    if kind in "iu":
        info = np.iinfo(a.dtype)
        if math.isnan(pad):
            return 0
        return int(min(max(pad, info.min), info.max)) if math.isinf(pad) else int(pad)
    return float(pad)


def _ints(x):
    x = np.asarray(x)
    return x.astype(np.int64) if x.dtype.kind == "b" else x


def cast(x, dtype: str):
    """``dtype(x)``: the value rounded to ``dtype``, kept in the evaluator's wide representation."""
    x = np.asarray(x)
    if dtype == "bool":
        return x != 0
    target = NP_DTYPES[dtype]
    if dtype in ("f64",):
        return x.astype(np.float64)
    if target.kind == "f" or dtype == "bf16":
        return x.astype(np.float64).astype(target).astype(np.float64)
    if x.dtype.kind == "f":
        # C truncation; NaN and out-of-range values are undefined in C, pinned here to stay deterministic.
        x = np.nan_to_num(np.trunc(x), nan=0.0, posinf=2.0 ** 63 - 1024, neginf=-2.0 ** 63)
        x = x.astype(np.int64)
    return _ints(x).astype(target).astype(np.int64)  # wraps like a C conversion to a narrower int


def to_output(x, dtype: str, shape) -> np.ndarray:
    """The final store: the wide value as an array of ``dtype`` and ``shape``."""
    x = np.broadcast_to(np.asarray(x), tuple(shape))
    if dtype == "bool":
        return np.array(x != 0)
    target = NP_DTYPES[dtype]
    if target.kind in "iu" and x.dtype.kind == "f":
        x = cast(x, "i64")
    if target.kind in "iu" and x.dtype.kind in "iu":
        return _ints(x).astype(target)
    return np.array(x.astype(np.float64).astype(target) if dtype == "bf16" else x.astype(target))


def _c_div(a, b):
    a, b = _ints(a), _ints(b)
    safe = np.where(b == 0, 1, b)
    q = np.floor_divide(a, safe)
    q = q + ((a - q * safe != 0) & ((a < 0) != (safe < 0)))
    return np.where(b == 0, 0, q)  # C leaves x/0 undefined; 0 keeps the reference deterministic


def binary(op: str, a, b):
    """Value-level binary operator."""
    if op == "&&":
        return np.logical_and(a, b)
    if op == "||":
        return np.logical_or(a, b)
    if op in ("<", "<=", ">", ">=", "==", "!="):
        return {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
                "==": np.equal, "!=": np.not_equal}[op](a, b)
    ints = is_intlike(a) and is_intlike(b)
    if ints:
        a, b = _ints(a), _ints(b)
    if op == "+":
        return np.add(a, b)
    if op == "-":
        return np.subtract(a, b)
    if op == "*":
        return np.multiply(a, b)
    if op == "/":
        return _c_div(a, b) if ints else np.true_divide(a, b)
    if op == "%":
        return np.where(np.asarray(b) == 0, 0, np.fmod(a, np.where(np.asarray(b) == 0, 1, b))) if ints \
            else np.fmod(a, b)
    raise ValueError(f"unknown operator {op!r}")


def index_binary(op: str, a, b):
    """Index-level binary operator on int64 values: floor semantics for ``/`` and ``%``."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return np.floor_divide(a, b)
    return np.mod(a, b)


def unary(op: str, x):
    if op == "!":
        return np.logical_not(x)
    return np.negative(_ints(x))


def _pow(a, b):
    if is_intlike(a) and is_intlike(b):
        return cast(np.power(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)), "i64")
    return np.power(np.asarray(a, dtype=np.float64), b)


def _float(fn):
    return lambda x: fn(np.asarray(x, dtype=np.float64))


def _same(fn):
    """A rounding function that keeps ints as they are."""
    return lambda x: _ints(x) if is_intlike(x) else fn(x)


CALLS = {
    "exp": _float(np.exp), "log": _float(np.log), "tanh": _float(np.tanh),
    "erf": _float(lambda x: np.asarray(_erf(x), dtype=np.float64)), "sqrt": _float(np.sqrt),
    "rsqrt": _float(lambda x: 1.0 / np.sqrt(x)), "sigmoid": _float(lambda x: 1.0 / (1.0 + np.exp(-x))),
    "sin": _float(np.sin), "cos": _float(np.cos), "tan": _float(np.tan), "atan": _float(np.arctan),
    "asin": _float(np.arcsin), "acos": _float(np.arccos), "sinh": _float(np.sinh), "cosh": _float(np.cosh),
    "log1p": _float(np.log1p), "expm1": _float(np.expm1),
    "abs": lambda x: np.abs(_ints(x)), "floor": _same(np.floor), "ceil": _same(np.ceil),
    "round": _same(np.rint), "trunc": _same(np.trunc), "sign": lambda x: np.sign(_ints(x)),
    "max": lambda a, b: np.maximum(_ints(a), _ints(b)), "min": lambda a, b: np.minimum(_ints(a), _ints(b)),
    "pow": _pow, "fmod": lambda a, b: binary("%", a, b),
    "bitand": lambda a, b: np.bitwise_and(_ints(a), _ints(b)), "bitor": lambda a, b: np.bitwise_or(_ints(a), _ints(b)),
    "bitxor": lambda a, b: np.bitwise_xor(_ints(a), _ints(b)), "bitnot": lambda x: np.invert(_ints(x)),
    "shl": lambda a, b: np.left_shift(_ints(a), _ints(b)), "shr": lambda a, b: np.right_shift(_ints(a), _ints(b)),
    # Bit reinterpretation at the source width (the evaluator widens f32 to f64 and i32 to i64).
    "bits_i32": lambda x: np.asarray(x, np.float32).view(np.int32).astype(np.int64),
    "bits_f32": lambda x: np.asarray(x).astype(np.int32).view(np.float32).astype(np.float64),
    "bits_i64": lambda x: np.asarray(x, np.float64).view(np.int64),
    "bits_f64": lambda x: np.asarray(x).astype(np.int64).view(np.float64),
    "isnan": lambda x: np.isnan(x) if not is_intlike(x) else np.zeros(np.shape(x), bool),
    "isinf": lambda x: np.isinf(x) if not is_intlike(x) else np.zeros(np.shape(x), bool),
    "select": lambda c, a, b: np.where(np.asarray(c) != 0, a, b),
}
