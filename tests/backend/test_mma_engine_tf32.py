"""tf32 on the sm_80 tensor-core engine (issue #17): f32 products the precision pass marked
``precision = "tf32"`` run ``mma.sync.m16n8k8.tf32`` (``lower/mma_tf32.py``) with 16-byte cp.async of 4 f32,
ldmatrix where k is contiguous and 32-bit shared loads where it is not, every operand rounded as
``cvt.rna.tf32.f32`` rounds (0x1000 added to its bits, the low 13 then dropped by the tensor core). Under the emulator the result equals numpy's product of the rna-rounded inputs to f32
accumulation error (so a kernel that truncated, as the tensor core does without the cvt, would fail), and is
within tf32's tolerance of the exact product; bytes measured == modelled; ptxas takes it without spills."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lower_harness import compute_module, kernels, lower, random_inputs, reference, run_lowered  # noqa: E402

from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402

TF32_TOL = 5e-3   # tf32 keeps 10 mantissa bits: 2^-11 relative per operand, over |C| ~ sqrt(K) sums
F32_TOL = 2e-6    # f32 accumulation of the same (rounded) products in another order


def rna_tf32(x):
    """``cvt.rna.tf32.f32`` in numpy: to a 10-bit mantissa, to nearest, ties away from zero."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x1000) & 0xFFFFE000).astype(np.uint32).view(np.float32)


def build(expr, a_shape, b_shape, out_shape, block, precision="tf32", arch="a100"):
    rtile = {"block": {"m": block[0], "n": block[1], "b": 1}, "thread": {"m": 4, "n": 4}, "step": {"k": 16}}
    rtile["block"] = {a: v for a, v in rtile["block"].items() if a in expr}
    attrs = {"rtile": rtile, "estimate": {"arch": arch}}
    if precision:
        attrs["precision"] = precision
    ins = [T(a_shape, "f32"), T(b_shape, "f32")]
    return (compute_module(expr, ins, T(out_shape, "f32"), **attrs),
            lower(compute_module(expr, ins, T(out_shape, "f32"), **attrs)))


@pytest.mark.parametrize("expr,a_shape,b_shape,out_shape,block", [
    ("C[m, n] += A[m, k] * B[k, n]", (72, 40), (40, 48), (72, 48), (32, 32)),      # B [k][n]: shared loads
    ("C[m, n] += A[m, k] * B[n, k]", (48, 56), (40, 56), (48, 40), (32, 32)),      # both ldmatrix
    ("C[m, n] += A[k, m] * B[k, n]", (56, 48), (56, 40), (48, 40), (32, 32)),      # both shared loads
    ("C[m, n] += A[k, m] * B[n, k]", (200, 64), (64, 200), (64, 64), (64, 64)),    # 7 k tiles, last ragged
    ("C[b, m, n] += A[b, m, k] * B[k, n]", (2, 40, 24), (24, 36), (2, 40, 36), (16, 32)),  # B broadcast
])
def test_tf32_engine_rounds_like_cvt_rna(expr, a_shape, b_shape, out_shape, block):
    ref, m = build(expr, a_shape, b_shape, out_shape, block)
    (k,) = kernels(m)
    cfg = k.attributes["config"]
    assert cfg["engine"] == "mma_sync" and cfg["mma"] == [16, 8, 8]
    assert "tl_mma_m16n8k8_tf32f32" in k.attributes["source"] and "+= 0x1000u" in k.attributes["source"]
    x = random_inputs(ref)
    exact = reference(ref, x)[0].astype(np.float64)
    rounded = reference(ref, [rna_tf32(v) for v in x])[0].astype(np.float64)
    scale = np.abs(exact).max()
    for order in ("normal", "reverse"):
        got, stats = run_lowered(m, x, order)
        got = got[0].astype(np.float64)
        np.testing.assert_allclose(got, rounded, rtol=0, atol=F32_TOL * scale)
        np.testing.assert_allclose(got, exact, rtol=0, atol=TF32_TOL * scale)
        st = stats[k.sym_name]
        assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]


def test_truncation_would_be_seen():
    """The rna reference is far enough from truncation that the check above can tell them apart."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 64)).astype(np.float32), rng.standard_normal((64, 64)).astype(np.float32)
    trunc = lambda v: (v.view(np.uint32) & 0xFFFFE000).view(np.float32)   # noqa: E731
    rna = rna_tf32(a).astype(np.float64) @ rna_tf32(b).astype(np.float64)
    cut = trunc(a).astype(np.float64) @ trunc(b).astype(np.float64)
    assert np.abs(rna - cut).max() > 50 * F32_TOL * np.abs(rna).max()


@pytest.mark.parametrize("precision,arch", [(None, "a100"), ("tf32", "v100")])
def test_f32_stays_on_cuda_cores(precision, arch):
    """Unmarked f32 (the model's own types: exact f32) and tf32 on a GPU without it keep the tiled kernel."""
    _, m = build("C[m, n] += A[m, k] * B[k, n]", (64, 64), (64, 64), (64, 64), (32, 32), precision, arch)
    (k,) = kernels(m)
    assert k.attributes["kind"] == "tiled" and "mma" not in k.attributes.get("config", {})


@pytest.mark.parametrize("b_layout", ["kn", "nk"])
@pytest.mark.parametrize("block", [(128, 128), (128, 256)])
def test_tf32_engine_compiles_unspilled(b_layout, block, tmp_path):
    import shutil
    import subprocess
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    from tilec.backend.ptxas import parse_ptxas
    expr = "C[m, n] += A[m, k] * B[k, n]" if b_layout == "kn" else "C[m, n] += A[m, k] * B[n, k]"
    _, m = build(expr, (1024, 3072), (3072, 768) if b_layout == "kn" else (768, 3072), (1024, 768), block)
    (k,) = kernels(m)
    cu = tmp_path / "k.cu"
    cu.write_text(emit_kernel(k))
    r = subprocess.run(["nvcc", "-arch=sm_80", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(cu)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    info = parse_ptxas(r.stderr)[k.sym_name]
    assert info.spill_bytes == 0 and info.registers <= 255
