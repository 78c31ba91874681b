"""The cluster visibility of mbarrier inits under the emulator (issue #21; kernels_sm90a/cluster_init.cu): a
peer's multicast complete_tx or remote arrive reaches a barrier only after the initialising thread's
tl_mbarrier_init_fence and a later tl_cluster_sync. The emulator runs every block's init in one phase, so a
missing fence, an init after the cluster barrier, or a fence from another thread would give the right bytes in
every order; these tests check that each fails the launch, in every order, and that the right protocol is exact.
Likewise a block that exits before it observed a peer's remote arrive (no wait for the phase it completed, no
cluster barrier after it: a missing producer tail) fails at its exit, whatever the schedule."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import EmuModule
from tilec.backend.emu.errors import EmuError
from tilec.runtime import tensor_map as tm

FIXTURE = Path(__file__).with_name("kernels_sm90a") / "cluster_init.cu"
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "cuda_prelude.h"
SLACK = 1024   # the kernel aligns its dynamic shared memory up to 1024 bytes
ORDERS = ["normal", "reverse", "shuffle"]


@pytest.fixture(scope="module")
def ci(emu_cache) -> EmuModule:
    return EmuModule(PRELUDE.read_text() + "\n" + FIXTURE.read_text(), cache_dir=emu_cache)


def swizzled_rows(t: np.ndarray) -> np.ndarray:
    """128B-swizzled rows of 128 bytes (16-byte chunk c of row r at chunk c ^ (r % 8)), as TMA lands them."""
    rows = t.view(np.uint8).reshape(t.shape[0], 8, 16)
    out = np.empty_like(rows)
    for r in range(rows.shape[0]):
        out[r, np.arange(8) ^ (r % 8)] = rows[r]
    return out.reshape(-1)


def signal(ci, bug: int, tma: int, order: str):
    t = np.random.default_rng(3).standard_normal((16, 64)).astype(np.float16)
    spec = tm.tiled(t, (16, 64), swizzle=tm.Swizzle.B128)
    out = np.zeros((2, 2048), np.uint8)
    ci.launch("ci_signal", (2,), (64,), [out, t.view(np.uint8).reshape(-1), spec.emu_bytes(), bug, tma],
              smem_bytes=2048 + 8 + SLACK, order=order, seed=11)
    return out, swizzled_rows(t)


@pytest.mark.parametrize("tma", [0, 1])
@pytest.mark.parametrize("order", ORDERS)
def test_fenced_init_before_the_cluster_barrier_is_clean(ci, tma, order):
    out, want = signal(ci, 0, tma, order)
    if tma:   # the multicast box landed in both blocks
        np.testing.assert_array_equal(out[0], want)
        np.testing.assert_array_equal(out[1], want)
    else:
        assert (out == 1).all()


@pytest.mark.parametrize("bug,why", [
    (1, r"the initialising thread issued no tl_mbarrier_init_fence"),   # the init fence is missing
    (2, r"no tl_cluster_sync opened after the init"),                   # the init follows the cluster barrier
])
@pytest.mark.parametrize("tma", [0, 1])
@pytest.mark.parametrize("order", ORDERS)
def test_an_init_not_visible_to_the_cluster_fails(ci, bug, why, tma, order):
    with pytest.raises(EmuError, match=r"before its init is visible to the cluster: " + why):
        signal(ci, bug, tma, order)


def test_a_fence_from_another_thread_does_not_publish_the_init(ci):
    with pytest.raises(EmuError, match=r"issued no tl_mbarrier_init_fence"):
        signal(ci, 3, 0, "normal")


@pytest.mark.parametrize("order", ORDERS)
def test_exit_before_observing_a_remote_arrive_fails(ci, order):
    # whether the peer's arrive is still to come when a block exits (mid-phase) or already landed, unobserved
    # (the schedule decides which), the exit fails: the owner must wait for the phase the remote arrive
    # completed, or a cluster barrier must follow it
    with pytest.raises(EmuError, match=r"exits (while its mbarrier at \S+ is mid-phase|before any of its threads "
                                       r"waited for the phase that a cluster peer's remote arrive completed)"
                                       r".*peer that has exited"):
        signal(ci, 4, 0, order)


@pytest.mark.parametrize("order", ORDERS)
def test_a_cluster_barrier_after_the_remote_arrives_lets_blocks_exit(ci, order):
    out, _ = signal(ci, 5, 0, order)
    assert (out == 1).all()


def test_fixture_compiles_for_sm90a_without_spills(compiles_for_sm90a_without_spills):
    compiles_for_sm90a_without_spills(PRELUDE.read_text() + "\n" + FIXTURE.read_text())
