"""``index_map.grid_sum`` (the broadcast sum the footprint counts use instead of materialising the grid) and
``grid_footprint`` on quasi-affine and coupled indices, both against brute force (affine windows are covered
by tests/roller/test_edge_clipping.py)."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from tilec.analysis.index_map import access_box, grid_footprint, grid_sum
from tilec.ir.texpr import parse_texpr


def test_grid_sum_is_the_sum_of_the_broadcast():
    rng = np.random.default_rng(0)
    grid = (3, 5, 4)
    for shape in [(), (1,), (4,), (5, 1), (3, 1, 4), (1, 5, 4), (3, 5, 4), (1, 1, 1)]:
        values = rng.integers(-7, 50, size=shape, dtype=np.int64)
        assert grid_sum(values, grid) == int(np.broadcast_to(values, grid).sum())
    assert grid_sum(np.int64(3), [2, 7]) == 42
    assert grid_sum(np.ones((1, 0), dtype=np.int64), (4, 0)) == 0


def test_grid_sum_refuses_what_does_not_broadcast():
    with pytest.raises(ValueError, match="broadcast"):
        grid_sum(np.ones((2, 3), dtype=np.int64), (3, 3))
    with pytest.raises(ValueError, match="does not broadcast"):   # wider than the grid: not a broadcast
        grid_sum(np.ones(3, dtype=np.int64), (1,))


def _brute(expr, access, sizes, extents, shape, last=lambda n: n) -> int:
    total = 0
    for point in itertools.product(*[range(0, extents[a], sizes[a]) for a in expr.axes]):
        ranges = {a: (o, o + sizes[a]) for a, o in zip(expr.axes, point)}
        counts = [max(0, min(hi, d) - max(lo, 0)) for (lo, hi), d in zip(access_box(expr, access, ranges), shape)]
        total += math.prod(counts[:-1]) * last(counts[-1])
    return total


@pytest.mark.parametrize("text, shape", [
    ("Y[i, j] = X[i / 4, j % 3 + i]", (3, 14)),            # quasi-affine dims, one coupled with an affine axis
    ("Y[i, j] += X[i * 2 + r - 1, j] * W[r]", (15, 9)),       # a strided, padded window
    ("Y[i, j] = X[j, i / 2]", (9, 5)),                       # transposed, quasi-affine innermost
])
def test_grid_footprint_matches_brute_force(text, shape):
    expr = parse_texpr(text)
    extents = {a: 9 if a != "r" else 3 for a in expr.axes}
    last = lambda n: -(-n * 4 // 32) * 32   # noqa: E731 - f32 rows rounded up to 32-B sectors
    for sizes in ({a: 1 for a in expr.axes}, {a: 2 for a in expr.axes},
                  {a: (4 if a == "i" else 3) for a in expr.axes}):
        acc = expr.accesses[0]
        assert grid_footprint(expr, acc, sizes, extents, shape) == _brute(expr, acc, sizes, extents, shape)
        assert grid_footprint(expr, acc, sizes, extents, shape, last) == \
            _brute(expr, acc, sizes, extents, shape, last)
