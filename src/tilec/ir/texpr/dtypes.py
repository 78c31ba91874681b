"""Static typing of tensor expressions.

Each node has a dtype. Literals are *weak*: they adopt the dtype of the other side (``X * 2`` keeps X's
type); a float literal meeting an integer becomes f32, and a body of literals only is i64 (ints) or f32.
Floats promote f16/bf16 < f32 < f64 (f16 with bf16 gives f32); ints bool < u8, i8 < i32 < i64 (u8 with i8
gives i32); a float meeting an int wins. Comparisons, ``&&``, ``||``, ``!``, ``valid``, ``isnan`` give
bool; an axis used as a value is i64.
"""
from __future__ import annotations

from .errors import TexprError
from .functions import DTYPES, FLOAT_DTYPES, FUNCTIONS
from .nodes import COMPARISONS, Access, AxisRef, Binary, Call, Num, Unary

_FLOAT_RANK = {"f16": 1, "bf16": 1, "f32": 2, "f64": 3}
_INT_RANK = {"bool": 0, "u8": 1, "i8": 1, "i32": 2, "i64": 3}


def promote(a: str, b: str) -> str:
    """The common dtype of two (strong) dtypes."""
    if a == b:
        return a
    if a in FLOAT_DTYPES or b in FLOAT_DTYPES:
        if a not in FLOAT_DTYPES:
            return b
        if b not in FLOAT_DTYPES:
            return a
        ra, rb = _FLOAT_RANK[a], _FLOAT_RANK[b]
        return "f32" if ra == rb else (a if ra > rb else b)
    ra, rb = _INT_RANK[a], _INT_RANK[b]
    return "i32" if ra == rb else (a if ra > rb else b)


def _join(x: tuple, y: tuple) -> tuple:
    """Arithmetic result of two (dtype, weak) types; weak is 'int', 'float' or None."""
    (dx, wx), (dy, wy) = x, y
    if wx and wy:
        return ("f32", "float") if "float" in (wx, wy) else ("i64", "int")
    if wx or wy:
        strong, weak = (dy, wx) if wx else (dx, wy)
        if weak == "float" and strong not in FLOAT_DTYPES:
            return ("f32", None)
        return (strong, None)
    return (promote(dx, dy), None)


def _floatify(t: tuple) -> tuple:
    d, w = t
    if d in FLOAT_DTYPES:
        return t
    return ("f32", "float" if w else None)


def node_type(node, input_dtypes: dict, memo: dict | None = None) -> tuple:
    """``(dtype, weak)`` of ``node`` given ``{tensor: dtype}``."""
    memo = {} if memo is None else memo
    key = id(node)
    if key in memo:
        return memo[key][1]
    t = _type(node, input_dtypes, memo)
    memo[key] = (node, t)  # keep the node alive so its id stays unique while memoised
    return t


def _type(node, env: dict, memo: dict) -> tuple:
    if isinstance(node, Num):
        return ("i64", "int") if node.is_int else ("f32", "float")
    if isinstance(node, AxisRef):
        return ("i64", None)
    if isinstance(node, Access):
        return (env[node.tensor], None)
    if isinstance(node, Unary):
        inner = node_type(node.operand, env, memo)
        return ("bool", None) if node.op == "!" else inner
    if isinstance(node, Binary):
        a, b = node_type(node.lhs, env, memo), node_type(node.rhs, env, memo)
        if node.op in COMPARISONS or node.op in ("&&", "||"):
            return ("bool", None)
        return _join(a, b)
    if isinstance(node, Call):
        args = [node_type(a, env, memo) for a in node.args]
        rule = FUNCTIONS[node.fn][1]
        if rule == "cast":
            return (node.fn, None)
        if rule == "bits":
            return (node.fn[len("bits_"):], None)
        if rule == "bool":
            return ("bool", None)
        if rule == "same":
            return args[0]
        if rule == "float":
            return _floatify(args[0])
        if rule == "base":
            return _join(args[0], args[1]) if args[0][1] else args[0]
        if rule == "join":
            return _join(args[0], args[1])
        if rule == "select":
            return _join(args[1], args[2])
    raise TexprError(f"cannot type node {node!r}", getattr(node, "pos", 0))


def resolve(t: tuple) -> str:
    """The concrete dtype of a (dtype, weak) type."""
    return t[0]


def check_dtypes(names, dtypes) -> dict:
    """``{tensor: dtype}`` after checking every dtype name."""
    names, dtypes = list(names), list(dtypes)
    if len(names) != len(dtypes):
        raise TexprError(f"expression reads {len(names)} inputs but {len(dtypes)} dtypes were given", 0)
    for n, d in zip(names, dtypes):
        if d not in DTYPES:
            raise TexprError(f"input '{n}' has unknown dtype '{d}' (expected one of {', '.join(DTYPES)})", 0)
    return dict(zip(names, dtypes))
