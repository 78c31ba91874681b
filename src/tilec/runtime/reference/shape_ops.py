"""Numpy references of the graph shape family: views, transpose, concat/split, slice, gather, expand,
tile, pad, trilu and depth/space rearrangements."""
from __future__ import annotations

import numpy as np

from ...ir.dialects.graph_shape import gather_nd_shape, pad_widths, slice_params
from . import reference


@reference("graph.reshape")
def reshape(inputs, attrs):
    return [inputs[0].reshape(attrs["shape"])]


@reference("graph.flatten")
def flatten(inputs, attrs):
    x, axis = inputs[0], attrs.get("axis", 1)
    return [x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))]


@reference("graph.squeeze")
def squeeze(inputs, attrs):
    return [np.squeeze(inputs[0], axis=tuple(attrs["axes"]))]


@reference("graph.unsqueeze")
def unsqueeze(inputs, attrs):
    return [np.expand_dims(inputs[0], axis=tuple(sorted(attrs["axes"])))]


@reference("graph.identity")
def identity(inputs, attrs):
    return [inputs[0]]


# Matrices from this many elements are transposed tile by tile (_transpose_2d).
BLOCKED_FROM = 1 << 20
_TILE = 256


def _transpose_2d(x: np.ndarray) -> np.ndarray:
    """``x.T`` as a C-contiguous copy, 256 x 256 tiles at a time: numpy's copy reads the source a whole row
    apart per element, several times slower once the matrix is larger than the caches (fold-constants
    transposing GPT-2's tied 50257 x 768 embedding for its LM head: about 0.5 s, 0.1 s by tiles)."""
    n, m = x.shape
    out = np.empty((m, n), x.dtype)
    for i in range(0, n, _TILE):
        for j in range(0, m, _TILE):
            out[j:j + _TILE, i:i + _TILE] = x[i:i + _TILE, j:j + _TILE].T
    return out


@reference("graph.transpose")
def transpose(inputs, attrs):
    x, perm = np.asarray(inputs[0]), attrs["perm"]
    if x.ndim == 2 and tuple(perm) == (1, 0) and x.size >= BLOCKED_FROM:
        return [_transpose_2d(x)]
    return [np.asarray(np.transpose(x, perm), order="C")]


@reference("graph.concat")
def concat(inputs, attrs):
    return [np.concatenate(inputs, axis=attrs["axis"])]


@reference("graph.split")
def split(inputs, attrs):
    x, axis = inputs[0], attrs["axis"]
    bounds = np.cumsum(attrs["split"])[:-1]
    return [np.asarray(p, order="C") for p in np.split(x, bounds, axis=axis)]


@reference("graph.slice")
def slice_(inputs, attrs):
    x = inputs[0]
    starts, steps, out = slice_params(x.shape, attrs)
    # Index arrays, not Python slices: an end of -1 with a negative step means "past the front", which a
    # Python slice would read as "the last element".
    idx = np.ix_(*(s + st * np.arange(n) for s, st, n in zip(starts, steps, out)))
    return [x[idx] if x.ndim else x]


def _axis_index(data: np.ndarray, idx: np.ndarray, axis: int, what: str) -> np.ndarray:
    """``idx`` along ``data``'s ``axis`` with negative entries wrapped; ValueError when one is out of range."""
    n = data.shape[axis]
    if np.any((idx < -n) | (idx >= n)):
        raise ValueError(f"{what} index out of range for axis {axis} of size {n}")
    return np.where(idx < 0, idx + n, idx)


@reference("graph.gather")
def gather(inputs, attrs):
    data, idx = inputs[0], inputs[1]
    axis = attrs.get("axis", 0)
    return [np.take(data, _axis_index(data, idx, axis, "gather"), axis=axis)]


@reference("graph.gather_elements")
def gather_elements(inputs, attrs):
    data, idx = inputs[0], inputs[1]
    axis = attrs.get("axis", 0)
    return [np.take_along_axis(data, _axis_index(data, idx, axis, "gather_elements").astype(np.int64), axis=axis)]


def _nd_tuples(idx: np.ndarray, dims, what: str) -> np.ndarray:
    """Index tuples (last axis of ``idx``) with negative entries wrapped; ValueError when one is out of
    range of ``dims``."""
    dims = np.asarray(dims, dtype=np.int64)
    idx = idx.astype(np.int64)
    if np.any((idx < -dims) | (idx >= dims)):
        raise ValueError(f"{what} index out of range for dims {dims.tolist()}")
    return np.where(idx < 0, idx + dims, idx)


@reference("graph.gather_nd")
def gather_nd(inputs, attrs):
    data, idx = inputs[0], inputs[1]
    b = int(attrs.get("batch_dims", 0))
    k = idx.shape[-1]
    idx = _nd_tuples(idx, data.shape[b:b + k], "gather_nd")
    batch = int(np.prod(data.shape[:b], dtype=np.int64))
    flat_data = data.reshape((batch,) + data.shape[b:])
    flat_idx = idx.reshape(batch, -1, k)
    rows = np.arange(batch)[:, None]
    out = flat_data[(rows,) + tuple(flat_idx[..., j] for j in range(k))]
    return [np.asarray(out).reshape(gather_nd_shape(data.shape, inputs[1].shape, b))]


_SCATTER_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


@reference("graph.scatter_nd")
def scatter_nd(inputs, attrs):
    """Updates applied in index order, so with duplicate tuples the last one wins (``none``) or every
    one combines (the reductions), as in ONNX's reference."""
    data, idx, upd = inputs
    k = idx.shape[-1]
    idx = _nd_tuples(idx, data.shape[:k], "scatter_nd").reshape(-1, k)
    upd = upd.reshape((idx.shape[0],) + data.shape[k:])
    out = np.array(data, copy=True)
    fn = _SCATTER_UFUNCS.get(attrs.get("reduction", "none"))
    for i in range(idx.shape[0]):
        at = tuple(int(j) for j in idx[i])
        out[at] = upd[i] if fn is None else fn(out[at], upd[i])
    return [out]


@reference("graph.expand")
def expand(inputs, attrs):
    return [np.asarray(np.broadcast_to(inputs[0], attrs["shape"]), order="C")]


@reference("graph.tile")
def tile(inputs, attrs):
    return [np.tile(inputs[0], attrs["repeats"])]


@reference("graph.pad")
def pad(inputs, attrs):
    x = inputs[0]
    widths = pad_widths(x.ndim, attrs["pads"])
    # Negative pads crop first.
    x = x[tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(widths))]
    widths = [(max(b, 0), max(e, 0)) for b, e in widths]
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        return [np.pad(x, widths, constant_values=np.asarray(attrs.get("value", 0.0)).astype(x.dtype))]
    if mode not in ("reflect", "edge", "wrap"):
        raise ValueError(f"unknown pad mode '{mode}'")
    return [np.pad(x, widths, mode=mode)]


@reference("graph.trilu")
def trilu(inputs, attrs):
    x, k = inputs[0], attrs.get("k", 0)
    return [np.triu(x, k) if attrs.get("upper", 1) else np.tril(x, k)]


@reference("graph.depth_to_space")
def depth_to_space(inputs, attrs):
    x, b = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    if attrs.get("mode", "DCR") == "DCR":
        y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        y = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


@reference("graph.space_to_depth")
def space_to_depth(inputs, attrs):
    x, b = inputs[0], attrs["blocksize"]
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // b, b, w // b, b)
    y = y.transpose(0, 3, 5, 1, 2, 4) if attrs.get("mode", "DCR") == "DCR" else y.transpose(0, 1, 3, 5, 2, 4)
    return [y.reshape(n, c * b * b, h // b, w // b)]
