"""Index maps of tensor expressions: which input elements a tile of the iteration space reads.

Roller sizes tiles with these maps and Welder propagates an output tile backwards through them (a conv's
input tile includes its halo). Exact for affine indices; conservative intervals for quasi-affine ones
(``i / 4``, ``i % 4``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.texpr import Access, AxisRef, Num, TexprError, axes_in, index_bounds, to_affine
from ..ir.texpr.evaluate import product_factors

# Tile origins enumerated jointly per group of coupled axes before grid_footprint falls back to interior
# boxes. Coupled groups are small in practice (a conv's (h, kh) pair: output tiles × kernel steps).
JOINT_LIMIT = 1 << 22
# grid_footprint's per-group sums, by value (:func:`_group_key`): Roller's candidates and the conv-chain search
# count the same access over many tile shapes that differ only on axes a group does not read (a weight's
# channel dims under every spatial tile), so most groups repeat. Cleared when it holds GROUP_SUMS_KEPT.
_GROUP_SUMS: dict = {}
GROUP_SUMS_KEPT = 1 << 16


@dataclass(frozen=True)
class AccessMap:
    """``index[d] = Σ_j matrix[d][j] · point[axes[j]] + consts[d]`` for every affine dim ``d``.

    Rows of quasi-affine dims (listed in ``quasi_dims``) are all zero; ``affine`` is False when any dim is
    quasi-affine, and ``indices`` keeps the index nodes so :meth:`apply` can evaluate every dim exactly."""

    axes: tuple
    matrix: tuple
    consts: tuple
    quasi_dims: tuple
    indices: tuple

    @property
    def affine(self) -> bool:
        return not self.quasi_dims

    def apply(self, point: dict) -> tuple:
        """The input element read at iteration ``point`` (``{axis: value}``)."""
        return tuple(index_bounds(ix, {a: (v, v + 1) for a, v in point.items()})[0] for ix in self.indices)


def access_map(expr, access: Access) -> AccessMap:
    """The affine map of ``access`` over ``expr.axes``."""
    rows, consts, quasi = [], [], []
    for d, ix in enumerate(access.indices):
        aff = to_affine(ix)
        if aff is None:
            rows.append(tuple(0 for _ in expr.axes))
            consts.append(0)
            quasi.append(d)
        else:
            rows.append(tuple(aff.coeff(a) for a in expr.axes))
            consts.append(aff.const)
    return AccessMap(tuple(expr.axes), tuple(rows), tuple(consts), tuple(quasi), tuple(access.indices))


def access_box(expr, access: Access, ranges: dict) -> list:
    """Half-open ``(lo, hi)`` per input dim touched when every axis ``a`` runs over ``ranges[a]``
    (half-open, non-empty). Not clipped to the input's shape: a conv tile's halo may start below 0."""
    for ax in expr.axes:
        if ax not in ranges:
            raise TexprError(f"access_box: no range for axis '{ax}'", 0)
        lo, hi = ranges[ax]
        if hi <= lo:
            raise TexprError(f"access_box: empty range [{lo}, {hi}) for axis '{ax}'", 0)
    out = []
    for ix in access.indices:
        lo, hi = index_bounds(ix, ranges)
        out.append((lo, hi + 1))
    return out


def grid_footprint(expr, access: Access, sizes: dict, extents: dict, shape, last=None, last_key=None) -> int:
    """Elements of ``access`` a tiled kernel loads over its whole tile grid: Σ over tiles of the in-bounds
    part of the tile's box.

    Tiles of ``sizes[a]`` start at 0, s, 2s, … below ``extents[a]`` on every axis of ``expr``. A tile's box
    is :func:`access_box` of the full tile (kernels stage whole boxes, predicated only on the tensor's
    bounds), clipped per dim to ``[0, shape[d])``: padded halos and the overhang of edge tiles read
    nothing. ``last`` maps the innermost dim's in-bounds counts (an int or an int64 array, elementwise,
    0 to 0) to their cost, e.g. bytes rounded up to sectors; by default every element costs 1.

    The box is a product of per-dim intervals, so the sum factors over groups of dims coupled by shared
    axes: each group's tile origins are enumerated jointly (vectorised), axes no dim reads multiply in as
    tile counts. Exact for affine indices; quasi-affine dims use :func:`index_bounds`' intervals.

    A group of affine dims is summed once per value (its dims' affine forms, the group's tile sizes and counts,
    the shape): memoised when ``last`` is the default or ``last_key`` (hashable) names what a given ``last``
    computes, so two different functions never share a key.
    """
    memo = last is None or last_key is not None
    last = last or (lambda n: n)
    tiles = {a: -(-extents[a] // sizes[a]) for a in expr.axes}
    if not access.indices:
        return last(1) * math.prod(tiles.values())
    dim_axes = [set(axes_in(ix)) for ix in access.indices]
    groups: list = []          # [(axes, dims)], dims coupled through shared axes merged
    for d, axes in enumerate(dim_axes):
        merged, rest = (set(axes), [d]), []
        for g in groups:
            if g[0] & merged[0]:
                merged = (g[0] | merged[0], g[1] + merged[1])
            else:
                rest.append(g)
        groups = rest + [merged]
    used = set().union(*dim_axes)
    total = math.prod(t for a, t in tiles.items() if a not in used)
    for axes, dims in groups:
        axes, dims = sorted(axes, key=list(expr.axes).index), sorted(dims)
        key = _group_key(access, axes, dims, sizes, tiles, shape, last_key) if memo else None
        if key is None:
            total *= _group_sum(access, axes, dims, sizes, tiles, shape, last)
            continue
        if key not in _GROUP_SUMS:
            if len(_GROUP_SUMS) >= GROUP_SUMS_KEPT:
                _GROUP_SUMS.clear()
            _GROUP_SUMS[key] = _group_sum(access, axes, dims, sizes, tiles, shape, last)
        total *= _GROUP_SUMS[key]
    return int(total)


def _group_key(access, axes: list, dims: list, sizes: dict, tiles: dict, shape, last_key):
    """Everything :func:`_group_sum` reads for a group of affine dims, by value, or None when a dim is
    quasi-affine (its intervals come from the index expression itself)."""
    innermost = len(access.indices) - 1
    forms = []
    for d in dims:
        aff = to_affine(access.indices[d])
        if aff is None:
            return None
        forms.append((aff.const, tuple(aff.coeff(a) for a in axes), int(shape[d]), d == innermost))
    return (last_key, tuple(forms), tuple((sizes[a], tiles[a]) for a in axes))


def _group_sum(access, axes: list, dims: list, sizes: dict, tiles: dict, shape, last) -> int:
    """Σ over the joint tile origins of ``axes`` of Π over ``dims`` of the in-bounds count (``last``
    applied to the innermost dim of the access)."""
    n = math.prod(tiles[a] for a in axes)
    innermost = len(access.indices) - 1
    if n > JOINT_LIMIT:   # too many coupled tiles: interior boxes clipped to the tensor's size
        per = 1
        full = {a: (0, sizes[a]) for a in axes}
        for d in dims:
            lo, hi = index_bounds(access.indices[d], full)
            c = min(hi + 1 - lo, shape[d])
            per *= last(c) if d == innermost else c
        return per * n
    # Each axis' tile origins as a column of the joint grid (shape ``joint``): the dims' counts broadcast
    # against each other and the sum multiplies out the axes a product does not read (grid_sum), instead of
    # materialising every joint origin (the searches call this tens of thousands of times on small grids).
    joint = [tiles[a] for a in axes]
    ones = [1] * len(axes)
    origin = {a: (np.arange(tiles[a], dtype=np.int64) * sizes[a]).reshape(ones[:k] + [-1] + ones[k + 1:])
              for k, a in enumerate(axes)}
    weight = np.ones(ones, dtype=np.int64)
    for d in dims:
        ix = access.indices[d]
        aff = to_affine(ix)
        if aff is not None:   # lo = const + Σ c·origin, plus c·(size-1) where c < 0; a fixed extent
            lo = np.full(ones, aff.const, dtype=np.int64)
            extent = 1
            for a, c in aff.coeffs:
                lo = lo + c * origin[a] + min(c, 0) * (sizes[a] - 1)
                extent += abs(c) * (sizes[a] - 1)
            hi = lo + extent
        else:   # quasi-affine: bounds per joint origin, in the grid's row-major order
            flat = {a: np.broadcast_to(o, joint).ravel() for a, o in origin.items()}
            box = [index_bounds(ix, {a: (int(flat[a][i]), int(flat[a][i]) + sizes[a]) for a in axes})
                   for i in range(n)]
            lo = np.array([b[0] for b in box], dtype=np.int64).reshape(joint)
            hi = np.array([b[1] + 1 for b in box], dtype=np.int64).reshape(joint)
        # np.maximum(.., 0), not np.clip: the same integers, without clip's per-call dtype-limits overhead
        count = np.maximum(np.minimum(hi, shape[d]) - np.maximum(lo, 0), 0)
        if d == innermost:
            count = last(count)
        weight = weight * count
    return grid_sum(weight, joint)


def grid_sum(values, grid) -> int:
    """``int(np.broadcast_to(values, grid).sum())`` without materialising the broadcast: the sum of the
    values times the length of every dim they are broadcast along (``values`` must broadcast to ``grid``)."""
    values = np.asarray(values)
    grid = tuple(int(g) for g in grid)
    if np.broadcast_shapes(values.shape, grid) != grid:
        raise ValueError(f"grid_sum: shape {values.shape} does not broadcast to {grid}")
    if values.size == 0:
        return 0
    return int(values.sum()) * (math.prod(grid) // values.size)


def _plain(access: Access) -> bool:
    """Every index a bare axis or an integer constant."""
    return all(isinstance(i, AxisRef) or (isinstance(i, Num) and i.is_int) for i in access.indices)


def _axes_of(access: Access) -> list:
    return [i.name for i in access.indices if isinstance(i, AxisRef)]


def classify(expr) -> str:
    """The kind of computation, for choosing a kernel template and a tiling policy:

    - ``elementwise``: no reduce axes, every input indexed by exactly the output axes (constants allowed
      for broadcast size-1 dims);
    - ``broadcast``: no reduce axes, every input indexed by output axes in output order, some missing;
    - ``transpose``: no reduce axes, plain indices, some input reads output axes out of order;
    - ``contraction``: ``+=`` of a product of two accesses with plain indices sharing a reduce axis
      (matmul, batched matmul);
    - ``conv``: ``+=`` of a product of two accesses with affine indices, some compound (``h + kh``), and
      also any other reduction reading compound affine indices (pooling): the backend tiles both alike;
    - ``reduction``: any other reduction whose accesses all have plain indices;
    - ``other``: the rest (slices, pads, reshapes with ``/`` ``%``, gathers of shifted windows...).
    """
    accesses = expr.accesses
    quasi = any(to_affine(i) is None for a in accesses for i in a.indices)
    if not expr.reduce_axes:
        if not all(_plain(a) for a in accesses):
            return "other"
        out = list(expr.out_axes)
        kinds = set()
        for a in accesses:
            axes = _axes_of(a)
            if axes == out:
                kinds.add("elementwise")
            elif axes == [x for x in out if x in axes] and len(set(axes)) == len(axes):
                kinds.add("broadcast")
            else:
                kinds.add("transpose")
        for kind in ("transpose", "broadcast"):
            if kind in kinds:
                return kind
        return "elementwise"
    if quasi:
        return "other"
    prod = product_factors(expr.body) if expr.combiner == "sum" else None
    if prod and len(prod[0]) == 2 and all(isinstance(f, Access) for f in prod[0]):
        a, b = prod[0]
        if a != b:
            if _plain(a) and _plain(b):
                shared = set(_axes_of(a)) & set(_axes_of(b)) & set(expr.reduce_axes)
                if shared and len(set(_axes_of(a))) == len(_axes_of(a)) and \
                        len(set(_axes_of(b))) == len(_axes_of(b)):
                    return "contraction"
            else:
                return "conv"
    if any(not _plain(a) for a in accesses):
        return "conv"
    return "reduction"


__all__ = ["AccessMap", "access_box", "access_map", "classify", "grid_footprint", "grid_sum"]
