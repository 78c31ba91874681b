"""Result-type rules of the graph dialect's math family (``ir_specs/ops/graph_math.json``).

The names are generic (``broadcast``, ``same``, ...) so other graph op families can reuse them.
"""
from __future__ import annotations

from ..diagnostics import CompileError
from ..opspec import result_rule
from ..types import DTYPES, TensorType


def broadcast_shapes(*shapes) -> tuple:
    """Numpy broadcasting of ``shapes``; ValueError when they do not broadcast."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[i - rank + len(s)] for s in shapes if i - rank + len(s) >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ValueError("shapes " + ", ".join(str(list(s)) for s in shapes) + " do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


@result_rule("broadcast")
def _broadcast(types, attrs):
    if not types:
        raise ValueError("needs at least one operand")
    if len({t.dtype for t in types}) > 1:
        raise ValueError("operands have different element types: " + ", ".join(t.dtype for t in types))
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), types[0].dtype)]


@result_rule("broadcast_first")
def _broadcast_first(types, attrs):
    """Broadcast shapes; the first operand's element type (Pow's exponent may be another type)."""
    return [TensorType(broadcast_shapes(*(t.shape for t in types)), types[0].dtype)]


@result_rule("broadcast_bool")
def _broadcast_bool(types, attrs):
    return [_broadcast(types, attrs)[0].with_dtype("bool")]


@result_rule("where")
def _where(types, attrs):
    cond, x, y = types
    if cond.dtype != "bool":
        raise ValueError(f"the condition must be bool, not {cond.dtype}")
    if x.dtype != y.dtype:
        raise ValueError(f"x and y have different element types {x.dtype} and {y.dtype}")
    return [TensorType(broadcast_shapes(cond.shape, x.shape, y.shape), x.dtype)]


@result_rule("same")
def _same(types, attrs):
    return [types[0]]


@result_rule("same_bool")
def _same_bool(types, attrs):
    return [types[0].with_dtype("bool")]


@result_rule("cast")
def _cast(types, attrs):
    to = attrs["to"]
    if to not in DTYPES:
        raise CompileError(f"cannot cast to unknown element type '{to}'")
    return [types[0].with_dtype(to)]


@result_rule("reduce")
def _reduce(types, attrs):
    x = types[0]
    axes = attrs["axes"]
    if any(a < 0 or a >= x.rank for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"reduction axes {axes} are invalid for rank {x.rank}")
    if attrs.get("keepdims", 1):
        shape = [1 if i in axes else d for i, d in enumerate(x.shape)]
    else:
        shape = [d for i, d in enumerate(x.shape) if i not in axes]
    return [x.with_shape(shape)]
