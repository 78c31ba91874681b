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


def test_amd_tiled_kernel_keeps_its_stage_loop_rolled():
    """mobilenet_v2-small's classifier kernel (8 threads, 16 k stages): AMDGPU's LLVM unrolled the stage loop by
    itself and took 256 VGPRs, which spilled inside the rProgram; on AMD the stage loop says ``#pragma unroll 1``
    (NVIDIA's text is unchanged)."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lower_harness import compute_module, kernels, lower

    from tilec.analysis.hardware import set_target
    from tilec.backend.emit import emit_kernel
    from tilec.ir import TensorType as T
    rtile = {"block": {"m": 1, "n": 8}, "thread": {"m": 1, "n": 1}, "step": {"k": 8}}
    texts = {}
    for arch in ("mi250x", "h200"):
        mod = compute_module("C[m, n] += A[m, k] * B[n, k]", [T((1, 128), "f32"), T((10, 128), "f32")],
                             T((1, 10), "f32"), rtile=rtile, estimate={"arch": arch})
        set_target(mod, arch)
        (k,) = kernels(lower(mod))
        assert k.attributes["kind"] == "tiled"
        texts[arch] = emit_kernel(k).split(f"{k.sym_name}(", 1)[1]
    stage = "for (int k_o_k = 0; k_o_k < 128; k_o_k += 8)"
    assert f"#pragma unroll 1\n  {stage}" in texts["mi250x"]
    assert stage in texts["h200"] and f"#pragma unroll 1\n  {stage}" not in texts["h200"]
