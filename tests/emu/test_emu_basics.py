"""Elementwise kernels, exact global byte counts, bounds checking, compile errors and the .so cache."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backend.emu import EmuError, EmuModule


def test_vadd_with_tail(load):
    m = load("vadd")
    assert m.kernels == ["vadd", "copy4"]
    n = 1000   # not a multiple of the block: the tail is predicated off
    rng = np.random.default_rng(0)
    a, b = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    y = np.zeros(n, np.float32)
    stats = m.launch("vadd", (n + 127) // 128, 128, [y, a, b, np.int32(n)])
    np.testing.assert_array_equal(y, a + b)
    assert (stats.blocks, stats.threads_per_block) == (8, 128)


def test_byte_counts_are_exact(load):
    m = load("vadd")
    n = 1000
    a = np.ones(n, np.float32)
    y = np.zeros(n, np.float32)
    stats = m.launch("vadd", 8, 128, [y, a, a, np.int32(n)])
    assert (stats.global_load_bytes, stats.global_store_bytes) == (2 * 4 * n, 4 * n)
    x = np.arange(1024, dtype=np.float32)
    y = np.zeros_like(x)
    stats = m.launch("copy4", 4, 64, [y, x, np.int32(1024)])
    np.testing.assert_array_equal(y, x)
    assert (stats.global_load_bytes, stats.global_store_bytes) == (4096, 4096)


def test_out_of_bounds_is_reported(load):
    m = load("vadd")
    a = np.ones(100, np.float32)
    y = np.zeros(100, np.float32)
    with pytest.raises(EmuError, match=r"kernel vadd: load of 4 bytes .* outside every array argument"):
        m.launch("vadd", 1, 128, [y, a, a, np.int32(128)])   # n larger than the arrays
    # Without the check the same launch is trusted (and here stays inside mapped memory of a bigger array).
    big = np.ones(256, np.float32)
    m.launch("vadd", 1, 128, [big, big, big, np.int32(128)], check_bounds=False)


def test_misaligned_vector_access_is_reported(load):
    m = load("vadd")
    x = np.zeros(65, np.float32)[1:]   # 4 bytes past a 16-byte boundary
    y = np.zeros(64, np.float32)
    if x.ctypes.data % 16 == 0:
        pytest.skip("numpy happened to align the slice")
    with pytest.raises(EmuError, match="misaligned float4 load"):
        m.launch("copy4", 1, 16, [y, x, np.int32(64)])


def test_bad_arguments_are_reported(load):
    m = load("vadd")
    y = np.zeros(8, np.float32)
    with pytest.raises(EmuError, match="takes 4 arguments"):
        m.launch("vadd", 1, 8, [y, y, y])
    with pytest.raises(EmuError, match="dtype float64"):
        m.launch("vadd", 1, 8, [y, y, np.zeros(8), 8])
    with pytest.raises(EmuError, match="read-only"):
        ro = np.zeros(8, np.float32)
        ro.flags.writeable = False
        m.launch("vadd", 1, 8, [ro, y, y, 8])
    with pytest.raises(EmuError, match="no kernel named"):
        m.launch("nope", 1, 1, [])
    with pytest.raises(EmuError, match="order must be"):
        m.launch("vadd", 1, 8, [y, y, y, 8], order="backwards")
    with pytest.raises(EmuError, match="launch refused: 2048 threads per block"):
        m.launch("vadd", 1, (32, 32, 2), [y, y, y, 8])


def test_compile_error_carries_compiler_output(emu_cache, source):
    bad = source("vadd") + '\nextern "C" __global__ void broken(float* Y) { Y[0] = undefined_name; }\n'
    with pytest.raises(EmuError, match=r"(?s)g\+\+ failed.*undefined_name"):
        EmuModule(bad, cache_dir=emu_cache)


def test_cache_is_reused(tmp_path, source):
    src = source("vadd")
    first = EmuModule(src, cache_dir=str(tmp_path))
    second = EmuModule(src, cache_dir=str(tmp_path))
    assert not first.from_cache and second.from_cache and first.path == second.path
    # The unit and its .so, the runtime library and the header copy; no temporaries left behind.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("-")[0] if "-" in n else n.rsplit(".")[-1] for n in names] == ["cu", "so", "inc", "rt"]
    assert first.path.name in names
    y = np.zeros(4, np.float32)
    second.launch("vadd", 1, 4, [y, np.ones(4, np.float32), np.ones(4, np.float32), 4])
    np.testing.assert_array_equal(y, 2.0)
