"""Barriers, shared memory (plain, TL_SHARED arena, dynamic), thread orders, warp intrinsics."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backend.emu import EmuError


def _matmul(m, kernel, M, N, K, order="normal", seed=0):
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = np.zeros((M, N), np.float32)
    stats = m.launch(kernel, ((N + 15) // 16, (M + 15) // 16), (16, 16), [c, a, b, M, N, K], order=order, seed=seed)
    return c, a @ b, stats


@pytest.mark.parametrize("kernel", ["matmul_tiled", "matmul_arena"])
@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_tiled_matmul_is_right_in_every_order(load, kernel, order):
    c, ref, stats = _matmul(load("matmul"), kernel, 70, 50, 40, order)   # ragged edges on every axis
    np.testing.assert_allclose(c, ref, rtol=1e-5, atol=1e-5)
    assert stats.global_store_bytes == 70 * 50 * 4
    # Each of the 4x5 blocks loads, per k-tile, one valid 16x16 piece of A and of B (edges predicated).
    assert stats.global_load_bytes > 0


@pytest.mark.parametrize("kernel", ["matmul_tiled", "matmul_arena"])
def test_matmul_with_concurrent_blocks(load, kernel):
    # All 20 blocks interleave on one OS thread: plain __shared__ arrays are swapped per block, TL_SHARED
    # arrays live in per-block arenas.
    m = load("matmul")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((70, 40), dtype=np.float32), rng.standard_normal((40, 50), dtype=np.float32)
    c = np.zeros((70, 50), np.float32)
    m.launch(kernel, (4, 5), (16, 16), [c, a, b, 70, 50, 40], concurrent_blocks=True, order="shuffle", seed=2)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)


def test_missing_barrier_is_wrong_under_reverse(load):
    m = load("matmul")
    c, ref, _ = _matmul(m, "matmul_racy", 64, 64, 64, "reverse")
    assert not np.allclose(c, ref, rtol=1e-3, atol=1e-3)
    c2, _, _ = _matmul(m, "matmul_racy", 64, 64, 64, "reverse")
    np.testing.assert_array_equal(c, c2)   # deterministic, so the failure reproduces


def test_shared_memory_is_poisoned(load):
    m = load("matmul")
    x = np.arange(256, dtype=np.float32) + 1
    y = np.zeros_like(x)
    m.launch("shift_racy", 2, 128, [y, x])               # in order: thread t-1 wrote before t reads
    np.testing.assert_array_equal(y[1:128], x[:127])
    m.launch("shift_racy", 2, 128, [y, x], order="reverse")
    assert np.isnan(y[1:128]).all() and np.isnan(y[129:]).all()   # the neighbour's slot is still poisoned
    m.launch("shift_racy", 2, 128, [y, x], order="shuffle", seed=3)
    first = y.copy()
    assert np.isnan(first).any() and not np.isnan(first).all()
    m.launch("shift_racy", 2, 128, [y, x], order="shuffle", seed=3)
    np.testing.assert_array_equal(y, first)               # same seed, same interleaving


def test_block_reduce_sum_and_max(load):
    m = load("reduce")
    rng = np.random.default_rng(2)
    rows, n = 6, 1000
    x = rng.standard_normal((rows, n), dtype=np.float32)
    s, mx = np.zeros(rows, np.float32), np.zeros(rows, np.float32)
    for block in (256, 96, 32):                           # partial last-warp counts in the second stage
        m.launch("block_reduce", rows, block, [s, mx, x, n])
        np.testing.assert_allclose(s, x.sum(axis=1), rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(mx, x.max(axis=1))


def test_warp_scan_and_votes(load):
    m = load("reduce")
    rng = np.random.default_rng(3)
    x = rng.standard_normal(128, dtype=np.float32)
    x[32:64] = np.abs(x[32:64]) + 0.5                     # warp 1: every lane positive
    x[64:96] = -np.abs(x[64:96]) - 0.5                    # warp 2: none
    scan = np.zeros(128, np.float32)
    votes = np.zeros((4, 4), np.uint32)
    m.launch("warp_votes", 2, 64, [scan, votes, x], order="reverse")
    np.testing.assert_allclose(scan, np.cumsum(x.reshape(4, 32), axis=1).ravel(), rtol=1e-5, atol=1e-5)
    for w in range(4):
        pos = x[w * 32:(w + 1) * 32] > 0
        ballot = int(sum(1 << i for i in range(32) if pos[i]))
        assert list(votes[w]) == [ballot, int(pos.any()), int(pos.all()), 30]


def test_dynamic_shared_memory(load):
    m = load("dynsmem")
    x = np.arange(3 * 200, dtype=np.float32)
    y = np.zeros_like(x)
    m.launch("reverse_block", 3, 200, [y, x], smem_bytes=200 * 4, order="shuffle", seed=1)
    np.testing.assert_array_equal(y, x.reshape(3, 200)[:, ::-1].ravel())
    with pytest.raises(EmuError, match="smem_bytes"):
        m.launch("reverse_block", 1, 8, [y, x], smem_bytes=1 << 20)


def test_divergent_barrier_is_a_deadlock(load):
    m = load("flags")
    out = np.zeros(32, np.int32)
    with pytest.raises(EmuError, match=r"kernel divergent_barrier: deadlock.*1 threads at __syncthreads, 31 in warp"):
        m.launch("divergent_barrier", 1, 32, [out])
