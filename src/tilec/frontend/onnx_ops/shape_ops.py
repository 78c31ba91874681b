"""Converters for ONNX shape and data-movement ops.

Inputs that carry shapes or indices (Reshape shape, Slice starts/ends/axes/steps, Split sizes, Pad pads,
...) must be constants and become attributes, resolved to their final form (no -1 or 0 in a reshape,
full-rank non-negative slice bounds, explicit split sizes). Shape, Size, ConstantOfShape and Range are
compile-time constants (shapes are static), so they never become ops.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import converter
from .compose import axis_in


def _ints(ctx, node, i: int, what: str) -> list:
    return [int(v) for v in ctx.const_input(node, i, what).reshape(-1)]


def _ints_input_or_attr(ctx, node, i: int, name: str, since: int):
    """An int list that moved from attribute to input at opset ``since``; None when absent."""
    if ctx.opset >= since:
        return _ints(ctx, node, i, name) if ctx.has_input(node, i) else None
    v = ctx.attr(node, name, None)
    return None if v is None else [int(x) for x in v]


@converter("Identity")
def identity(ctx, node):
    return ctx.emit("graph.identity", [ctx.input(node, 0)])


@converter("Dropout")
def dropout(ctx, node):
    """Inference Dropout is the identity; the optional mask is all true."""
    if ctx.opset >= 12 and ctx.has_input(node, 2):
        if not ctx.is_const(node, 2) or bool(ctx.const_input(node, 2, "training_mode").reshape(-1)[0]):
            raise ctx.error(node, "Dropout in training mode is not supported (inference only)")
    x = ctx.input(node, 0)
    outs = ctx.emit("graph.identity", [x])
    if len(node.output) > 1 and node.output[1]:
        outs.append(ctx.constant(np.ones(x.type.shape, dtype=bool)))
    return outs


@converter("Reshape")
def reshape(ctx, node):
    x = ctx.input(node, 0)
    shape = _ints(ctx, node, 1, "shape") if ctx.opset >= 5 else list(ctx.attr(node, "shape", []))
    allowzero = int(ctx.attr(node, "allowzero", 0))
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= x.type.rank:
                raise ctx.error(node, f"Reshape shape {shape} copies dim {i}, which the input lacks")
            d = x.type.shape[i]
        out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise ctx.error(node, f"invalid Reshape shape {shape}")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        if known == 0 or x.type.numel % known:
            raise ctx.error(node, f"cannot reshape {list(x.type.shape)} to {shape}")
        out[out.index(-1)] = x.type.numel // known
    return ctx.emit("graph.reshape", [x], {"shape": out})


@converter("Flatten")
def flatten(ctx, node):
    x = ctx.input(node, 0)
    axis = int(ctx.attr(node, "axis", 1))
    if not -x.type.rank <= axis <= x.type.rank:
        raise ctx.error(node, f"Flatten axis {axis} is out of range for rank {x.type.rank}")
    return ctx.emit("graph.flatten", [x], {"axis": axis + x.type.rank if axis < 0 else axis})


@converter("Squeeze")
def squeeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _ints_input_or_attr(ctx, node, 1, "axes", 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.type.shape) if d == 1]
    axes = sorted({axis_in(ctx, node, a, x.type.rank) for a in axes})
    return ctx.emit("graph.squeeze", [x], {"axes": axes})


@converter("Unsqueeze")
def unsqueeze(ctx, node):
    x = ctx.input(node, 0)
    axes = _ints_input_or_attr(ctx, node, 1, "axes", 13)
    if axes is None:
        raise ctx.error(node, "Unsqueeze needs axes")
    rank = x.type.rank + len(axes)
    norm = sorted(axis_in(ctx, node, a, rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise ctx.error(node, f"Unsqueeze axes {axes} repeat an axis")
    return ctx.emit("graph.unsqueeze", [x], {"axes": norm})


@converter("Transpose")
def transpose(ctx, node):
    x = ctx.input(node, 0)
    perm = ctx.attr(node, "perm", None)
    perm = list(range(x.type.rank))[::-1] if perm is None else [axis_in(ctx, node, p, x.type.rank) for p in perm]
    return ctx.emit("graph.transpose", [x], {"perm": perm})


@converter("Concat")
def concat(ctx, node):
    values = [ctx.input(node, i) for i in range(len(node.input)) if ctx.has_input(node, i)]
    if not values:
        raise ctx.error(node, "Concat needs at least one input")
    axis = ctx.attr(node, "axis", 1 if ctx.opset < 4 else None)
    if axis is None:
        raise ctx.error(node, "Concat requires attribute 'axis'")
    axis = axis_in(ctx, node, int(axis), values[0].type.rank)
    if len(values) > 1 and any(v.type.dtype != values[0].type.dtype for v in values):
        raise ctx.error(node, "Concat inputs have different element types")
    return ctx.emit("graph.concat", values, {"axis": axis})


@converter("Split")
def split(ctx, node):
    x = ctx.input(node, 0)
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 0)), x.type.rank)
    n_out = len(node.output)
    sizes = _ints_input_or_attr(ctx, node, 1, "split", 13)
    dim = x.type.shape[axis]
    if sizes is None:
        parts = int(ctx.attr(node, "num_outputs", n_out))
        if ctx.opset >= 18 and ctx.attr(node, "num_outputs", None) is not None:
            # num_outputs: equal chunks of ceil(dim / n), the last one smaller.
            chunk = -(-dim // parts)
            sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(parts)]
        else:
            if dim % parts:
                raise ctx.error(node, f"cannot split dimension {dim} into {parts} equal parts")
            sizes = [dim // parts] * parts
    if len(sizes) != n_out:
        raise ctx.error(node, f"Split gives {len(sizes)} sizes for {n_out} outputs")
    return ctx.emit("graph.split", [x], {"axis": axis, "split": sizes}, n_results=n_out)


@converter("Slice")
def slice_(ctx, node):
    x = ctx.input(node, 0)
    if ctx.opset >= 10:
        starts, ends = _ints(ctx, node, 1, "starts"), _ints(ctx, node, 2, "ends")
        axes = _ints(ctx, node, 3, "axes") if ctx.has_input(node, 3) else None
        steps = _ints(ctx, node, 4, "steps") if ctx.has_input(node, 4) else None
    else:
        starts, ends = list(ctx.attr(node, "starts", [])), list(ctx.attr(node, "ends", []))
        axes, steps = ctx.attr(node, "axes", None), None
    rank = x.type.rank
    axes = list(range(len(starts))) if axes is None else [axis_in(ctx, node, a, rank) for a in axes]
    steps = steps or [1] * len(axes)
    from ...ir.dialects.graph_shape import slice_params
    try:
        first, step, out = slice_params(x.type.shape, {"starts": starts, "ends": ends, "axes": axes,
                                                       "steps": steps})
    except ValueError as e:
        raise ctx.error(node, str(e)) from None
    # Full rank with resolved bounds: ends are exact (start + size * step); a reverse slice that runs
    # past the front ends below -dim, which ONNX semantics read as "before element 0" again.
    last = [s + n * st for s, n, st in zip(first, out, step)]
    last = [e - d if e < 0 else e for e, d in zip(last, x.type.shape)]
    return ctx.emit("graph.slice", [x], {"starts": first, "ends": last, "steps": step})


@converter("Gather")
def gather(ctx, node):
    data = ctx.input(node, 0)
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 0)), data.type.rank)
    if ctx.is_const(node, 1) and not ctx.is_const(node, 0):
        view = _gather_as_slice(ctx, node, data, axis)
        if view is not None:
            return view
    return ctx.emit("graph.gather", [data, ctx.input(node, 1)], {"axis": axis})


def _gather_as_slice(ctx, node, data, axis):
    """Constant indices forming an arithmetic progression (a scalar index, ``[2, 3, 4]``, ...) are a
    slice plus a reshape: an affine expression instead of an opaque gather."""
    idx = ctx.const_input(node, 1, "indices").astype(np.int64)
    n = data.type.shape[axis]
    if idx.size == 0 or np.any((idx < -n) | (idx >= n)):
        return None
    return _take_as_slice(ctx, data, axis, np.where(idx < 0, idx + n, idx))


def _progression(flat) -> int | None:
    """The step of ``flat`` (1-D, non-empty) when it is an arithmetic progression with a non-zero step."""
    step = int(flat[1] - flat[0]) if flat.size > 1 else 1
    if step == 0 or np.any(flat != flat[0] + step * np.arange(flat.size)):
        return None
    return step


def _take_as_slice(ctx, data, axis, idx):
    """``take(data, idx, axis)`` for in-range, non-negative constant ``idx`` as a slice plus a reshape, or
    None when the indices are not an arithmetic progression."""
    n = data.type.shape[axis]
    flat = idx.reshape(-1)
    step = _progression(flat)
    if step is None:
        return None
    rank = data.type.rank
    starts = [0] * rank
    ends = list(data.type.shape)
    steps = [1] * rank
    end = int(flat[0]) + step * flat.size
    starts[axis], ends[axis], steps[axis] = int(flat[0]), end - n if end < 0 else end, step
    sliced = ctx.emit("graph.slice", [data], {"starts": starts, "ends": ends, "steps": steps})
    shape = list(data.type.shape[:axis]) + list(idx.shape) + list(data.type.shape[axis + 1:])
    if list(sliced[0].type.shape) == shape:
        return sliced
    return ctx.emit("graph.reshape", sliced, {"shape": shape})


@converter("GatherElements", since=11)
def gather_elements(ctx, node):
    data = ctx.input(node, 0)
    axis = axis_in(ctx, node, int(ctx.attr(node, "axis", 0)), data.type.rank)
    return ctx.emit("graph.gather_elements", [data, ctx.input(node, 1)], {"axis": axis})


@converter("GatherND", since=11)
def gather_nd(ctx, node):
    batch_dims = int(ctx.attr(node, "batch_dims", 0))
    data = ctx.input(node, 0)
    if ctx.is_const(node, 1) and not ctx.is_const(node, 0):
        view = _gather_nd_as_slice(ctx, data, ctx.const_input(node, 1, "indices"), batch_dims)
        if view is not None:
            return view
    return ctx.emit("graph.gather_nd", [data, ctx.input(node, 1)], {"batch_dims": batch_dims})


def _gather_nd_as_slice(ctx, data, idx, b: int):
    """Constant index tuples whose row-major positions in ``data``'s leading dims form an arithmetic
    progression (every row of a mask, in order: what transformers' exports index with ``arange`` pairs)
    are a reshape, a slice and a reshape: affine, so they fuse, instead of an opaque gather."""
    from ...ir.dialects.graph_shape import gather_nd_shape
    shape = data.type.shape
    try:
        out_shape = gather_nd_shape(shape, idx.shape, b)
    except ValueError:
        return None  # the op's own result-type rule reports it
    k = idx.shape[-1]
    dims = np.asarray(shape[b:b + k], dtype=np.int64)
    idx = idx.astype(np.int64)
    if idx.size == 0 or np.any((idx < -dims) | (idx >= dims)):
        return None
    idx = np.where(idx < 0, idx + dims, idx)
    batch = np.indices(idx.shape[:b], dtype=np.int64)  # each tuple's own batch coordinates
    batch = [np.broadcast_to(c.reshape(c.shape + (1,) * (idx.ndim - 1 - b)), idx.shape[:-1]) for c in batch]
    linear = np.ravel_multi_index(tuple(batch) + tuple(idx[..., j] for j in range(k)), shape[:b + k])
    if _progression(linear.reshape(-1)) is None:
        return None
    flat = ctx.emit("graph.reshape", [data], {"shape": [math.prod(shape[:b + k])] + list(shape[b + k:])})[0]
    view = _take_as_slice(ctx, flat, 0, linear.reshape(-1))
    if list(view[0].type.shape) == list(out_shape):
        return view
    return ctx.emit("graph.reshape", view, {"shape": list(out_shape)})


# The opset that introduced each ScatterND reduction.
_SCATTER_ND_SINCE = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}


@converter("ScatterND", since=11)
def scatter_nd(ctx, node):
    reduction = ctx.attr(node, "reduction", "none")
    if ctx.opset < _SCATTER_ND_SINCE.get(reduction, 1 << 30):
        raise ctx.error(node, f"ScatterND reduction '{reduction}' is not one of opset {ctx.opset}'s: "
                              + ", ".join(r for r, v in _SCATTER_ND_SINCE.items() if v <= ctx.opset))
    values = [ctx.input(node, i) for i in range(3)]
    return ctx.emit("graph.scatter_nd", values, {"reduction": reduction})


@converter("Expand", since=8)
def expand(ctx, node):
    from ...ir.dialects.graph_math import broadcast_shapes
    x = ctx.input(node, 0)
    shape = _ints(ctx, node, 1, "shape")
    try:
        out = broadcast_shapes(x.type.shape, tuple(shape))
    except ValueError as e:
        raise ctx.error(node, str(e)) from None
    return ctx.emit("graph.expand", [x], {"shape": list(out)})


@converter("Tile", since=6)
def tile(ctx, node):
    x = ctx.input(node, 0)
    return ctx.emit("graph.tile", [x], {"repeats": _ints(ctx, node, 1, "repeats")})


@converter("Pad", since=2)
def pad(ctx, node):
    x = ctx.input(node, 0)
    rank = x.type.rank
    mode = ctx.attr(node, "mode", "constant")
    if ctx.opset >= 11:
        pads = _ints(ctx, node, 1, "pads")
        value = ctx.const_input(node, 2, "constant_value").reshape(-1) if ctx.has_input(node, 2) else None
        value = 0.0 if value is None or value.size == 0 else value[0].item()
        axes = _ints(ctx, node, 3, "axes") if ctx.has_input(node, 3) else None
    else:
        pads, value, axes = list(ctx.attr(node, "pads", [])), ctx.attr(node, "value", 0.0), None
    if axes is not None:
        axes = [axis_in(ctx, node, a, rank) for a in axes]
        if len(pads) != 2 * len(axes):
            raise ctx.error(node, f"Pad has {len(pads)} pads for {len(axes)} axes")
        full = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise ctx.error(node, f"Pad has {len(pads)} pads; rank {rank} needs {2 * rank}")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise ctx.error(node, f"unknown Pad mode '{mode}'")
    return ctx.emit("graph.pad", [x], {"pads": pads, "mode": mode, "value": float(value)})


@converter("Trilu", since=14)
def trilu(ctx, node):
    x = ctx.input(node, 0)
    k = _ints(ctx, node, 1, "k")[0] if ctx.has_input(node, 1) else 0
    return ctx.emit("graph.trilu", [x], {"upper": int(ctx.attr(node, "upper", 1)), "k": k})


@converter("DepthToSpace")
def depth_to_space(ctx, node):
    return _block_move(ctx, node, "graph.depth_to_space")


@converter("SpaceToDepth")
def space_to_depth(ctx, node):
    return _block_move(ctx, node, "graph.space_to_depth")


def _block_move(ctx, node, op_name: str):
    """DepthToSpace / SpaceToDepth: ``op_name`` with the node's blocksize and mode (DCR or CRD)."""
    mode = ctx.attr(node, "mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise ctx.error(node, f"unknown {node.op_type} mode '{mode}'")
    return ctx.emit(op_name, [ctx.input(node, 0)], {"blocksize": int(ctx.attr(node, "blocksize", 0)), "mode": mode})


# --- compile-time constants --------------------------------------------------------------------------
@converter("Shape")
def shape(ctx, node):
    dims = list(ctx.input_type(node, 0).shape)
    rank = len(dims)
    start, end = int(ctx.attr(node, "start", 0)), ctx.attr(node, "end", None)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = rank if end is None else int(end)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return [ctx.constant(np.asarray(dims[start:end], dtype=np.int64))]


@converter("Size")
def size(ctx, node):
    return [ctx.constant(np.asarray(ctx.input_type(node, 0).numel, dtype=np.int64))]


@converter("ConstantOfShape", since=9)
def constant_of_shape(ctx, node):
    shape = _ints(ctx, node, 0, "shape")
    if any(d < 0 for d in shape):
        raise ctx.error(node, f"ConstantOfShape shape {shape} has a negative dimension")
    value = ctx.attr(node, "value", None)
    value = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value).reshape(-1)
    if value.size != 1:
        raise ctx.error(node, "ConstantOfShape value must have one element")
    ctx.check_size(node, shape, value.dtype)
    return [ctx.constant(np.full(shape, value[0], dtype=value.dtype))]


@converter("Range", since=11)
def range_(ctx, node):
    start, limit, delta = (ctx.const_input(node, i, what).reshape(()) for i, what in
                           enumerate(("start", "limit", "delta")))
    if delta == 0:
        raise ctx.error(node, "Range delta must not be 0")
    n = max(int(np.ceil((limit - start) / delta)), 0)
    dtype = start.dtype
    ctx.check_size(node, (n,), dtype)
    # start + i * delta in the input type, as ONNX defines it (not a float accumulation).
    values = (start + np.arange(n).astype(dtype) * delta).astype(dtype)
    return [ctx.constant(values)]

