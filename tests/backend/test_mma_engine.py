"""The sm_80 tensor-core engine (lower/mma_engine.py): f16/bf16 products of several shapes and operand
layouts run under the emulator (whose mma.sync, ldmatrix and cp.async follow the PTX ISA) and match the numpy
interpreter within half-precision tolerance, with global bytes measured == modelled; its shape follows the
target's spec; ptxas takes it for sm_80 and sm_90 without spills; what it cannot take falls back to wmma."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lower_harness import (compute_module, disassembler_found, kernels, lower, random_inputs,  # noqa: E402
                           reference, run_lowered)

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.launch_resources import shared_opt_in  # noqa: E402
from tilec.backend.lower import mma_engine  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402
from tilec.passes import get_pass  # noqa: E402

MATMUL = "C[m, n] += A[m, k] * B[k, n]"
SM80 = {"arch": "a100"}   # Roller's estimate names the GPU a product is tiled for (tiled_mma.tiled_for)
TOL = {"f16": 2e-2, "bf16": 6e-2}   # the output's rounding (f16: 2^-11, bf16: 2^-8 relative) over |C| ~ sqrt(K)


def run(expr, ins, out, rtile, tol, orders=("normal",)):
    # Tiled for sm_80: on the default sm_90 target (h200) the wgmma engine takes these (test_wgmma_engine.py).
    ref = compute_module(expr, ins, out, rtile=rtile, estimate=SM80)
    inputs = random_inputs(ref)
    want = reference(ref, inputs)
    m = lower(compute_module(expr, ins, out, rtile=rtile, estimate=SM80))
    (k,) = kernels(m)
    assert k.attributes["config"].get("engine") == "mma_sync", k.attributes["config"]
    for order in orders:
        got, stats = run_lowered(m, inputs, order)
        scale = np.abs(want[0].astype(np.float64)).max()
        np.testing.assert_allclose(got[0].astype(np.float64), want[0].astype(np.float64), rtol=tol,
                                   atol=tol * scale)
        st = stats[k.sym_name]
        assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]
    return k


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("mkn,block", [
    ((64, 64, 64), (32, 32)),      # whole tiles, 2 k tiles
    ((72, 48, 40), (64, 32)),      # m, n past the tile; K = 40: the second k tile is 8 deep (zero-filled)
    ((40, 24, 200), (16, 16)),     # one warp; 7 k tiles through the pipeline
])
def test_engine_matches_numpy(dtype, mkn, block):
    m_, k_, n_ = mkn[0], mkn[2], mkn[1]
    rtile = {"block": {"m": block[0], "n": block[1]}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    run(MATMUL, [T((m_, k_), dtype), T((k_, n_), dtype)], T((m_, n_), dtype), rtile, TOL[dtype],
        orders=("normal", "reverse"))


def test_engine_with_dynamic_shared_memory():
    """A 128x128 block tile with 64-deep k tiles: 4 stages of 32 KB, past the 48 KB a kernel may declare
    statically, so the stages live in dynamic shared memory (the launch's opt-in); K = 72 is one whole and
    one 8-deep k tile."""
    rtile = {"block": {"m": 128, "n": 128}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    k = run(MATMUL, [T((136, 72), "f16"), T((72, 128), "f16")], T((136, 128), "f16"), rtile, TOL["f16"])
    a = k.attributes
    assert a["config"]["stages"] == 4 and a["smem"] == 4 * 256 * 64 * 2 and a["smem_static"] == 0


@pytest.mark.parametrize("expr,a_shape,b_shape", [
    ("C[m, n] += A[k, m] * B[k, n]", (56, 48), (56, 40)),    # A stored k-major: ldmatrix.trans for A
    ("C[m, n] += A[m, k] * B[n, k]", (48, 56), (40, 56)),    # B stored n-major: ldmatrix (no .trans) for B
    ("C[m, n] += A[k, m] * B[n, k]", (56, 48), (40, 56)),
    ("C[m, n] += A[m, k] * B[n, k]", (48, 56), (37, 56)),    # odd N: element-wise epilogue stores
])
def test_engine_operand_layouts(expr, a_shape, b_shape):
    rtile = {"block": {"m": 32, "n": 32}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    run(expr, [T(a_shape, "f16"), T(b_shape, "f16")], T((48, b_shape[1] if "B[k" in expr else b_shape[0]), "f16"),
        rtile, TOL["f16"])



def test_engine_batched_bf16():
    rtile = {"block": {"b": 1, "m": 32, "n": 16}, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}
    run("C[b, m, n] += A[b, m, k] * B[b, n, k]", [T((3, 40, 48), "bf16"), T((3, 24, 48), "bf16")],
        T((3, 40, 24), "bf16"), rtile, TOL["bf16"])


@pytest.mark.parametrize("arch", ["a100"])   # sm_90 (h200) takes the wgmma engine: test_wgmma_engine.py
def test_engine_shape_from_the_spec(arch):
    """A 256x128 block tile: 8 warps of 64x64, stages as many as the opt-in shared memory holds (2..4), all of
    it dynamic, with the opt-in when past the default 48 KB."""
    spec = get_arch(arch)
    mod = compute_module(MATMUL, [T((4096, 4096), "f16"), T((4096, 4096), "f16")], T((4096, 4096), "f16"),
                         rtile={"block": {"m": 256, "n": 128}, "thread": {"m": 8, "n": 16}, "step": {"k": 32}},
                         estimate={"arch": arch})
    (k,) = kernels(lower(mod))
    a = k.attributes
    cfg = a["config"]
    assert cfg["warps"] == [4, 2] and a["block"][0] == 256
    assert cfg["step"]["k"] == 64      # 128-byte rows
    stage = (256 + 128) * 64 * 2
    assert cfg["stages"] == min(4, spec.smem_per_block_optin_bytes // stage) and a["smem"] == cfg["stages"] * stage
    assert shared_opt_in(0, a["smem"], spec) == a["smem"] > spec.smem_per_block_bytes


def test_plan_refuses_what_registers_cannot_hold():
    spec = get_arch("h200")
    assert mma_engine.plan(256, 256, 4096, 8, "f16", spec) is None     # 128x64 per warp: 256 accumulators
    assert mma_engine.plan(256, 256, 4096, 16, "f16", spec) is not None
    assert mma_engine.plan(16, 16, 8, 1, "f16", spec).bk == 16
    assert mma_engine.plan(16, 16, 40, 1, "f16", spec).bk == 32
    assert mma_engine.plan(256, 128, 4096, 8, "f16", spec).stages == 4   # h200's opt-in holds 4 stages of 48 KB


@pytest.mark.parametrize("arch,engine", [("v100", None), ("a100", "mma_sync")])
def test_wmma_remains_for_v100_and_unchunked_operands(arch, engine):
    rtile = {"block": {"m": 32, "n": 32}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    mod = compute_module(MATMUL, [T((64, 64), "f16"), T((64, 64), "f16")], T((64, 64), "f16"), rtile=rtile,
                         estimate={"arch": arch})
    (k,) = kernels(lower(mod))
    assert k.attributes["kind"] == "tiled_mma" and k.attributes["config"].get("engine") == engine
    mod = compute_module(MATMUL, [T((64, 64), "f16"), T((64, 50), "f16")], T((64, 50), "f16"), rtile=rtile,
                         estimate={"arch": "a100"})   # B's rows are 100 bytes: not whole 16-byte chunks
    (k,) = kernels(lower(mod))
    assert k.attributes["kind"] == "tiled_mma" and "engine" not in k.attributes["config"]


@pytest.mark.parametrize("sm", ["sm_80", "sm_90"])
def test_engine_compiles_unspilled(sm, tmp_path):
    import shutil
    import subprocess
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    from tilec.backend.ptxas import parse_ptxas
    mod = compute_module(MATMUL, [T((1024, 3072), "f16"), T((3072, 768), "f16")], T((1024, 768), "f16"),
                         rtile={"block": {"m": 256, "n": 128}, "thread": {"m": 8, "n": 16}, "step": {"k": 32}},
                         estimate=SM80)   # the sm_80 engine's kernel, compiled for sm_80 and sm_90
    (k,) = kernels(lower(mod))
    cu = tmp_path / "k.cu"
    cu.write_text(emit_kernel(k))
    r = subprocess.run(["nvcc", f"-arch={sm}", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(cu)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = parse_ptxas(r.stderr)[k.sym_name]
    assert info.spill_bytes == 0 and info.registers <= 255


def test_engine_kernels_are_deterministic():
    """Same module, same flags: byte-identical kernel text (and so the same .cu, plan and ptxas cache key)."""
    def text():
        mod = compute_module("C[m, n] += A[k, m] * B[n, k]", [T((72, 136), "bf16"), T((96, 72), "bf16")],
                             T((136, 96), "bf16"),
                             rtile={"block": {"m": 64, "n": 32}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}},
                             estimate=SM80)
        (k,) = kernels(lower(mod))
        assert k.attributes["config"]["engine"] == "mma_sync"
        return emit_kernel(k)
    assert text() == text()


@pytest.mark.parametrize("arch", ["a100"])   # h200's wgmma kernel: test_wgmma_engine.py
def test_f16_gemm_4096_main_loop_quality(arch, tmp_path):
    """Issue #17's bar on the static SASS of the f16 4096^3 GEMM's main loop: HMMA.16816 fed by LDSM and
    128-bit cp.async (LDGSTS), no other loads, at most 6.7e-4 instructions per tensor-core FLOP, 0 spills."""
    import shutil
    if shutil.which("nvcc") is None or not disassembler_found():
        pytest.skip("needs nvcc and cuobjdump/nvdisasm")
    import onnx
    from onnx import TensorProto, helper
    from tilec.backend.inspect_build import inspect_build
    from tilec.driver import compile_model
    t = TensorProto.FLOAT16
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", t, [4096, 4096]),
                               helper.make_tensor_value_info("b", t, [4096, 4096])],
                              [helper.make_tensor_value_info("c", t, [4096, 4096])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "g.onnx"))
    compile_model(str(tmp_path / "g.onnx"), str(tmp_path / "b"), arch=arch, check_ptx=True)
    (k,) = inspect_build(tmp_path / "b")["kernels"]
    loop = k["main_loop"]
    assert k["ptxas"]["spill_bytes"] == 0
    assert set(loop["tensor"]) == {"HMMA.16816.F32"} and set(loop["memory"]) == {"LDGSTS.128", "LDSM.128"}
    assert loop["instructions_per_tensor_flop"] <= 6.7e-4
