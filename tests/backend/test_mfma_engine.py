"""The AMD matrix-core engine (lower/mfma_engine.py, issue #23): f16/bf16 products of several shapes, operand
layouts and batches, lowered for mi250x, run under the 64-lane emulator (whose MFMA follows the CDNA2 lane
layouts: tests/emu/test_emu_mfma.py) and compared with the numpy interpreter, global bytes measured ==
modelled; hipcc takes the kernel for gfx90a with MFMA instructions and no spills."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lower_harness import compute_module, kernels, lower, random_inputs, reference  # noqa: E402

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend import hipcc  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.emu import EmuModule  # noqa: E402
from tilec.backend.hip import hip_language  # noqa: E402
from tilec.backend.lower import mfma_engine  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402

MATMUL = "C[m, n] += A[m, k] * B[k, n]"
TOL = {"f16": 2e-2, "bf16": 6e-2}   # the output's rounding over |C| ~ sqrt(K)
needs_hipcc = pytest.mark.skipif(hipcc.find_hipcc() is None, reason="hipcc is not installed")


def lowered(expr, ins, out, rtile, arch="mi250x"):
    (k,) = kernels(lower(compute_module(expr, ins, out, rtile=rtile, estimate={"arch": arch})))
    return k


def run(expr, ins, out, rtile, tol, orders=("normal",), inst=None):
    ref = compute_module(expr, ins, out, rtile=rtile)
    inputs = random_inputs(ref)
    want = reference(ref, inputs)[0].astype(np.float64)
    k = lowered(expr, ins, out, rtile)
    cfg = k.attributes["config"]
    assert cfg.get("engine") == "mfma", cfg
    if inst:
        assert cfg["mma"][0] == inst, cfg
    mod = EmuModule(emit_kernel(k, hip_language()), warp_size=64)
    a = k.attributes
    for order in orders:
        got = np.zeros(out.shape, np.float16 if out.dtype == "f16" else np.float32)
        if out.dtype == "bf16":
            got = np.zeros(out.shape, np.uint16)
        st = mod.launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]),
                        [np.ascontiguousarray(x) for x in inputs] + [got], order=order)
        g = (got.astype(np.uint32) << 16).view(np.float32) if out.dtype == "bf16" else got
        np.testing.assert_allclose(g.astype(np.float64), want, rtol=tol, atol=tol * np.abs(want).max())
        assert st.global_load_bytes + st.global_store_bytes == a["bytes_modelled"]
    return k


@pytest.mark.parametrize("dtype,mkn,block,inst", [
    ("f16", (64, 64, 64), (64, 64), 32),     # whole tiles, 2 k tiles, 4 waves of 32x32x8
    ("f16", (72, 48, 40), (64, 32), 32),     # m, n past the tile; K = 40: the second k tile is 8 deep (zero-filled)
    ("bf16", (72, 48, 40), (64, 32), 32),
    ("f16", (40, 24, 200), (16, 16), 16),    # one wave of 16x16x16; 7 k tiles through the two LDS buffers
])
def test_engine_matches_numpy(dtype, mkn, block, inst):
    m_, n_, k_ = mkn
    rtile = {"block": {"m": block[0], "n": block[1]}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    run(MATMUL, [T((m_, k_), dtype), T((k_, n_), dtype)], T((m_, n_), dtype), rtile, TOL[dtype],
        orders=("normal", "reverse"), inst=inst)


@pytest.mark.parametrize("expr,a_shape,b_shape", [
    ("C[m, n] += A[k, m] * B[k, n]", (56, 48), (56, 40)),    # A stored k-major: 4 LDS reads down a column
    ("C[m, n] += A[m, k] * B[n, k]", (48, 56), (40, 56)),    # B stored n-major: one 64-bit LDS read
    ("C[m, n] += A[k, m] * B[n, k]", (56, 48), (40, 56)),
    ("C[m, n] += A[m, k] * B[n, k]", (48, 56), (37, 56)),    # odd N
])
def test_engine_operand_layouts(expr, a_shape, b_shape):
    rtile = {"block": {"m": 32, "n": 32}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    run(expr, [T(a_shape, "f16"), T(b_shape, "f16")], T((48, b_shape[1] if "B[k" in expr else b_shape[0]), "f16"),
        rtile, TOL["f16"])


def test_engine_batched_bf16_with_broadcast_b():
    rtile = {"block": {"b": 1, "m": 32, "n": 16}, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}
    run("C[b, m, n] += A[b, m, k] * B[b, n, k]", [T((3, 40, 48), "bf16"), T((3, 24, 48), "bf16")],
        T((3, 40, 24), "bf16"), rtile, TOL["bf16"], inst=16)
    run("C[b, m, n] += A[b, m, k] * B[k, n]", [T((2, 40, 48), "f16"), T((48, 32), "f16")],
        T((2, 40, 32), "f16"), {"block": {"b": 1, "m": 32, "n": 32}, "step": {"k": 16}}, TOL["f16"], inst=32)


@pytest.mark.parametrize("expr,dtype,a_shape,b_shape,block", [
    # K = 17: A's rows (k contiguous) are neither 16-byte aligned nor whole chunks; one wave of 16x16x16
    ("C[m, n] += A[m, k] * B[k, n]", "f16", (16, 17), (17, 16), (16, 16)),
    # A stored k-major with M = 37, B with N = 50: ragged along m and n, K = 40 a ragged second k tile
    ("C[m, n] += A[k, m] * B[k, n]", "f16", (40, 37), (40, 50), (32, 32)),
    # batched, both operands k-contiguous with K = 45 (odd batch strides), a 64x32 tile of 32x32x8
    ("C[b, m, n] += A[b, m, k] * B[b, n, k]", "bf16", (2, 70, 45), (2, 33, 45), (64, 32)),
])
def test_engine_ragged_rows(expr, dtype, a_shape, b_shape, block):
    """Rows that are not whole 16-byte chunks take bounds-checked 16-bit loads: the engine still runs the
    product (the tensor-core kernel Roller priced: tests/roller/test_roller_properties.py), exactly the
    in-bounds elements read, on both the 128-bit and the 16-bit path where only one operand is ragged."""
    batch = a_shape[:-2]
    m_ = a_shape[-1] if "A[k, m]" in expr else a_shape[-2]
    n_ = b_shape[-2] if "n, k]" in expr else b_shape[-1]
    rtile = {"block": {**{"b": 1 for _ in batch}, "m": block[0], "n": block[1]}, "thread": {"m": 4, "n": 4},
             "step": {"k": 32}}
    k = run(expr, [T(a_shape, dtype), T(b_shape, dtype)], T((*batch, m_, n_), dtype), rtile, TOL[dtype],
            orders=("normal", "reverse"))
    assert "TL_LD(reinterpret_cast<const unsigned short*>" in k.attributes["source"]


def test_plan_and_selection():
    spec = get_arch("mi250x")
    cfg = mfma_engine.plan(128, 128, 4096, "f16", spec)
    assert (cfg.waves_m, cfg.waves_n, cfg.inst, cfg.bk, cfg.acc_per_lane) == (2, 2, 32, 32, 64)
    assert cfg.lds_bytes("f16") <= spec.smem_per_block_bytes
    assert mfma_engine.plan(48, 16, 64, "f16", spec).inst == 16   # 48 is no multiple of 32
    assert mfma_engine.plan(256, 256, 4096, "f16", spec) is None   # 128x128 per wave: 256 accumulators
    assert mfma_engine.plan(16, 16, 8, "f16", spec).bk == 16
    rtile = {"block": {"m": 32, "n": 32}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
    # Rows that are not whole 16-byte chunks (N = 50) stay on the matrix cores (16-bit loads for B only).
    k = lowered(MATMUL, [T((64, 64), "f16"), T((64, 50), "f16")], T((64, 50), "f16"), rtile)
    assert k.attributes["config"]["engine"] == "mfma"
    assert k.attributes["source"].count("TL_LD4(") == 1
    # The NVIDIA engine stays the NVIDIA targets'.
    k = lowered(MATMUL, [T((64, 64), "f16"), T((64, 64), "f16")], T((64, 64), "f16"), rtile, arch="a100")
    assert k.attributes["config"]["engine"] == "mma_sync"


@needs_hipcc
def test_hipcc_emits_mfma_without_spills(tmp_path):
    """An f16 kernel on 32x32x8 (4 waves of 64x64: 64 accumulators per lane), a bf16 one on 16x16x16 and an f16
    one whose rows are not whole 16-byte chunks (K = 509: 16-bit loads), in one hipcc run for gfx90a: the
    resource report shows no spills, no scratch and the declared LDS, the assembly the MFMAs."""
    rtile = {"block": {"m": 128, "n": 128}, "thread": {"m": 8, "n": 8}, "step": {"k": 32}}
    ks = [lowered("C[m, n] += A[m, k] * B[n, k]", [T((1024, 512), "f16"), T((512, 512), "f16")],
                  T((1024, 512), "f16"), rtile),
          lowered("C[m, n] += A[k, m] * B[k, n]", [T((512, 1024), "bf16"), T((512, 512), "bf16")],
                  T((1024, 512), "bf16"), {**rtile, "block": {"m": 48, "n": 32}}),
          lowered("C[m, n] += A[m, k] * B[n, k]", [T((1024, 509), "f16"), T((512, 509), "f16")],
                  T((1024, 512), "f16"), rtile)]
    texts = [emit_kernel(k, hip_language()).replace(k.sym_name, f"{k.sym_name}_{i}") for i, k in enumerate(ks)]
    # One prelude, both kernels (the prelude is a header: its guard keeps the second copy out).
    (tmp_path / "k.hip").write_text("\n".join(texts))
    r = subprocess.run([hipcc.find_hipcc(), "--offload-arch=gfx90a", "--cuda-device-only", "-O3", "-S",
                        "-Rpass-analysis=kernel-resource-usage", "-o", str(tmp_path / "k.s"), "-x", "hip",
                        str(tmp_path / "k.hip")], env=hipcc._env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    infos = hipcc.parse_remarks(r.stdout + r.stderr)
    asm = (tmp_path / "k.s").read_text()
    for i, (k, inst) in enumerate(zip(ks, ("v_mfma_f32_32x32x8f16", "v_mfma_f32_16x16x16bf16_1k",
                                           "v_mfma_f32_32x32x8f16"), strict=True)):
        name = f"{k.sym_name}_{i}"
        info = infos[name]
        assert info.sgpr_spills == 0 and info.vgpr_spills == 0 and info.scratch_bytes == 0, info
        assert info.lds_bytes == k.attributes["smem_static"]
        cfg = k.attributes["config"]
        assert cfg["mma"][0] == int(inst.split("_")[3].split("x")[0]), cfg
        body = asm.split(f"{name}:", 1)[1].split("s_endpgm", 1)[0]
        # The k tile's MFMAs unrolled: MI x NI x (BK / k) of the chosen kind, at least once.
        assert body.count(inst) >= cfg["mfma_per_wave"] // (512 // cfg["step"]["k"]), (inst, cfg)


@needs_hipcc
def test_mi300x_kernel_compiles_for_cdna3(tmp_path):
    """mi300x (gfx942) takes the same engine. Debian's hipcc 5.2 does not know gfx942, but knows gfx940, the
    first MI300 ISA, with the same matrix-core instructions (CDNA3 spells the bf16 one ``..._bf16``): the kernel
    compiles there with MFMA and no spills."""
    rtile = {"block": {"m": 128, "n": 128}, "thread": {"m": 8, "n": 8}, "step": {"k": 32}}
    k = lowered(MATMUL, [T((1024, 512), "bf16"), T((512, 512), "bf16")], T((1024, 512), "bf16"), rtile,
                arch="mi300x")
    assert k.attributes["config"]["engine"] == "mfma" and k.attributes["config"]["mma"] == [32, 32, 8]
    (tmp_path / "k.hip").write_text(emit_kernel(k, hip_language()))
    r = subprocess.run([hipcc.find_hipcc(), "--offload-arch=gfx940", "--cuda-device-only", "-O3", "-S",
                        "-Rpass-analysis=kernel-resource-usage", "-o", str(tmp_path / "k.s"), "-x", "hip",
                        str(tmp_path / "k.hip")], env=hipcc._env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    info = hipcc.parse_remarks(r.stdout + r.stderr)[k.sym_name]
    assert info.spills == 0 and info.scratch_bytes == 0, info
    assert "v_mfma_f32_32x32x8_bf16" in (tmp_path / "k.s").read_text()
