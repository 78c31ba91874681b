"""``index_map.grid_footprint``'s memo of per-group sums (``_GROUP_SUMS``, issue #19 compile time): a group of
affine dims is summed once per value and reused wherever the same dims meet the same tile sizes, also from another
access or expression. The memoised counts must equal a fresh count and brute force; a ``last`` function is only
memoised under a ``last_key`` that names it, so two different functions never share an entry."""
from __future__ import annotations

import pytest

from tilec.analysis import index_map
from tilec.analysis.index_map import grid_footprint
from tilec.ir.texpr import parse_texpr

from test_grid_sum import _brute   # noqa: E402

CONV = "Y[n, f, h, w] += X[n, c, h * 2 + kh - 1, w + kw - 1] * W[f, c, kh, kw]"
SHAPES = {"X": (2, 6, 15, 9), "W": (5, 6, 3, 3)}
EXTENTS = {"n": 2, "f": 5, "h": 7, "w": 9, "c": 6, "kh": 3, "kw": 3}


def _tiles():
    for h in (1, 2, 4, 7):
        for w in (1, 3, 9):
            for c in (1, 4, 6):
                yield {"n": 1, "f": 5, "h": h, "w": w, "c": c, "kh": 3, "kw": 3}


@pytest.fixture(autouse=True)
def _cold():
    index_map._GROUP_SUMS.clear()
    yield
    index_map._GROUP_SUMS.clear()


def test_memoised_counts_equal_fresh_ones_and_brute_force(monkeypatch):
    expr = parse_texpr(CONV)
    calls = []
    group_sum = index_map._group_sum
    monkeypatch.setattr(index_map, "_group_sum", lambda *a: calls.append(1) or group_sum(*a))
    first = {}
    for sizes in _tiles():
        for acc in expr.accesses:
            first[tuple(sizes.values()), acc.tensor] = grid_footprint(expr, acc, sizes, EXTENTS, SHAPES[acc.tensor])
    cold = len(calls)
    assert index_map._GROUP_SUMS and cold < 36 * 7   # groups repeat across tiles: far fewer sums than groups asked
    for sizes in _tiles():   # warm: every count from the memo, the same value, and what brute force counts
        for acc in expr.accesses:
            got = grid_footprint(expr, acc, sizes, EXTENTS, SHAPES[acc.tensor])
            assert got == first[tuple(sizes.values()), acc.tensor]
            assert got == _brute(expr, acc, sizes, EXTENTS, SHAPES[acc.tensor])
    assert len(calls) == cold


def test_a_last_function_is_memoised_only_under_its_key():
    expr = parse_texpr(CONV)
    acc = expr.accesses[0]
    sizes = {"n": 1, "f": 5, "h": 2, "w": 3, "c": 4, "kh": 3, "kw": 3}
    sectors = lambda n: -(-n * 4 // 32) * 32   # noqa: E731
    doubled = lambda n: 2 * n   # noqa: E731
    plain = grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"])
    kept = len(index_map._GROUP_SUMS)
    # Without a key neither function is memoised nor takes the default's entries.
    assert grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"], sectors) == _brute(expr, acc, sizes, EXTENTS,
                                                                                     SHAPES["X"], sectors)
    assert grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"], doubled) == 2 * plain
    assert len(index_map._GROUP_SUMS) == kept
    # Under distinct keys each gets its own entries, and its own value back.
    a = grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"], sectors, last_key=("sectors", 4, 32))
    b = grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"], doubled, last_key="doubled")
    assert len(index_map._GROUP_SUMS) > kept
    assert (a, b) == (_brute(expr, acc, sizes, EXTENTS, SHAPES["X"], sectors), 2 * plain)
    assert grid_footprint(expr, acc, sizes, EXTENTS, SHAPES["X"], doubled, last_key="doubled") == b
