"""Rammer's and Grinder's residency on AMD counts the scalar register file (issue #23, docs/amd.md "Register
files"): hipcc inlines every member of a persistent kernel and LLVM hoists their uniform constants out of the
dispatch loop, so such a kernel is given no more waves per SIMD than ``register_files.sgprs_per_simd //
rprogram_sgprs`` allow (7 on mi250x/mi300x; LLVM allows 8 only to kernels of at most 100 SGPRs).
nasnet-small's rammer0 (1024 threads) got 2 blocks per CU, 8 waves per SIMD, and spilled 2 SGPRs; now 1.
NVIDIA targets have no such file: their bound is unchanged."""
from __future__ import annotations

import math

import pytest

from tilec.analysis.grinder import choose_grid
from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.cost import REGS_ASSUMED, Member, program_blocks, resident_blocks
from tilec.analysis.rammer.regs import sgpr_blocks
from tilec.analysis.rammer.schedule import place
from tilec.backend.hip import language_for


def _member(node: int, threads: int, blocks: int = 4096) -> Member:
    """A memory-bound kernel with many blocks: the estimate prefers as many blocks per CU as allowed."""
    return Member(node, f"k{node}", blocks, threads, 0, False, 4 * blocks * threads, 64 * blocks * threads)


def _waves_per_simd(spec, threads: int, blocks: int) -> int:
    return math.ceil(blocks * math.ceil(threads / spec.warp_size) / spec.sm_partitions)


@pytest.mark.parametrize("arch", ["mi250x", "mi300x"])
@pytest.mark.parametrize("threads", [64, 96, 256, 320, 512, 1024])
def test_amd_program_blocks_leave_each_wave_the_rprograms_sgprs(arch, threads):
    spec = get_arch(arch)
    files = spec.register_files
    cap = files["sgprs_per_simd"] // files["rprogram_sgprs"]
    n = program_blocks(spec, threads, 0, REGS_ASSUMED)
    assert n == min(resident_blocks(spec, threads, 0), sgpr_blocks(spec, threads))
    assert 1 <= n and _waves_per_simd(spec, threads, n) <= cap < _waves_per_simd(spec, threads, n + 1) \
        or n == resident_blocks(spec, threads, 0)
    # The rendered __launch_bounds__ asks hipcc for no more waves per SIMD than that.
    bounds = language_for(spec).bounds(threads, n)
    assert int(bounds.split("(")[1].split(")")[0].split(",")[1]) <= cap


def test_nasnets_1024_thread_rprogram_gets_one_block_per_cu_on_amd():
    mi, h = get_arch("mi250x"), get_arch("h200")
    assert mi.register_files["sgprs_per_simd"] // mi.register_files["rprogram_sgprs"] == 7
    assert resident_blocks(mi, 1024, 0) == 2 and program_blocks(mi, 1024, 0, REGS_ASSUMED) == 1
    assert sgpr_blocks(h, 1024) is None
    # The placement takes the bound: 512-thread members fit 4 blocks per CU by threads and VGPRs, 3 by SGPRs.
    members = [_member(i, 512) for i in range(3)]
    assert resident_blocks(mi, 512, 0) == 4 and place(members, {}, mi, detail=False).blocks_per_sm == 3
    assert place(members, {}, h, detail=False).blocks_per_sm == resident_blocks(h, 512, 0) == 2


@pytest.mark.parametrize("threads", [256, 1024])
def test_nvidia_program_blocks_are_the_resident_bound(threads):
    for arch in ("h200", "a100"):
        spec = get_arch(arch)
        assert program_blocks(spec, threads, 0, REGS_ASSUMED) == resident_blocks(spec, threads, 0)


def test_grinder_grids_on_amd_keep_the_cap():
    spec = get_arch("mi250x")
    choice = choose_grid([_member(0, 256), _member(1, 256)], spec, host_reads=False)
    tried = {g // spec.num_sms for g, _ in choice.candidates}
    assert max(tried) == sgpr_blocks(spec, 256) == 7 < resident_blocks(spec, 256, 0)
    assert _waves_per_simd(spec, 256, choice.blocks_per_sm) <= 7
