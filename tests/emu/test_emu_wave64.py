"""64-lane wavefronts in the emulator (issue #23): the warp width is a parameter of the build (the target's
``spec.warp_size``), HIP's maskless warp operations run over the whole wavefront, and a kernel that silently
assumes 32 lanes gives a wrong result or a reported error there, while a width-generic one is right on both."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import EmuError, EmuModule

KERNELS = Path(__file__).with_name("kernels")
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "cuda_prelude.h"
ORDERS = ("normal", "reverse", "shuffle")


def hip_source(name: str) -> str:
    """kernels/<name>.hip behind the prelude (the emulator's contract: TL_LD/TL_ST count the bytes)."""
    return PRELUDE.read_text() + "\n" + (KERNELS / f"{name}.hip").read_text()


@pytest.fixture(scope="module")
def wave(emu_cache):
    """``wave(warp)`` → kernels/wave64.hip compiled for warps of ``warp`` lanes (once per width)."""
    modules: dict = {}

    def get(warp: int) -> EmuModule:
        if warp not in modules:
            modules[warp] = EmuModule(hip_source("wave64"), cache_dir=emu_cache, warp_size=warp)
        return modules[warp]

    return get


def _x(n: int, seed: int = 0) -> np.ndarray:
    # Small integers: float sums are exact in any order, so a wrong lane set is the only way to differ.
    return np.random.default_rng(seed).integers(-8, 9, n).astype(np.float32)


@pytest.mark.parametrize("warp", [32, 64])
@pytest.mark.parametrize("order", ORDERS)
def test_width_generic_wave_sum_is_right_on_both_widths(wave, warp, order):
    x = _x(512)
    out = np.zeros(512 // warp, np.float32)
    st = wave(warp).launch("wave_sum", 2, 256, [out, x], order=order, seed=7)
    np.testing.assert_array_equal(out, x.reshape(-1, warp).sum(axis=1))
    # Byte counting does not depend on the width: every thread loads 4 B, each wave's lane 0 stores 4 B.
    assert (st.global_load_bytes, st.global_store_bytes) == (512 * 4, 512 // warp * 4)


@pytest.mark.parametrize("order", ORDERS)
def test_reduction_that_stops_at_lane_32_is_wrong_on_64_lanes(wave, order):
    x = _x(512, seed=1)
    x[32::64] += 100.0   # lanes 32..63 carry weight, so leaving them out cannot go unnoticed
    out = np.zeros(8, np.float32)
    wave(64).launch("wave_sum_assumes_32", 2, 256, [out, x], order=order, seed=3)
    right = x.reshape(8, 64).sum(axis=1)
    assert not np.array_equal(out, right)
    np.testing.assert_array_equal(out, x.reshape(8, 64)[:, :32].sum(axis=1))   # exactly the lower half
    # The correct 64-lane kernel passes on the same data.
    good = np.zeros(8, np.float32)
    wave(64).launch("wave_sum", 2, 256, [good, x], order=order, seed=3)
    np.testing.assert_array_equal(good, right)


def test_reduction_that_stops_at_lane_32_is_right_on_32_lanes(wave):
    x = _x(512, seed=2)
    out = np.zeros(16, np.float32)
    wave(32).launch("wave_sum_assumes_32", 2, 256, [out, x])
    np.testing.assert_array_equal(out, x.reshape(16, 32).sum(axis=1))


def test_cuda_kernel_with_32_bit_masks_is_an_error_on_64_lanes(emu_cache, source):
    """tests/emu/kernels/reduce.cu (CUDA: 0xffffffff masks, lane = t & 31) is right on 32 lanes
    (test_emu_sync); on 64 lanes its masks leave lanes 32..63 out, which the emulator reports."""
    mod = EmuModule(source("reduce"), cache_dir=emu_cache, warp_size=64)
    x = _x(4 * 300, seed=3)
    s, m = np.zeros(4, np.float32), np.zeros(4, np.float32)
    with pytest.raises(EmuError, match=r"lane 32 of a 64-lane warp.*mask 0xffffffff.*32-lane warps"):
        mod.launch("block_reduce", 4, 128, [s, m, x, 300])


@pytest.mark.parametrize("warp", [32, 64])
@pytest.mark.parametrize("order", ORDERS)
def test_block_sum_over_wavefronts(wave, warp, order):
    x = _x(3 * 1000, seed=4)
    out = np.zeros(3, np.float32)
    wave(warp).launch("block_sum", 3, 512, [out, x, 1000], order=order, seed=11)
    np.testing.assert_array_equal(out, x.reshape(3, 1000).sum(axis=1))


@pytest.mark.parametrize("order", ORDERS)
def test_scan_ballot_votes_on_64_lanes(wave, order):
    x = _x(256, seed=5)
    x[64:128] = np.abs(x[64:128]) + 1.0   # wavefront 1: all positive
    scan = np.zeros(256, np.float32)
    votes = np.zeros(4 * 6, np.uint32)
    perm = np.zeros(256, np.int32)
    wave(64).launch("wave_votes", 2, 128, [scan, votes, perm, x], order=order, seed=5)
    np.testing.assert_array_equal(scan, np.cumsum(x.reshape(4, 64), axis=1).ravel())
    for w in range(4):
        pos = x[w * 64:(w + 1) * 64] > 0
        ballot = sum(1 << i for i in range(64) if pos[i])
        assert list(votes[w * 6:(w + 1) * 6]) == [ballot & 0xffffffff, ballot >> 32, int(pos.any()),
                                                  int(pos.all()), 370, 100]
    assert votes[1 * 6 + 3] == 1   # the all-positive wavefront
    np.testing.assert_array_equal(perm, np.tile((np.arange(64) + 1) % 64, 4))


def test_ballot_on_32_lanes_has_no_upper_word(wave):
    x = np.ones(128, np.float32)
    scan, votes, perm = np.zeros(128, np.float32), np.zeros(4 * 6, np.uint32), np.zeros(128, np.int32)
    wave(32).launch("wave_votes", 1, 128, [scan, votes, perm, x])
    assert list(votes[:2]) == [0xffffffff, 0]
    np.testing.assert_array_equal(scan, np.tile(np.arange(1, 33), 4).astype(np.float32))


def test_hip_types_and_atomics(wave):
    x = _x(256, seed=6) / 4
    total, rt = np.zeros(2, np.float32), np.zeros(768, np.float32)
    wave(64).launch("hip_types", 4, 64, [total, rt, x])
    assert total[0] == pytest.approx(float(x.sum())) and total[1] == 256
    np.testing.assert_array_equal(rt[0:512:2], x)   # quarters of small integers are exact in bf16 and half
    np.testing.assert_array_equal(rt[1:512:2], x)
    np.testing.assert_array_equal(rt[512:], 2 * x)


def test_mma_is_refused_on_64_lanes(emu_cache, source):
    mod = EmuModule(source("mma"), cache_dir=emu_cache, warp_size=64)
    name = mod.kernels[0]
    args = [np.zeros(4096, np.float32) if p.pointer else 0 for p in mod._params[name]]
    with pytest.raises(EmuError, match="32-lane warps"):
        mod.launch(name, 1, 32, args)


def test_warp_size_must_be_32_or_64(emu_cache):
    with pytest.raises(EmuError, match="32 or 64 lanes, not 16"):
        EmuModule(hip_source("wave64"), cache_dir=emu_cache, warp_size=16)


def test_sources_behind_the_hip_prelude_batch():
    """A .hip source's include-guarded prelude (ROCm includes outside the emulator) does not keep it from
    sharing a translation unit, as the CUDA prelude does not; a directive outside the guard still does."""
    from tilec.backend.emu.batch import batchable
    prelude = ("#ifndef TILEC_HIP_PRELUDE_H\n#define TILEC_HIP_PRELUDE_H\n#ifndef TILEC_EMU\n"
               "#include <hip/hip_runtime.h>\n#endif  // TILEC_EMU\n#endif  // TILEC_HIP_PRELUDE_H\n")
    kernel = 'extern "C" __global__ void k(float* y) { TL_ST(y, 0, 1.0f); }\n'
    assert batchable(prelude + kernel)
    assert not batchable(prelude + "#define N 4\n" + kernel)
    assert not batchable(prelude.replace("#endif  // TILEC_HIP_PRELUDE_H", "#endif  // TILEC_CUDA_PRELUDE_H") + kernel)


@pytest.mark.parametrize("order", ORDERS)
def test_width_32_shuffles_in_half_a_wavefront(wave, order):
    x = _x(64, seed=8)
    out = np.zeros(1, np.float32)
    wave(64).launch("half_wave", 1, 64, [out, x, 0], order=order, seed=2)
    assert out[0] == x[:32].sum()
    with pytest.raises(EmuError, match="deadlock"):
        wave(64).launch("half_wave", 1, 64, [out, x, 1], order=order, seed=2)
