"""The emulator's L2 model (backend/emu/emu_l2.h, l2.py) on access patterns whose hits, misses and write-backs
are known exactly: streaming, reuse within a wave, reuse across waves, thrashing beyond the L2's size, and
write-backs. Arrays are aligned to the cache's set span (sets x line bytes), so a contiguous tensor fills each
set evenly (the model's set hash rotates aligned runs of lines) and every count below is exact."""
from __future__ import annotations

import numpy as np
import pytest

from tilec.backend.emu import EmuModule
from tilec.backend.emu.errors import EmuError
from tilec.backend.emu.l2 import L2Config

SECTOR, LINE, WAYS = 32, 128, 4
SIZE = 64 * 1024            # a 64 KiB L2: 512 lines in 128 sets of 4 ways
SPAN = SIZE // WAYS         # bytes of one aligned run of `sets` lines


def aligned(n: int, value: float = 0.0) -> np.ndarray:
    """``n`` float32s starting on a SPAN boundary."""
    raw = np.empty(n * 4 + SPAN, np.uint8)
    off = (-raw.ctypes.data) % SPAN
    out = raw[off:off + n * 4].view(np.float32)
    out[:] = value
    return out


def cache(wave_blocks: int, size: int = SIZE) -> L2Config:
    return L2Config(size, LINE, SECTOR, WAYS, wave_blocks)


@pytest.fixture(scope="module")
def mod(source, emu_cache) -> EmuModule:
    return EmuModule(source("l2_patterns"), cache_dir=emu_cache)


def test_streaming_misses_every_sector_once_and_writes_back_every_stored_one(mod):
    n = 4 * SIZE // 4   # 4x the L2: nothing could be reused anyway
    x, y = aligned(n, 2.0), aligned(n)
    st = mod.launch("l2_copy", (n // 256,), (256,), [x, y, n], l2_model=cache(wave_blocks=8))
    sectors = n * 4 // SECTOR
    assert (st.l2.misses, st.l2.hits, st.l2.writebacks) == (sectors, 0, sectors)
    assert st.l2.dram_bytes == 2 * n * 4 == st.global_load_bytes + st.global_store_bytes
    assert st.l2.waves == n // 256 // 8
    assert (y == 2.0).all()


def test_reuse_within_a_wave_fetches_each_sector_once(mod):
    n, blocks = 2048, 16   # v is 8 KiB; all 16 blocks in one wave
    v, out = aligned(n, 1.0), aligned(blocks * 8)
    st = mod.launch("l2_broadcast", (blocks,), (128,), [v, out, n], l2_model=cache(wave_blocks=blocks))
    assert st.global_load_bytes == blocks * n * 4   # every block loads all of v ...
    assert st.l2.sectors_loaded == n * 4 // SECTOR  # ... but the wave asks the L2 once per sector
    assert (st.l2.misses, st.l2.hits) == (n * 4 // SECTOR, 0)
    assert st.l2.writebacks == blocks   # one stored sector per block, written back at the end


def test_reuse_across_waves_hits_in_every_later_wave(mod):
    n, blocks = 2048, 16
    v, out = aligned(n, 1.0), aligned(blocks * 8)
    st = mod.launch("l2_broadcast", (blocks,), (128,), [v, out, n], l2_model=cache(wave_blocks=4))
    per_wave = n * 4 // SECTOR
    assert st.l2.waves == 4
    assert (st.l2.misses, st.l2.hits) == (per_wave, 3 * per_wave)
    assert st.l2.dram_bytes == (per_wave + blocks) * SECTOR


def test_a_working_set_beyond_the_l2_thrashes_lru(mod):
    n, blocks = 2 * SIZE // 4, 3   # each block reads 2x the L2, cyclically: LRU keeps nothing useful
    v, out = aligned(n, 1.0), aligned(blocks * 8)
    st = mod.launch("l2_broadcast", (blocks,), (256,), [v, out, n], l2_model=cache(wave_blocks=1))
    assert (st.l2.misses, st.l2.hits) == (blocks * n * 4 // SECTOR, 0)
    # Half the L2: the second and third waves hit every sector.
    half = SIZE // 2 // 4
    st = mod.launch("l2_broadcast", (blocks,), (256,), [v, out, half], l2_model=cache(wave_blocks=1))
    assert (st.l2.misses, st.l2.hits) == (half * 4 // SECTOR, 2 * half * 4 // SECTOR)


def test_dirty_sectors_are_written_back_on_eviction_and_at_the_end(mod):
    chunk, blocks = 1024, 32   # 128 KiB of stores: 2x the L2, so half are evicted while the launch runs
    y = aligned(chunk * blocks)
    st = mod.launch("l2_fill", (blocks,), (128,), [y, chunk], l2_model=cache(wave_blocks=2))
    sectors = chunk * blocks * 4 // SECTOR
    assert (st.l2.misses, st.l2.hits, st.l2.sectors_stored) == (0, 0, sectors)   # write-allocate, no fetch
    assert st.l2.writebacks == sectors
    assert st.l2.dram_bytes == chunk * blocks * 4
    # A store that stays in the L2 is written back once, at the end.
    st = mod.launch("l2_fill", (4,), (128,), [y, chunk], l2_model=cache(wave_blocks=1))
    assert st.l2.writebacks == 4 * chunk * 4 // SECTOR


@pytest.mark.parametrize("order", ["reverse", "shuffle"])
def test_counts_do_not_depend_on_the_emulators_schedule(mod, order):
    n, blocks = 2048, 16
    v, out = aligned(n, 1.0), aligned(blocks * 8)
    want = mod.launch("l2_broadcast", (blocks,), (128,), [v, out, n], l2_model=cache(4)).l2
    got = mod.launch("l2_broadcast", (blocks,), (128,), [v, out, n], l2_model=cache(4), order=order, seed=3).l2
    conc = mod.launch("l2_broadcast", (blocks,), (128,), [v, out, n], l2_model=cache(4),
                      concurrent_blocks=True).l2
    assert got == want == conc


def test_without_the_model_a_launch_reports_no_l2_counts_and_the_next_launch_is_not_armed(mod):
    n = 4096
    x, y = aligned(n, 1.0), aligned(n)
    assert mod.launch("l2_copy", (n // 256,), (256,), [x, y, n]).l2 is None
    with pytest.raises(EmuError, match="arguments"):   # fails in Python, before arming
        mod.launch("l2_copy", (1,), (256,), [x, y], l2_model=cache(1))
    assert mod.launch("l2_copy", (n // 256,), (256,), [x, y, n]).l2 is None


@pytest.mark.parametrize("bad", [L2Config(SIZE, LINE, 16, WAYS, 1), L2Config(SIZE, 100, SECTOR, WAYS, 1),
                                 L2Config(SIZE + 1, LINE, SECTOR, WAYS, 1), L2Config(SIZE, LINE, SECTOR, 0, 1),
                                 L2Config(SIZE, LINE, SECTOR, WAYS, 0)])
def test_an_unusable_organisation_is_refused(mod, bad):
    n = 256
    with pytest.raises(EmuError, match="L2 model"):
        mod.launch("l2_copy", (1,), (256,), [aligned(n), aligned(n), n], l2_model=bad)
