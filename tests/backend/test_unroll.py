"""The reduce-loop unroll rule (backend/lower/unroll.py) and the conv chain's P-point cap: NVIDIA targets keep
each caller's rule, a target with ``unrolled_body_regs`` (AMD) bounds accumulators + unrolled FMAs."""
from tilec.analysis.hardware import get_arch
from tilec.backend.lower.unroll import unroll_flags
from tilec.fusion.conv_chain.match import P_POINT_REGS, p_points_cap
from tilec.fusion.retile import MAX_ACC


def legacy(s):
    return -1 if s <= 16 else 0


def test_nvidia_targets_keep_the_callers_rule():
    for arch in ("h200", "a100", "v100", "h100"):
        spec = get_arch(arch)
        assert spec.unrolled_body_regs == 0
        assert unroll_flags(spec, [16, 3, 3], 16, 16, legacy) == [-1, -1, -1]
        assert unroll_flags(spec, [32, 3], 16, 16, legacy) == [0, -1]
        assert p_points_cap(spec) == MAX_ACC


def test_amd_budget_rolls_the_outer_loops_once_over():
    spec = get_arch("mi250x")
    assert spec.unrolled_body_regs == 128
    # conv_block's C body: 16 accumulators, steps c=16, k0=3, k1=3: 16 + 16*3 fits, 16 + 16*9 does not.
    assert unroll_flags(spec, [16, 3, 3], 16, 16, legacy) == [1, 1, -1]
    # A small body unrolls entirely; a loop over 16 steps never does.
    assert unroll_flags(spec, [2, 2], 4, 4, legacy) == [-1, -1]
    assert unroll_flags(spec, [3, 32], 1, 1, legacy) == [1, 1]
    # Once a loop is rolled, the loops around it stay rolled even if they would fit on their own.
    assert unroll_flags(spec, [2, 100], 1, 1, legacy) == [1, 1]
    assert p_points_cap(spec) == 128 // P_POINT_REGS < MAX_ACC


def test_device_loop_pointer_table_past_half_the_sgpr_file():
    from tilec.backend.lower.device_loop import args_table
    amd, nv = get_arch("mi250x"), get_arch("h200")
    # nasrnn_loop's device loop: 65 buffers, 2 SGPRs each, past half of gfx90a's 102 per wave.
    assert args_table(amd, 65, 1408, 1) and not args_table(amd, 20, 1408, 1)
    # Never where the table's LDS would cost a resident block, nor on NVIDIA (no per-wave scalar file).
    assert not args_table(amd, 65, amd.smem_per_sm_bytes // 2 - 100, 2)
    assert not args_table(nv, 65, 0, 1)
