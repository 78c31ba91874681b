"""The reference ``graph.transpose`` copies large matrices tile by tile (``shape_ops._transpose_2d``): the same
array as numpy's transpose, C-contiguous, for every shape, dtype and layout of the input."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.runtime.reference import shape_ops


@pytest.mark.parametrize("shape", [(1, 1), (3, 700), (257, 513), (1000, 1), (600, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.bool_])
def test_tiled_transpose_equals_numpy(shape, dtype):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 100).astype(dtype)
    got = shape_ops._transpose_2d(x)
    assert got.dtype == x.dtype and got.flags.c_contiguous and np.array_equal(got, x.T)
    strided = np.asarray(rng.standard_normal((shape[0], 2 * shape[1])) * 100).astype(dtype)[:, ::2]
    assert np.array_equal(shape_ops._transpose_2d(strided), strided.T)


def test_the_reference_takes_the_tiled_path_only_for_large_matrices(monkeypatch):
    monkeypatch.setattr(shape_ops, "BLOCKED_FROM", 100)
    calls = []
    real = shape_ops._transpose_2d
    monkeypatch.setattr(shape_ops, "_transpose_2d", lambda x: calls.append(x.shape) or real(x))
    x = np.arange(300.0).reshape(20, 15)
    (got,) = shape_ops.transpose([x], {"perm": [1, 0]})
    assert calls == [(20, 15)] and np.array_equal(got, x.T) and got.flags.c_contiguous
    y = np.arange(24.0).reshape(2, 3, 4)
    (got,) = shape_ops.transpose([y], {"perm": [2, 0, 1]})
    (small,) = shape_ops.transpose([x[:5, :5]], {"perm": [1, 0]})
    assert calls == [(20, 15)] and np.array_equal(got, np.transpose(y, (2, 0, 1))) and np.array_equal(small, x[:5, :5].T)
