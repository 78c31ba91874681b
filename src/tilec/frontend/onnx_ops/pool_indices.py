"""MaxPool's second output, Indices: for each output element, the flat index (``(n * C + c) * H * W + ...``,
the spatial part row-major or, with ``storage_order`` 1, column-major) of the first largest element of its
window, as ONNX's reference scans it.

Built from existing graph ops (no new graph op): the windows are known at import, so a constant table lists
each output position's window as flat input positions, its in-bounds taps first in scan order and its
padding taps last (repeating the first in-bounds tap, so ArgMax, which keeps the first largest, never picks
one). A Gather reads the windows, ArgMax picks the tap, a GatherElements of the table turns it into the
spatial index in the storage order, and a constant per-(n, c) offset completes it. The values (output 0)
stay the ordinary ``graph.max_pool``.
"""
from __future__ import annotations

import math

import numpy as np

from .compose import Emitter


def window_tables(in_shape, out_shape, attrs, storage_order: int) -> tuple:
    """``(taps, indices)``: ``[Q, K]`` int64 tables (Q output positions, K window taps) of the flat row-major
    input position each tap reads, and the index ONNX reports for it (row- or column-major); None when some
    window lies wholly in the padding (ONNX's reference then reports -1, which this does not build).

    Computed as arrays over all positions and taps at once (a Python loop per tap took seconds on a large
    pool): positions and taps in row-major order, as ``itertools.product`` would give them."""
    n = len(in_shape)
    kernel, strides = attrs["kernel_shape"], attrs.get("strides") or [1] * n
    dilations, pads = attrs.get("dilations") or [1] * n, attrs.get("pads") or [0] * (2 * n)
    pos = np.indices(out_shape, np.int64).reshape(n, -1).T               # [Q, n]
    off = np.indices(kernel, np.int64).reshape(n, -1).T                  # [K, n]
    at = (pos * strides - pads[:n])[:, None, :] + (off * dilations)[None, :, :]   # [Q, K, n]
    inside = ((at >= 0) & (at < np.asarray(in_shape, np.int64))).all(axis=2)     # [Q, K]
    if not inside.any(axis=1).all():
        return None
    # In-bounds taps first, each kind in scan order (a stable sort); the padding taps then repeat the first.
    order = np.argsort(~inside, axis=1, kind="stable")
    at = np.take_along_axis(at, order[:, :, None], axis=1)
    at = np.where(np.take_along_axis(inside, order, axis=1)[:, :, None], at, at[:, :1])
    coords = tuple(np.moveaxis(at, 2, 0))
    taps = np.ravel_multi_index(coords, in_shape).astype(np.int64)
    indices = np.ravel_multi_index(coords, in_shape, order="F" if storage_order else "C").astype(np.int64)
    return taps, indices


def max_pool_indices(ctx, node, x, y, attrs):
    """The Indices output of MaxPool ``node`` on ``x`` whose values output is ``y``."""
    storage_order = int(ctx.attr(node, "storage_order", 0))
    if storage_order not in (0, 1):
        raise ctx.error(node, f"storage_order must be 0 or 1, not {storage_order}")
    batch, channels, *space = x.type.shape
    out_space = list(y.type.shape[2:])
    q, k = math.prod(out_space), math.prod(attrs["kernel_shape"])
    ctx.check_size(node, [batch, channels, q, k], np.int64)   # the expanded index table, the largest
    tables = window_tables(space, out_space, attrs, storage_order)
    if tables is None:
        raise ctx.error(node, "a MaxPool window lies wholly in the padding: its Indices would be -1, which tilec "
                              "does not produce")
    taps, reported = tables
    e = Emitter(ctx)
    flat = e.reshape(x, [batch, channels, math.prod(space)])
    windows = e.op("gather", [flat, e.const(taps, "i64")], axis=2)                 # [N, C, Q, K]
    pick = e.op("arg_max", [windows], axis=3, keepdims=1, select_last_index=0)    # [N, C, Q, 1]
    table = e.op("expand", [e.const(reported.reshape(1, 1, q, k), "i64")], shape=[batch, channels, q, k])
    spatial = e.op("gather_elements", [table, pick], axis=3)
    offset = (np.arange(batch * channels, dtype=np.int64) * math.prod(space)).reshape(batch, channels, 1, 1)
    return e.reshape(e.op("add", [spatial, e.const(offset, "i64")]), [batch, channels, *out_space])
