"""The sm_90 tensor-core engine (lower/wgmma_engine.py): TMA -> mbarrier pipeline -> wgmma, warp-specialised.
Its kernels run under the emulator (exact wgmma, TMA and mbarrier semantics, docs/hopper.md) against numpy at
f16/bf16 tolerances, with global bytes measured == modelled (TMA reads only in-bounds bytes); the usual
mistakes in the pipeline fail there; the kernel compiles for sm_90a without spills or injected waits, its
main loop is HGMMA fed by UTMALDG and leaner than Triton's; sm_80 keeps mma.sync."""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lower_harness import (compute_module, disassembler_found, kernels, lower, random_inputs,  # noqa: E402
                           reference, run_lowered)

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend.arch_features import MARK  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.lower import wgmma_engine  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402

TOL = {"f16": 2e-2, "bf16": 6e-2}
RTILE = {"block": {"m": 64, "n": 64}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
# Triton's tutorial matmul AOT-compiled for sm_90 (issue #21): 124 instructions around 4 HGMMA.64x256x16,
# 131,072 FLOPs each per warp (backend/sass.py's accounting).
TRITON_SM90_INSTRUCTIONS_PER_FLOP = 124 / (4 * 131072)


def lowered(expr, ins, out, rtile=RTILE, estimate=None):
    attrs = {"estimate": estimate} if estimate else {}
    m = lower(compute_module(expr, ins, out, rtile=rtile, **attrs))
    (k,) = kernels(m)
    return m, k


def run(expr, ins, out, tol, orders=("normal",)):
    ref = compute_module(expr, ins, out, rtile=RTILE)
    inputs = random_inputs(ref)
    want = reference(ref, inputs)[0].astype(np.float64)
    m, k = lowered(expr, ins, out)
    assert k.attributes["config"]["engine"] == "wgmma", k.attributes["config"]
    for order in orders:
        got, stats = run_lowered(m, inputs, order)
        np.testing.assert_allclose(got[0].astype(np.float64), want, rtol=tol, atol=tol * np.abs(want).max())
        st = stats[k.sym_name]
        assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]
    return k


@pytest.mark.parametrize("expr,a_shape,b_shape", [
    ("C[m, n] += A[m, k] * B[k, n]", (72, 136), (136, 80)),    # K-major A, n-contiguous B; M, N, K ragged
    ("C[m, n] += A[k, m] * B[n, k]", (136, 72), (80, 136)),    # m-contiguous A (transposed), K-major B
    ("C[m, n] += A[m, k] * B[n, k]", (48, 40), (37, 40)),      # odd N: element stores; K < one k tile
])
def test_engine_matches_numpy(expr, a_shape, b_shape):
    n = b_shape[1] if "B[k" in expr else b_shape[0]
    m = a_shape[0] if "A[m" in expr else a_shape[1]
    k = run(expr, [T(a_shape, "f16"), T(b_shape, "f16")], T((m, n), "f16"), TOL["f16"], orders=("normal", "reverse"))
    assert MARK in emit_kernel(k) and len(k.attributes["tensor_maps"]) == 2


def test_two_consumer_warpgroups_with_register_rebalancing(monkeypatch):
    """A 128x128 tile: two consumer warpgroups (setmaxnreg) on one pipeline, M and N ragged, shuffled order."""
    monkeypatch.setattr(wgmma_engine, "TILES", ((128, 128),))
    k = run("C[m, n] += A[k, m] * B[k, n]", [T((200, 136), "f16"), T((200, 144), "f16")], T((136, 144), "f16"),
            TOL["f16"], orders=("shuffle",))
    src = emit_kernel(k)
    assert k.attributes["block"][0] == 384 and "tl_setmaxnreg_inc<232>" in src


def test_batched_bf16_with_a_broadcast_operand():
    k = run("C[b, m, n] += A[b, m, k] * B[n, k]", [T((3, 40, 48), "bf16"), T((24, 48), "bf16")],
            T((3, 40, 24), "bf16"), TOL["bf16"])
    maps = k.attributes["tensor_maps"]
    assert maps[0]["dims"] == [48, 40, 3] and maps[1]["dims"] == [48, 24]   # A 3-D (batched), B 2-D (shared)


def _misuse(m, k, inputs, old: str, new: str):
    """Run the kernel of ``m`` with ``old`` replaced by ``new`` in its source; returns its outputs or raises."""
    emu = pytest.importorskip("tilec.backend.emu")
    from tilec.runtime.tensor_map import from_attr
    src = emit_kernel(k)
    assert old in src
    a = k.attributes
    args = [np.ascontiguousarray(x) for x in inputs] + [np.zeros(a["params"][-1]["shape"], np.float16)]
    args += [from_attr(t, args[t["arg"]].ctypes.data).emu_bytes() for t in a["tensor_maps"]]
    emu.EmuModule(src.replace(old, new)).launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), args,
                                                 smem_bytes=a["smem"], smem_optin=a["smem"])
    return args[2]


@pytest.mark.parametrize("old,new,error", [
    ("tl_mbarrier_wait_parity(&k_full[j], k_ph);", "", "mbarrier"),           # computing before the stage lands
    ("tl_wgmma_wait<1>();", "", "changed before the wait"),                      # a stage released while being read
    ("tl_wgmma_fence();", "", "no tl_wgmma_fence"),                              # no fence before the first wgmma
    ("tl_mbarrier_arrive_expect_tx(&k_full[k_s], STAGE);",                       # a wrong byte count
     "tl_mbarrier_arrive_expect_tx(&k_full[k_s], STAGE + 16);", "deadlock"),
    ("if (j > 0 || kt0 > 0) tl_mbarrier_arrive(&k_empty[(j + 3) % 4]);", "", "deadlock"),   # a stage never released
])
def test_pipeline_mistakes_fail_under_the_emulator(old, new, error):
    """5 k tiles through 4 stages: the correct kernel matches numpy; each mistake is a launch error."""
    emu = pytest.importorskip("tilec.backend.emu")
    expr, ins, out = "C[m, n] += A[m, k] * B[k, n]", [T((64, 320), "f16"), T((320, 64), "f16")], T((64, 64), "f16")
    m, k = lowered(expr, ins, out)
    inputs = random_inputs(m)
    want = reference(compute_module(expr, ins, out, rtile=RTILE), inputs)[0].astype(np.float64)
    np.testing.assert_allclose(_misuse(m, k, inputs, old, old).astype(np.float64), want,
                               rtol=TOL["f16"], atol=TOL["f16"] * np.abs(want).max())
    with pytest.raises(emu.EmuError, match=error):
        _misuse(m, k, inputs, old, new)


def test_selection_by_target():
    """sm_90 f16/bf16: wgmma; sm_80: mma.sync; sm_90 tf32: mma.sync (wgmma tf32 is not written yet);
    an operand whose rows are not whole 16-byte chunks: the wmma kernel, as before."""
    f16 = [T((128, 128), "f16"), T((128, 128), "f16")], T((128, 128), "f16")
    assert lowered("C[m, n] += A[m, k] * B[k, n]", *f16, estimate={"arch": "h100"})[1] \
        .attributes["config"]["engine"] == "wgmma"
    assert lowered("C[m, n] += A[m, k] * B[k, n]", *f16, estimate={"arch": "a100"})[1] \
        .attributes["config"]["engine"] == "mma_sync"
    ragged = [T((64, 64), "f16"), T((64, 50), "f16")], T((64, 50), "f16")
    assert "engine" not in lowered("C[m, n] += A[m, k] * B[k, n]", *ragged)[1].attributes["config"]
    spec = get_arch("h200")
    mt = {"m": "m", "n": "n", "k": "k", "batch": [], "a_kmajor": False, "b_nmajor": False}
    assert wgmma_engine.plan(spec, mt, {"m": 64, "n": 64, "k": 64}, "f32") is None
    assert wgmma_engine.plan(get_arch("a100"), mt, {"m": 64, "n": 64, "k": 64}, "f16") is None
    big = wgmma_engine.plan(spec, mt, {"m": 4096, "n": 4096, "k": 4096}, "f16")
    assert (big.bm, big.bn, big.stages) == (128, 256, 4) and big.smem_bytes <= spec.smem_per_block_optin_bytes


def test_kernels_are_deterministic():
    def text():
        return emit_kernel(lowered("C[m, n] += A[k, m] * B[n, k]", [T((72, 136), "bf16"), T((96, 72), "bf16")],
                                   T((136, 96), "bf16"))[1])
    assert text() == text()


def _gemm_onnx(path: Path, n: int = 4096, dtype: str = "f16", m: int | None = None, k: int | None = None):
    """An ONNX MatMul [m, k] x [k, n] (m and k default to n)."""
    import onnx
    from onnx import TensorProto, helper
    t = TensorProto.FLOAT16 if dtype == "f16" else TensorProto.BFLOAT16
    m, k = m or n, k or n
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", t, [m, k]),
                               helper.make_tensor_value_info("b", t, [k, n])],
                              [helper.make_tensor_value_info("c", t, [m, n])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_gemm_4096_compiles_for_sm_90a_and_beats_tritons_main_loop(tmp_path):
    """The f16 4096^3 GEMM on h200 (--check-ptx: compiled for sm_90a, no wait ptxas had to inject and no
    serialised wgmma: ptxas.check_wgmma_repairs): 0 spills, and (with a disassembler) a main loop of HGMMA.64x256x16 only, UTMALDG in the
    kernel, fewer instructions per tensor-core FLOP than Triton's sm_90 kernel, issue bound >= 85% of peak."""
    from tilec.driver import compile_model
    _gemm_onnx(tmp_path / "g.onnx")
    compile_model(str(tmp_path / "g.onnx"), str(tmp_path / "b"), arch="h200", check_ptx=True)
    (row,) = json.load(open(tmp_path / "b" / "report.json"))["kernels"]
    assert row["ptxas"]["spill_bytes"] == 0
    # --check-ptx compiled it for sm_90a and would have refused an injected wait (C7517) or serialised wgmma
    assert MARK in next((tmp_path / "b" / "kernels").glob("*.cu")).read_text()
    if not disassembler_found():
        pytest.skip("needs cuobjdump/nvdisasm for the SASS checks")
    from tilec.backend.inspect_build import inspect_build
    (k,) = inspect_build(tmp_path / "b")["kernels"]
    loop = k["main_loop"]
    # the k loop is unrolled by the 4 stages: 4 k tiles of 4 wgmma k16 per iteration
    assert set(loop["tensor"]) == {"HGMMA.64x256x16.F32"} and loop["tensor"]["HGMMA.64x256x16.F32"] == 16
    assert k["kernel_mix"]["memory"].get("UTMALDG", 0) >= 2 and "LDGSTS" not in str(loop["memory"])
    assert loop["instructions_per_tensor_flop"] <= TRITON_SM90_INSTRUCTIONS_PER_FLOP
    assert loop["estimate"]["fraction_of_peak"] >= 0.85


def test_build_runs_through_the_executor_with_tensor_maps(tmp_path):
    """compile_model on h200 -> plan.json carries the tensor maps -> the emu device builds them at launch."""
    from tilec.driver import compile_model, run_target
    _gemm_onnx(tmp_path / "g.onnx", n=96)
    compile_model(str(tmp_path / "g.onnx"), str(tmp_path / "b"), arch="h200")
    plan = json.load(open(tmp_path / "b" / "plan.json"))
    (step,) = [s for s in plan["steps"] if s["kind"] == "launch"]
    # two n tiles: a multicast cluster of 2, each block loading 32 of the A tile's 64 rows (the runtime
    # launches the plain grid; __cluster_dims__ is compile-time)
    assert [t["box"] for t in step["tensor_maps"]] == [[64, 32], [64, 64]]
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((96, 96)).astype(np.float16) for _ in range(2))
    np.savez(tmp_path / "in.npz", a=a, b=b)
    run_target(str(tmp_path / "b"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
               report_path=str(tmp_path / "run.json"))
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = np.load(tmp_path / "out.npz")["c"].astype(np.float64)
    np.testing.assert_allclose(got, want, rtol=TOL["f16"], atol=TOL["f16"] * np.abs(want).max())
    (rk,) = json.load(open(tmp_path / "run.json"))["kernels"]
    assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


@pytest.mark.parametrize("dtype,x_shape,n,act,residual,out", [
    ("f16", (72, 48), 40, "Relu", True, None),         # bias, ReLU, residual on the accumulators
    ("bf16", (3, 24, 32), 56, "Gelu", True, None),     # bf16, batch folded into m, erf GELU
    ("f16", (2, 40, 64), 24, "Sigmoid", False, "f32"),  # a Cast to f32 stored
])
def test_fused_epilogue_on_wgmma(tmp_path, dtype, x_shape, n, act, residual, out):
    from test_mma_engine_fused import build, run_emu
    build_dir, ins, want = build(tmp_path, dtype, x_shape, n, act, residual, out, arch="h200")
    tir = open(build_dir / "model.tir").read()
    assert 'engine = "wgmma"' in tir and "fused_epilogue" in tir
    got, rep = run_emu(tmp_path, build_dir, ins, dtype)
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype] * np.abs(want).max())
    (rk,) = rep["kernels"]
    assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_small_zoo_model_on_wgmma_matches_onnxruntime(mode, tmp_path):
    """nerf_mlp (small zoo) with --precision fp16/bf16 on the default h200: its GEMMs on the wgmma engine,
    the emulator within the mode's tolerance of onnxruntime (tests/precision/checks.py)."""
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root / "tests" / "precision"))
    sys.path.insert(0, str(root))
    from checks import assert_within, build_and_run
    from samples.models import build
    want, got, _ = build_and_run(build("nerf_mlp", "small"), tmp_path, mode, backends=("emu",))
    assert 'engine = "wgmma"' in (tmp_path / "build" / "model.tir").read_text()
    assert_within(want, got["emu"], mode)


@pytest.mark.parametrize("expr,a_shape,b_shape,out_shape,engine", [
    ("C[m, n] += A[m, k] * B[n, k]", (72, 100), (48, 100), (72, 48), "wgmma"),     # both K-major: wgmma k8
    ("C[b, m, n] += A[b, m, k] * B[n, k]", (2, 40, 36), (24, 36), (2, 40, 24), "wgmma"),   # B broadcast
    ("C[m, n] += A[m, k] * B[k, n]", (72, 40), (40, 48), (72, 48), "mma_sync"),    # [k][n]: no tf32 transpose
])
def test_tf32_on_wgmma_truncates_k_major_operands(expr, a_shape, b_shape, out_shape, engine):
    """An f32 product marked tf32 on sm_90: wgmma m64nNk8 where both operands are K-major (it has no
    transposed tf32 form), reading the top 19 bits of each f32 from shared memory (truncation, where the
    mma.sync path rounds with cvt.rna): within tf32's tolerance of f32, and tight to the truncated inputs."""
    rtile = {"block": {a: 1 if a == "b" else 32 for a in ("b", "m", "n") if f"{a}," in expr or f"{a}]" in expr},
             "thread": {"m": 4, "n": 4}, "step": {"k": 16}}
    attrs = {"rtile": rtile, "precision": "tf32"}
    ins = [T(a_shape, "f32"), T(b_shape, "f32")]
    ref = compute_module(expr, ins, T(out_shape, "f32"), **attrs)
    m = lower(compute_module(expr, ins, T(out_shape, "f32"), **attrs))
    (k,) = kernels(m)
    assert k.attributes["config"]["engine"] == engine
    if engine != "wgmma":
        return
    assert "tl_wgmma_tf32<" in k.attributes["source"] and k.attributes["config"]["mma"][2] == 8
    x = random_inputs(ref)
    trunc = [(v.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32) for v in x]
    exact = reference(ref, x)[0].astype(np.float64)
    truncated = reference(ref, trunc)[0].astype(np.float64)
    got, stats = run_lowered(m, x)
    got = got[0].astype(np.float64)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(got, truncated, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(got, exact, rtol=0, atol=5e-3 * scale)
    assert np.abs(got - exact).max() > 1e-5 * scale     # tf32, not f32
    st = stats[k.sym_name]
    assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]


@pytest.mark.parametrize("tile,sms,a_shape,b_shape", [
    ((64, 64), 1, (200, 256), (256, 136)),     # 12 tiles on 3 resident blocks, 4 each; M, N ragged
    ((128, 128), 2, (136, 512), (512, 144)),   # two consumer warpgroups: 4 tiles on 2 blocks, 8 k tiles
])
def test_persistent_tile_scheduler(monkeypatch, tile, sms, a_shape, b_shape):
    """More tiles than one wave of resident blocks: a grid of SMs x resident blocks loops over the tiles
    (CUTLASS's persistent scheduler), the stages' barriers and phases running on from tile to tile and each
    tile's last stage released before its epilogue (the producer loads the next tile meanwhile); exact under
    the emulator in shuffled order, with the bytes of one block per tile."""
    import dataclasses
    from tilec.backend.lower import tiled_mma
    small = dataclasses.replace(get_arch("h200"), num_sms=sms)
    monkeypatch.setattr(tiled_mma, "tiled_for", lambda ctx: small)
    monkeypatch.setattr(wgmma_engine, "TILES", (tile,))
    k = run("C[m, n] += A[m, k] * B[k, n]", [T(a_shape, "f16"), T(b_shape, "f16")],
            T((a_shape[0], b_shape[1]), "f16"), TOL["f16"], orders=("shuffle", "reverse"))
    per = k.attributes["config"]["persistent"]
    assert k.attributes["grid"][0] == per["blocks"] < per["tiles"]
    assert "gridDim.x" in k.attributes["source"]


def test_persistent_only_past_one_wave_and_whole_stage_rounds():
    from tilec.analysis.wgmma_shape import persistent_grid
    spec = get_arch("h200")
    mt = {"m": "m", "n": "n", "k": "k", "batch": [], "a_kmajor": False, "b_nmajor": False, "dtype": "f16"}
    big = wgmma_engine.plan(spec, mt, {"m": 4096, "n": 4096, "k": 4096}, "f16")
    assert persistent_grid(spec, mt, {"m": 4096, "n": 4096, "k": 4096}, big) == spec.num_sms   # 512 tiles
    assert persistent_grid(spec, mt, {"m": 4096, "n": 4096, "k": 4096 - 64}, big) == 0   # 63 k tiles, 4 stages
    assert persistent_grid(spec, mt, {"m": 1024, "n": 2048, "k": 4096}, big) == 0   # 64 tiles: one wave
