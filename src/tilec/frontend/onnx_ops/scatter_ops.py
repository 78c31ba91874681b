"""Converters for ONNX's element-wise scatters and index shuffles, written over ``graph.scatter_nd`` and
``graph.gather_elements`` (which already have references and device kernels).

ScatterElements / Scatter and TensorScatter become one ScatterND over full index tuples (one tuple per
element of the indices or update: the element's own coordinates, with the scattered axis replaced), which
applies the updates in order exactly as the reference loops do. MaxUnpool scatters into a zero tensor by
flat index; ReverseSequence gathers along time with per-batch reversed indices.
"""
from __future__ import annotations

import numpy as np

from ..registry import converter
from .compose import Emitter, axis_in


def full_tuples(g, shape, axis: int, along):
    """i64 ``shape + [rank]``: at each position its coordinates, with the ``axis`` one replaced by
    ``along`` (an i64 value broadcasting to ``shape``)."""
    rank = len(shape)
    parts = []
    for d in range(rank):
        if d == axis:
            part = g.op("expand", [along], shape=list(shape)) if tuple(along.type.shape) != tuple(shape) else along
        else:
            view = [1] * rank
            view[d] = shape[d]
            part = g.const(np.broadcast_to(np.arange(shape[d]).reshape(view), shape), "i64")
        parts.append(g.op("unsqueeze", [part], axes=[rank]))
    return g.op("concat", parts, axis=rank)


# The opset that introduced each ScatterElements reduction.
_REDUCTION_SINCE = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}


@converter("ScatterElements", "Scatter", since=9)
def scatter_elements(ctx, node):
    g = Emitter(ctx)
    data, idx, upd = (ctx.input(node, i) for i in range(3))
    rank = data.type.rank
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 0)), rank)
    reduction = ctx.attr(node, "reduction", "none")
    if node.op_type == "ScatterElements" and ctx.opset < _REDUCTION_SINCE.get(reduction, 1 << 30):
        raise ctx.error(node, f"ScatterElements reduction '{reduction}' is not one of opset {ctx.opset}'s")
    if idx.type.shape != upd.type.shape or idx.type.rank != rank:
        raise ctx.error(node, f"{node.op_type} indices {list(idx.type.shape)} and updates "
                              f"{list(upd.type.shape)} must have one shape, of data's rank {rank}")
    for d, (n, m) in enumerate(zip(idx.type.shape, data.type.shape)):
        if d != axis and n > m:
            raise ctx.error(node, f"{node.op_type} indices dim {d} ({n}) exceeds data's ({m})")
    tuples = full_tuples(g, list(idx.type.shape), axis, g.cast(idx, "i64"))
    return ctx.emit("graph.scatter_nd", [data, tuples, upd], {"reduction": reduction})


@converter("TensorScatter", since=24)
def tensor_scatter(ctx, node):
    """``present[b, ..., (write_indices[b] + s) (mod the cache length when circular), ...] = update[b, ..., s, ...]``."""
    g = Emitter(ctx)
    cache, upd = ctx.input(node, 0), ctx.input(node, 1)
    shape, rank = list(cache.type.shape), cache.type.rank
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", -2)), rank)
    mode = ctx.attr(node, "mode", "linear")
    if mode not in ("linear", "circular"):
        raise ctx.error(node, f"TensorScatter mode must be 'linear' or 'circular', not '{mode}'")
    if axis == 0:
        raise ctx.error(node, "TensorScatter axis must not be the batch axis")
    ushape = list(upd.type.shape)
    if len(ushape) != rank or any(a != b for d, (a, b) in enumerate(zip(ushape, shape)) if d != axis) \
            or ushape[axis] > shape[axis]:
        raise ctx.error(node, f"TensorScatter update {ushape} does not fit the cache {shape} along axis {axis}")
    view = [1] * rank
    view[axis] = ushape[axis]
    pos = g.const(np.arange(ushape[axis]).reshape(view), "i64")
    if ctx.has_input(node, 2):
        start = g.cast(ctx.input(node, 2), "i64")
        start = g.reshape(start, [shape[0]] + [1] * (rank - 1))
        pos = g.op("add", [pos, start])
    if mode == "circular":
        pos = g.op("mod", [pos, g.const(shape[axis], "i64")], fmod=0)
    tuples = full_tuples(g, ushape, axis, pos)
    return ctx.emit("graph.scatter_nd", [cache, tuples, upd], {"reduction": "none"})


@converter("MaxUnpool", since=9)
def max_unpool(ctx, node):
    """Zeros of the output shape with ``X`` written at the flat positions ``I`` (MaxPool's indices)."""
    g = Emitter(ctx)
    x, ind = ctx.input(node, 0), ctx.input(node, 1)
    if ind.type.shape != x.type.shape:
        raise ctx.error(node, "MaxUnpool indices must have the input's shape")
    kernel = ctx.attr(node, "kernel_shape", None)
    if kernel is None:
        raise ctx.error(node, "MaxUnpool requires kernel_shape")
    n = x.type.rank - 2
    strides = list(ctx.attr(node, "strides", None) or [1] * n)
    pads = list(ctx.attr(node, "pads", None) or [0] * (2 * n))
    inferred = list(x.type.shape[:2]) + [(d - 1) * s + k - pb - pe for d, s, k, pb, pe in
                                         zip(x.type.shape[2:], strides, kernel, pads[:n], pads[n:])]
    out = inferred
    if ctx.has_input(node, 2):
        out = [int(d) for d in ctx.const_input(node, 2, "output_shape").reshape(-1)]
    if len(out) != x.type.rank or any(d < 1 for d in out + inferred) or out[:2] != inferred[:2]:
        raise ctx.error(node, f"MaxUnpool output shape {out} is invalid")
    ctx.check_size(node, out, np.dtype(np.float32))
    # The flat indices address the inferred shape; a given output_shape holds it at its origin (the
    # reference zero-pads or crops its end).
    zeros = g.op("expand", [g.const(0, x.type.dtype)], shape=[int(np.prod(inferred, dtype=np.int64))])
    flat = g.op("scatter_nd", [zeros, g.reshape(g.cast(ind, "i64"), [x.type.numel, 1]),
                               g.reshape(x, [x.type.numel])], reduction="none")
    y = g.reshape(flat, inferred)
    if any(o < i for o, i in zip(out, inferred)):
        y = g.op("slice", [y], starts=[0] * n, ends=out[2:], axes=list(range(2, n + 2)), steps=[1] * n)
    grow = [max(0, o - i) for o, i in zip(out, inferred)]
    if any(grow):
        y = g.op("pad", [y], pads=[0] * len(out) + grow, mode="constant", value=0.0)
    return [y]


@converter("ReverseSequence", since=10)
def reverse_sequence(ctx, node):
    """Along time, batch b's first ``sequence_lens[b]`` steps reversed, the rest in place."""
    g = Emitter(ctx)
    x, lens = ctx.input(node, 0), ctx.input(node, 1)
    shape, rank = list(x.type.shape), x.type.rank
    if rank < 2:
        raise ctx.error(node, "ReverseSequence needs an input of rank 2 or more")
    b_axis = axis_in(ctx, node, int(ctx.attr(node, "batch_axis", 1)), rank)
    t_axis = axis_in(ctx, node, int(ctx.attr(node, "time_axis", 0)), rank)
    if {b_axis, t_axis} != {0, 1}:
        raise ctx.error(node, "ReverseSequence batch_axis and time_axis must be 0 and 1")
    if lens.type.shape != (shape[b_axis],):
        raise ctx.error(node, f"ReverseSequence sequence_lens must have shape [{shape[b_axis]}]")
    view = [1] * rank
    view[t_axis] = shape[t_axis]
    t = g.const(np.arange(shape[t_axis]).reshape(view), "i64")
    lview = [1] * rank
    lview[b_axis] = shape[b_axis]
    n = g.reshape(g.cast(lens, "i64"), lview)
    reversed_t = g.op("sub", [g.op("sub", [n, g.const(1, "i64")]), t])
    idx = g.op("where", [g.op("less", [t, n]), reversed_t, t])
    idx = g.op("expand", [idx], shape=shape)
    return ctx.emit("graph.gather_elements", [x, idx], {"axis": t_axis})
