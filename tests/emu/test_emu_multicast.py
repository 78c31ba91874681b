"""TMA multicast into dynamic shared memory across a thread-block cluster (issue #21; kernels_sm90a/multicast.cu):
a box lands in every block of ctaMask at the same offset and signals the barrier at the same offset in each,
its global bytes read once; a block outside the mask gets neither bytes nor a transaction; peer blocks'
extern __shared__ memory through tl_cluster_map (mapa); a pipeline that releases each stage cluster-wide
through remote mbarrier arrives is correct in every thread order, while a wrong expect_tx deadlocks (diagnosed)
and a stage released only locally is overwritten under its peer's reader. The fixtures compile with ptxas for
sm_90a with 0 spills."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import EmuModule
from tilec.backend.emu.errors import EmuError
from tilec.runtime import tensor_map as tm

FIXTURE = Path(__file__).with_name("kernels_sm90a") / "multicast.cu"
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "cuda_prelude.h"
SLACK = 1024   # the kernels align their dynamic shared memory up to 1024 bytes


@pytest.fixture(scope="module")
def mc(emu_cache) -> EmuModule:
    return EmuModule(PRELUDE.read_text() + "\n" + FIXTURE.read_text(), cache_dir=emu_cache)


def swizzled_rows(t: np.ndarray) -> np.ndarray:
    """The 128B-swizzled image of rows of 128 bytes starting at a 1024-byte boundary: 16-byte chunk c of row r
    at chunk c ^ (r % 8)."""
    rows = t.view(np.uint8).reshape(t.shape[0], 8, 16)
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        out[r, np.arange(8) ^ (r % 8)] = rows[r]
    return out.reshape(-1)


@pytest.mark.parametrize("mask", [0b1111, 0b0101, 0b0010])
def test_multicast_lands_in_every_masked_block_and_only_there(mc, mask):
    t = np.random.default_rng(mask).standard_normal((16, 64)).astype(np.float16)
    spec = tm.tiled(t, (16, 64), swizzle=tm.Swizzle.B128)
    want = swizzled_rows(t)
    out = np.zeros((4, want.size), np.uint8)
    flags = np.full(4, -1, np.int32)
    stats = mc.launch("mc_mask", (4,), (64,), [out, flags, t.view(np.uint8).reshape(-1), spec.emu_bytes(), want.size, mask, 0, 0, 0],
                      smem_bytes=4096 + 8 + SLACK)
    for r in range(4):
        if (mask >> r) & 1:
            np.testing.assert_array_equal(out[r], want)
            assert flags[r] == 1   # its barrier's phase completed: complete_tx reached it
        else:
            assert (out[r] == 0x10 + r).all()   # nothing landed outside the mask
            assert flags[r] == 0               # and no transaction reached its barrier
    # read from global memory once for the whole cluster (the blocks' byte stores are the rest)
    assert stats.global_load_bytes == t.nbytes


def test_multicast_with_a_wrong_expect_tx_is_a_reported_deadlock(mc):
    t = np.zeros((16, 64), np.float16)
    spec = tm.tiled(t, (16, 64), swizzle=tm.Swizzle.B128)
    with pytest.raises(EmuError, match=r"deadlock.*in mbarrier waits.*tx-count 16 \(expect_tx bytes"):
        mc.launch("mc_mask", (4,), (64,), [np.zeros((4, 2048), np.uint8), np.zeros(4, np.int32),
                                           t.view(np.uint8).reshape(-1), spec.emu_bytes(),
                                           2048, 0b0011, 16, 0, 0], smem_bytes=4096 + 8 + SLACK)


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_peer_dynamic_shared_memory_through_cluster_map(mc, order):
    out = np.zeros((4, 64), np.int32)
    mc.launch("mc_peer_words", (4,), (32,), [out], smem_bytes=256 + SLACK, order=order, seed=5)
    lane = np.arange(32)
    for b in range(4):
        rank, peer = b % 2, (b % 2) ^ 1
        np.testing.assert_array_equal(out[b, :32], 100 * peer + lane)           # read the peer's words
        np.testing.assert_array_equal(out[b, 32:], 1000 + 100 * peer + lane)    # the peer's remote stores
        assert rank in (0, 1)


def test_cluster_map_outside_the_launch_shared_memory_fails(mc):
    # no dynamic shared memory in the launch: the extern __shared__ array has no bytes a peer could map
    with pytest.raises(EmuError, match="not in this block's shared memory"):
        mc.launch("mc_peer_words", (2,), (32,), [np.zeros((2, 64), np.int32)], smem_bytes=0)


def pipeline(mc, bug: int, order: str, rounds: int = 6, seed: int = 0):
    t = np.random.default_rng(rounds).standard_normal((16 * rounds, 64)).astype(np.float16)
    spec = tm.tiled(t, (8, 64), swizzle=tm.Swizzle.B128)   # each block loads 8 of a round's 16 rows
    out = np.zeros((2, rounds, 2048), np.uint8)
    stats = mc.launch("mc_pipeline", (2,), (64,), [out, t.view(np.uint8).reshape(-1), spec.emu_bytes(), rounds, bug],
                      smem_bytes=2 * 2048 + 32 + SLACK, order=order, seed=seed)
    want = np.stack([swizzled_rows(t[16 * i:16 * i + 16]) for i in range(rounds)])
    return out, want, stats, t


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_cluster_wide_release_pipeline_is_exact_in_every_order(mc, order):
    out, want, stats, t = pipeline(mc, 0, order, seed=7)
    np.testing.assert_array_equal(out[0], want)
    np.testing.assert_array_equal(out[1], want)
    assert stats.global_load_bytes == t.nbytes   # every round's box read once for both blocks


def test_a_stage_released_only_locally_is_overwritten(mc):
    # The schedule is deterministic per order: in reverse order block 1 runs first, so its producer, released
    # by its own consumer alone, refills a stage block 0's consumer has not copied yet (poison, then the next
    # round's rows). In normal order the first block's consumer stays ahead and the window never opens.
    out, want, _, _ = pipeline(mc, 1, "reverse")
    assert not np.array_equal(out[0], want)
    assert (out[0] == 0xFF).any()   # the refill's poison reached block 0's reader before its bytes landed
    ok, *_ = pipeline(mc, 0, "reverse")   # the same schedule with the cluster-wide release is exact
    np.testing.assert_array_equal(ok[0], want)


def test_fixtures_compile_for_sm90a_without_spills(compiles_for_sm90a_without_spills):
    compiles_for_sm90a_without_spills(PRELUDE.read_text() + "\n" + FIXTURE.read_text())
