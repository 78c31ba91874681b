"""The analyses count in the target's warps (issue #23): on mi250x a warp is a 64-lane wavefront, so Rammer's
residency and register budget (and with them Grinder's grids and the emulator's L2 waves) round blocks to
whole wavefronts and share a SIMD's registers among 64 lanes, where NVIDIA's round to 32."""
from __future__ import annotations

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.cost import resident_limits
from tilec.analysis.rammer.regs import reg_budget


def test_residency_counts_whole_wavefronts():
    mi, h = get_arch("mi250x"), get_arch("h200")
    assert (mi.warp_size, h.warp_size) == (64, 32)
    # 96 threads occupy two wavefronts (128 lanes) on a CU, three warps (96 lanes) on an SM.
    assert resident_limits(mi, 96, 0)["threads"] == mi.max_threads_per_sm // 128
    assert resident_limits(h, 96, 0)["threads"] == h.max_threads_per_sm // 96


def test_register_budget_counts_wavefronts_per_simd():
    mi = get_arch("mi250x")
    # 8 blocks of 96 threads: 16 wavefronts (two per block), 4 per SIMD, each lane gets the SIMD's file / 256.
    # Counted in 32-lane warps it would be 24 warps, 6 per SIMD: 32768 / 192 -> 168 registers.
    assert reg_budget(mi, 96, 8) == mi.regs_per_sm // mi.sm_partitions // (4 * 64) == 128
