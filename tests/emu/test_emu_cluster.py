"""Thread-block clusters (``__cluster_dims__(X, 1, 1)``, sm_90): the cluster barrier, block ranks, distributed
shared memory through ``tl_cluster_map``, the bugs the emulator catches, and the same source on nvcc."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tilec.backend.emu import EmuError, EmuModule
from tilec.backend.emu.signature import kernel_clusters

ORDERS = [("normal", 0), ("reverse", 0), ("shuffle", 5)]


def _neighbour_reference(x, grid):
    gx, gy = grid
    y, z = np.empty_like(x), np.empty_like(x)
    for b in range(gx * gy):
        r, t = b % 4, np.arange(64)
        peer = b - r + (r + 1) % 4
        y[b * 64 + t] = x[peer * 64 + 63 - t] + 1000.0 * ((r + 1) % 4)
        z[b * 64 + t] = b * 100 + 63 - t
    return y, z


@pytest.mark.parametrize("order,seed", ORDERS)
@pytest.mark.parametrize("grid", [(8, 1), (4, 3)])
@pytest.mark.parametrize("concurrent", [False, True])
def test_blocks_read_their_neighbours_shared_memory(load, order, seed, grid, concurrent):
    m = load("cluster")
    n = grid[0] * grid[1] * 64
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    y, z = np.zeros_like(x), np.zeros_like(x)
    st = m.launch("cluster_neighbour", grid, 64, [y, z, x], order=order, seed=seed, concurrent_blocks=concurrent)
    ry, rz = _neighbour_reference(x, grid)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(z, rz)   # plain __shared__ arrays stay per block within a cluster
    # Only TL_LD/TL_ST count: the reads through tl_cluster_map are shared memory.
    assert (st.global_load_bytes, st.global_store_bytes) == (n * 4, 2 * n * 4)


@pytest.mark.parametrize("order,seed", ORDERS)
def test_multicast_loads_the_tile_once_per_cluster(load, order, seed):
    m = load("cluster")
    nblocks = 12
    rng = np.random.default_rng(1)
    w = rng.standard_normal(nblocks // 4 * 256).astype(np.float32)
    x = rng.standard_normal(nblocks * 64).astype(np.float32)
    y = np.zeros_like(x)
    st = m.launch("cluster_multicast", nblocks, 64, [y, w, x], order=order, seed=seed)
    coef = (np.arange(256)[None, :] + np.arange(64)[:, None]) % 7                 # [t, k]
    ref = (w.reshape(-1, 256) @ coef.T.astype(np.float32))                       # [cluster, t]
    ref = np.repeat(ref, 4, axis=0).reshape(-1) * x
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)
    # The tile once per cluster (not once per block), plus each block's 64 floats of X.
    assert st.global_load_bytes == (nblocks // 4) * 256 * 4 + nblocks * 64 * 4
    assert st.global_store_bytes == nblocks * 64 * 4


def test_missing_cluster_sync_is_an_error(emu_cache, source):
    # Reaching a peer's shared memory before any tl_cluster_sync fails in every order (the peer may not have
    # started on a GPU), instead of reading poison only in the orders that run the reader first.
    m = EmuModule(source("cluster"), cache_dir=emu_cache)
    m.workers = 1
    x = np.arange(8 * 64, dtype=np.float32)
    for order, seed in ORDERS:
        with pytest.raises(EmuError, match=r"cluster_racy: reaches a cluster peer's shared memory .* before any "
                                           r"tl_cluster_sync"):
            m.launch("cluster_racy", 8, 64, [np.zeros_like(x), x], order=order, seed=seed)


def test_shared_arrays_do_not_leak_between_blocks_or_clusters(emu_cache, source):
    m = EmuModule(source("cluster"), cache_dir=emu_cache)
    m.workers = 1
    y = np.zeros(6 * 64, np.float32)
    m.launch("cluster_tls_poison", 6, 64, [y])
    assert (y[:64] == 1).all() and np.isnan(y[64:]).all()


def test_grid_must_be_a_multiple_of_the_cluster(load):
    m = load("cluster")
    x = np.zeros(6 * 64, np.float32)
    with pytest.raises(EmuError, match=r"kernel cluster_neighbour: grid.x = 6 is not a multiple of the cluster size 4"):
        m.launch("cluster_neighbour", 6, 64, [x.copy(), x.copy(), x])


@pytest.mark.parametrize("which,message", [
    (0, r"tl_cluster_map of 0x[0-9a-f]+, which is not in this block's shared memory"),
    (2, r"tl_cluster_map to rank 2, but the cluster has 2 blocks"),
])
def test_bad_cluster_maps_fail_the_launch(load, which, message):
    m = load("cluster")
    y = np.zeros(4 * 32, np.float32)
    with pytest.raises(EmuError, match=r"kernel cluster_bad_map: " + message):
        m.launch("cluster_bad_map", 4, 32, [y, which])


@pytest.mark.parametrize("concurrent", [False, True])
def test_plain_shared_arrays_map_to_the_peer(load, concurrent):
    # mapa takes any shared address: a plain __shared__ array of rank 1 (its swapped-out copy in the emulator)
    m = load("cluster")
    y = np.zeros(4 * 32, np.float32)
    m.launch("cluster_bad_map", 4, 32, [y, 1], concurrent_blocks=concurrent)
    assert (y == 2.0).all()


@pytest.mark.parametrize("concurrent", [False, True])
def test_cluster_sync_against_a_block_barrier_is_a_deadlock(load, concurrent):
    m = load("cluster")
    y = np.zeros(4 * 64, np.float32)   # one cluster, so both modes report the same counts
    with pytest.raises(EmuError, match=r"kernel cluster_deadlock: deadlock.*32 threads at __syncthreads, 0 in warp "
                                       r"operations, 224 at tl_cluster_sync"):
        m.launch("cluster_deadlock", 4, 64, [y], concurrent_blocks=concurrent)


def test_cluster_dims_are_parsed_and_checked():
    src = 'extern "C" __global__ void __launch_bounds__(128, 1) __cluster_dims__(4, 1, 1) k5(float* A) {}\n' \
          'extern "C" __global__ void __cluster_dims__(2) k6(float* A) {}\n' \
          'extern "C" __global__ void k7(float* A) {}\n'
    assert kernel_clusters(src) == {"k5": 4, "k6": 2, "k7": 1}
    for dims in ("4, 2, 1", "16, 1, 1", "0, 1, 1", "N, 1, 1"):
        with pytest.raises(EmuError, match=r"kernel k: .*__cluster_dims__"):
            kernel_clusters(f'extern "C" __global__ void __cluster_dims__({dims}) k(float* A) {{}}')


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_cluster_kernels_compile_for_sm90(tmp_path, source):
    unit = tmp_path / "cluster.cu"
    unit.write_text(source("cluster"))
    ptx = tmp_path / "cluster.ptx"
    proc = subprocess.run(["nvcc", "-arch=sm_90", "-ptx", "-o", str(ptx), str(unit)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = ptx.read_text()
    for needle in (".reqnctapercluster 4, 1, 1", "barrier.cluster.arrive", "barrier.cluster.wait", "mapa.u64",
                   "%cluster_ctarank"):
        assert needle in text, needle
