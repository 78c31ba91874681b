"""Converters for ONNX ops whose output shape depends on input values: Compress, NonZero and Unique.

tilec compiles static shapes, so the values that decide the shape must be known at compile time: an
initializer, a Constant, a folded shape computation (how these ops appear in real exports, e.g. NonZero of
a constant mask), or a graph input frozen with ``--freeze-input``. Compress then gathers the selected
slices of a run-time tensor; NonZero and Unique of a constant fold to constants. With a run-time
condition / input the node gets a diagnostic naming the input that must be constant.
"""
from __future__ import annotations

import numpy as np

from ..registry import converter


@converter("Compress", since=9)
def compress(ctx, node):
    """The slices of ``x`` along ``axis`` (of the flattened ``x`` without one) where ``condition`` is
    true; a condition shorter than the axis leaves the rest out, as numpy.compress."""
    x = ctx.input(node, 0)
    cond = ctx.const_input(node, 1, "condition").reshape(-1).astype(bool)
    axis = ctx.attr(node, "axis", None)
    if axis is None:
        x = ctx.emit("graph.reshape", [x], {"shape": [x.type.numel]})[0]
        axis = 0
    rank = x.type.rank
    if not -rank <= int(axis) < rank:
        raise ctx.error(node, f"axis {axis} is out of range for rank {rank}")
    axis = int(axis) % rank
    if cond.size > x.type.shape[axis]:
        raise ctx.error(node, f"Compress condition has {cond.size} entries, more than the axis' {x.type.shape[axis]}")
    picked = np.flatnonzero(cond).astype(np.int64)
    return ctx.emit("graph.gather", [x, ctx.constant(picked)], {"axis": axis})


@converter("NonZero", since=9)
def non_zero(ctx, node):
    """``[rank, count]`` coordinates of the nonzero elements, row-major (numpy.nonzero)."""
    x = ctx.const_input(node, 0, "input")
    return [ctx.constant(np.asarray(np.nonzero(np.atleast_1d(x) if x.ndim == 0 else x), dtype=np.int64))]


@converter("Unique", since=11)
def unique(ctx, node):
    """The distinct values (sorted, or in order of first occurrence), with their first indices, each
    element's index into them, and their counts (numpy.unique, as the reference)."""
    x = ctx.const_input(node, 0, "input")
    axis = ctx.attr(node, "axis", None)
    is_sorted = int(ctx.attr(node, "sorted", 1))
    if axis is not None:
        if not -x.ndim <= int(axis) < x.ndim:
            raise ctx.error(node, f"axis {axis} is out of range for rank {x.ndim}")
        y, first, inverse, counts = np.unique(x, True, True, True, axis=int(axis))
    else:
        y, first, inverse, counts = np.unique(x, True, True, True)
    if not is_sorted:
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        first, counts, inverse = first[order], counts[order], rank[inverse.reshape(-1)]
        y = np.take(x.reshape(-1) if axis is None else x, first, axis=0 if axis is None else int(axis))
    i64 = (lambda a: ctx.constant(np.asarray(a, dtype=np.int64).reshape(-1)))
    return [ctx.constant(np.asarray(y, dtype=x.dtype)), i64(first), i64(inverse), i64(counts)]
