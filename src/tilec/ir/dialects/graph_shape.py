"""Result-type rules of the graph dialect's shape family (``ir_specs/ops/graph_shape.json``).

The shape arithmetic lives here once (slice bounds, pad widths, ...) and the numpy references and the
decomposition rules reuse it, so the three can never disagree about a shape.
"""
from __future__ import annotations

import math

from ..opspec import result_rule
from .graph_math import broadcast_shapes


def _check_axis(axis: int, rank: int, what: str = "axis") -> int:
    if not 0 <= axis < max(rank, 1):
        raise ValueError(f"{what} {axis} is out of range for rank {rank}")
    return axis


def slice_params(shape, attrs) -> tuple:
    """``(starts, steps, out_shape)``, full rank, for a slice with ONNX semantics: negative starts/ends
    count from the end, out-of-range ones are clamped, ``axes`` defaults to every axis."""
    rank = len(shape)
    axes = attrs.get("axes")
    if axes is None:
        axes = list(range(rank))
    steps_in = attrs.get("steps") or [1] * len(axes)
    starts, steps, out = [0] * rank, [1] * rank, list(shape)
    if not len(attrs["starts"]) == len(attrs["ends"]) == len(axes) == len(steps_in):
        raise ValueError("starts, ends, axes and steps must have the same length")
    if len(set(axes)) != len(axes):
        raise ValueError(f"slice axes {axes} repeat an axis")
    for a, s, e, st in zip(axes, attrs["starts"], attrs["ends"], steps_in):
        _check_axis(a, rank)
        n = shape[a]
        if st == 0:
            raise ValueError("slice step must not be 0")
        s = s + n if s < 0 else s
        e = e + n if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), n), min(max(e, 0), n)
            size = max(0, -(-(e - s) // st))
        else:
            s, e = min(max(s, -1), n - 1), min(max(e, -1), n - 1)
            size = max(0, -(-(s - e) // -st))
        starts[a], steps[a], out[a] = s, st, size
    return starts, steps, out


def pad_widths(rank: int, pads) -> list:
    """ONNX ``pads`` (all begins, then all ends) as ``[(begin, end), ...]`` per axis."""
    if len(pads) != 2 * rank:
        raise ValueError(f"pads has {len(pads)} values; rank {rank} needs {2 * rank}")
    return [(pads[i], pads[i + rank]) for i in range(rank)]


@result_rule("reshape")
def _reshape(types, attrs):
    x = types[0]
    shape = list(attrs["shape"])
    if math.prod(shape) != x.numel:
        raise ValueError(f"cannot reshape {list(x.shape)} ({x.numel} elements) to {shape}")
    return [x.with_shape(shape)]


@result_rule("flatten")
def _flatten(types, attrs):
    x = types[0]
    axis = _check_axis(attrs["axis"], x.rank + 1)
    return [x.with_shape((math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))]


@result_rule("squeeze")
def _squeeze(types, attrs):
    x = types[0]
    axes = attrs["axes"]
    for a in axes:
        _check_axis(a, x.rank)
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [x.with_shape([d for i, d in enumerate(x.shape) if i not in axes])]


@result_rule("unsqueeze")
def _unsqueeze(types, attrs):
    x = types[0]
    axes = sorted(attrs["axes"])
    rank = x.rank + len(axes)
    if len(set(axes)) != len(axes) or any(not 0 <= a < rank for a in axes):
        raise ValueError(f"unsqueeze axes {axes} are invalid for result rank {rank}")
    dims = iter(x.shape)
    return [x.with_shape([1 if i in axes else next(dims) for i in range(rank)])]


@result_rule("transpose")
def _transpose(types, attrs):
    x = types[0]
    perm = attrs["perm"]
    if sorted(perm) != list(range(x.rank)):
        raise ValueError(f"perm {perm} is not a permutation of {x.rank} axes")
    return [x.with_shape([x.shape[p] for p in perm])]


@result_rule("concat")
def _concat(types, attrs):
    first = types[0]
    axis = _check_axis(attrs["axis"], first.rank)
    for t in types[1:]:
        if t.dtype != first.dtype or t.rank != first.rank or any(
                a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis):
            raise ValueError(f"cannot concatenate {t} with {first} along axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [first.with_shape(shape)]


@result_rule("split")
def _split(types, attrs):
    x = types[0]
    axis = _check_axis(attrs["axis"], x.rank)
    sizes = attrs["split"]
    if sum(sizes) != x.shape[axis] or any(s < 0 for s in sizes):
        raise ValueError(f"split sizes {sizes} do not add up to dimension {x.shape[axis]}")
    out = []
    for s in sizes:
        shape = list(x.shape)
        shape[axis] = s
        out.append(x.with_shape(shape))
    return out


@result_rule("slice")
def _slice(types, attrs):
    return [types[0].with_shape(slice_params(types[0].shape, attrs)[2])]


@result_rule("gather")
def _gather(types, attrs):
    data, idx = types[0], types[1]
    axis = _check_axis(attrs["axis"], data.rank)
    if idx.dtype not in ("i32", "i64"):
        raise ValueError(f"indices must be i32 or i64, not {idx.dtype}")
    return [data.with_shape(data.shape[:axis] + idx.shape + data.shape[axis + 1:])]


@result_rule("gather_elements")
def _gather_elements(types, attrs):
    data, idx = types[0], types[1]
    _check_axis(attrs["axis"], data.rank)
    if idx.rank != data.rank:
        raise ValueError("data and indices must have the same rank")
    return [data.with_shape(idx.shape)]


def gather_nd_shape(data_shape, indices_shape, batch_dims: int) -> tuple:
    """GatherND's result shape (``indices.shape[:-1] + data.shape[batch_dims + k:]``, k the index tuple
    length); ValueError when the operands do not fit together."""
    r, q, b = len(data_shape), len(indices_shape), batch_dims
    if q < 1 or r < 1:
        raise ValueError("data and indices must have rank 1 or more")
    if not 0 <= b < min(q, r):
        raise ValueError(f"batch_dims {b} must be below the ranks of data ({r}) and indices ({q})")
    if tuple(data_shape[:b]) != tuple(indices_shape[:b]):
        raise ValueError(f"the first {b} dims of data {list(data_shape)} and indices {list(indices_shape)} differ")
    k = indices_shape[-1]
    if not 1 <= k <= r - b:
        raise ValueError(f"index tuples of length {k} do not fit data of rank {r} with batch_dims {b}")
    return tuple(indices_shape[:-1]) + tuple(data_shape[b + k:])


@result_rule("gather_nd")
def _gather_nd(types, attrs):
    data, idx = types[0], types[1]
    if idx.dtype != "i64":
        raise ValueError(f"indices must be i64, not {idx.dtype}")
    return [data.with_shape(gather_nd_shape(data.shape, idx.shape, int(attrs.get("batch_dims", 0))))]


SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


@result_rule("scatter_nd")
def _scatter_nd(types, attrs):
    data, idx, upd = types[0], types[1], types[2]
    if idx.dtype != "i64":
        raise ValueError(f"indices must be i64, not {idx.dtype}")
    if upd.dtype != data.dtype:
        raise ValueError(f"updates ({upd.dtype}) and data ({data.dtype}) have different element types")
    if attrs.get("reduction", "none") not in SCATTER_REDUCTIONS:
        raise ValueError(f"unknown reduction '{attrs.get('reduction')}'")
    k = idx.shape[-1] if idx.rank else 0
    if idx.rank < 1 or not 1 <= k <= data.rank:
        raise ValueError(f"indices {list(idx.shape)} do not index data of rank {data.rank}")
    want = tuple(idx.shape[:-1]) + tuple(data.shape[k:])
    if tuple(upd.shape) != want:
        raise ValueError(f"updates have shape {list(upd.shape)}, expected {list(want)}")
    return [data]


@result_rule("expand")
def _expand(types, attrs):
    x = types[0]
    shape = broadcast_shapes(x.shape, tuple(attrs["shape"]))
    if list(shape) != list(attrs["shape"]):
        raise ValueError(f"expand shape {attrs['shape']} is not the broadcast result {list(shape)}")
    return [x.with_shape(shape)]


@result_rule("tile")
def _tile(types, attrs):
    x = types[0]
    reps = attrs["repeats"]
    if len(reps) != x.rank or any(r < 0 for r in reps):
        raise ValueError(f"repeats {reps} do not fit rank {x.rank}")
    return [x.with_shape([d * r for d, r in zip(x.shape, reps)])]


@result_rule("pad")
def _pad(types, attrs):
    x = types[0]
    widths = pad_widths(x.rank, attrs["pads"])
    shape = [d + b + e for d, (b, e) in zip(x.shape, widths)]
    if attrs.get("mode", "constant") in ("reflect", "edge", "wrap"):
        for d, (b, e) in zip(x.shape, widths):
            if (b or e) and (d == 0 or b < 0 or e < 0):
                raise ValueError(f"{attrs['mode']} padding needs a non-empty axis and non-negative pads")
            if attrs["mode"] == "reflect" and max(b, e) > d - 1 and (b or e):
                raise ValueError(f"reflect pads {b}, {e} must be smaller than the axis size {d}")
    if any(d < 0 for d in shape):
        raise ValueError(f"pads {attrs['pads']} remove more than the axis holds")
    return [x.with_shape(shape)]


@result_rule("trilu")
def _trilu(types, attrs):
    if types[0].rank < 2:
        raise ValueError("Trilu needs rank 2 or more")
    return [types[0]]


@result_rule("depth_to_space")
def _depth_to_space(types, attrs):
    x, b = types[0], attrs["blocksize"]
    if x.rank != 4 or x.shape[1] % (b * b):
        raise ValueError(f"DepthToSpace needs NCHW input with C divisible by {b * b}")
    n, c, h, w = x.shape
    return [x.with_shape((n, c // (b * b), h * b, w * b))]


@result_rule("space_to_depth")
def _space_to_depth(types, attrs):
    x, b = types[0], attrs["blocksize"]
    if x.rank != 4 or x.shape[2] % b or x.shape[3] % b:
        raise ValueError(f"SpaceToDepth needs NCHW input with H and W divisible by {b}")
    n, c, h, w = x.shape
    return [x.with_shape((n, c * b * b, h // b, w // b))]

