"""Tensor cores: Roller aligns f16/bf16 matmul tiles to the mma shape, lower-cuda picks the wmma kernel for
them, the emulator's nvcuda::wmma runs it (numbers and global bytes), and ptxas sm_90 takes it unspilled."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from lower_harness import compute_module, kernels, lower, nvcc_compile, random_inputs, reference, run_lowered  # noqa: E402

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.analysis.roller import construct_rtiles  # noqa: E402
from tilec.analysis.tile_problem import TileProblem  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.ptxas import parse_ptxas  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402
from tilec.passes import get_pass  # noqa: E402

MATMUL = "C[m, n] += A[m, k] * B[k, n]"


def run(expr, ins, out, rtile, tol):
    ref = compute_module(expr, ins, out, rtile=rtile)
    inputs = random_inputs(ref)
    want = reference(ref, inputs)
    m = lower(compute_module(expr, ins, out, rtile=rtile))
    (k,) = kernels(m)
    for order in ("normal", "reverse"):
        got, stats = run_lowered(m, inputs, order)
        np.testing.assert_allclose(got[0].astype(np.float64), want[0].astype(np.float64), rtol=tol, atol=tol)
        st = stats[k.sym_name]
        assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]
    return k


@pytest.mark.parametrize("bm,bn,bk", [(16, 16, 16), (32, 64, 32)])
def test_f16_matmul_wmma_ragged_edges(bm, bn, bk):
    rtile = {"block": {"m": bm, "n": bn}, "thread": {"m": 1, "n": 4}, "step": {"k": bk}}
    k = run(MATMUL, [T((70, 40), "f16"), T((40, 50), "f16")], T((70, 50), "f16"), rtile, 2e-2)
    assert k.attributes["kind"] == "tiled_mma" and k.attributes["config"]["mma"] == [16, 16, 16]


def test_bf16_batched_transposed_b():
    rtile = {"block": {"b": 1, "m": 32, "n": 16}, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}
    k = run("C[b, m, n] += A[b, m, k] * B[b, n, k]", [T((3, 40, 48), "bf16"), T((3, 24, 48), "bf16")],
            T((3, 40, 24), "bf16"), rtile, 5e-2)
    assert k.attributes["kind"] == "tiled_mma"


def test_k_major_a_and_unaligned_tiles_fall_back():
    rtile = {"block": {"m": 16, "n": 16}, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}
    k = run("C[m, n] += A[k, m] * B[k, n]", [T((33, 20), "f16"), T((33, 17), "f16")], T((20, 17), "f16"), rtile,
            2e-2)
    assert k.attributes["kind"] == "tiled_mma"
    rtile = {"block": {"m": 8, "n": 16}, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}
    k = run(MATMUL, [T((20, 32), "f16"), T((32, 16), "f16")], T((20, 16), "f16"), rtile, 2e-2)
    assert k.attributes["kind"] == "tiled"    # m tile of 8 is not an mma tile: CUDA cores


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_roller_aligns_half_matmul_tiles_to_the_mma_shape(dtype):
    ref = compute_module(MATMUL, [T((197, 768), dtype), T((768, 3072), dtype)], T((197, 3072), dtype))
    op = next(o for o in ref.walk() if o.name == "tile.compute")
    for c in construct_rtiles(TileProblem.of(op), get_arch("h200"), topk=8):
        b, s = dict(c.rtile.block), dict(c.rtile.step)
        assert b["m"] % 16 == 0 and b["n"] % 16 == 0 and s["k"] % 16 == 0, c.rtile
    get_pass("roller").apply(ref)
    get_pass("lower-cuda").apply(ref)
    assert kernels(ref)[0].attributes["kind"] == "tiled_mma"


def test_f32_matmul_is_not_forced_to_mma_alignment():
    ref = compute_module(MATMUL, [T((1, 64), "f32"), T((64, 40), "f32")], T((1, 40), "f32"))
    get_pass("roller").apply(ref)
    get_pass("lower-cuda").apply(ref)
    assert kernels(ref)[0].attributes["kind"] == "tiled"


@pytest.mark.parametrize("shape", [(128, 768, 768)])
def test_suite_f16_matmuls_compile_unspilled_for_sm90(shape, tmp_path):
    m_, k_, n_ = shape
    mod = compute_module(MATMUL, [T((m_, k_), "f16"), T((k_, n_), "f16")], T((m_, n_), "f16"))
    get_pass("roller").apply(mod)
    get_pass("lower-cuda").apply(mod)
    (k,) = kernels(mod)
    assert k.attributes["kind"] == "tiled_mma"
    info = parse_ptxas(nvcc_compile(emit_kernel(k), tmp_path))[k.sym_name]
    assert info.spill_bytes == 0 and info.registers <= 255


@pytest.mark.parametrize("arch,dtype,kind", [("v100", "bf16", "tiled"), ("v100", "f16", "tiled_mma"),
                                             ("a100", "bf16", "tiled_mma")])
def test_tensor_cores_only_where_the_arch_has_them_for_the_dtype(arch, dtype, kind):
    """V100 has f16 but no bf16 tensor cores: its bf16 matmul is neither aligned for nor lowered to wmma."""
    ref = compute_module(MATMUL, [T((128, 256), dtype), T((256, 128), dtype)], T((128, 128), dtype))
    get_pass("roller", arch=arch).apply(ref)
    op = next(o for o in ref.walk() if o.name == "tile.compute")
    assert op.attributes["estimate"]["arch"] == arch
    get_pass("lower-cuda").apply(ref)
    assert kernels(ref)[0].attributes["kind"] == kind


def test_an_mma_aligned_bf16_tile_from_v100_still_runs_on_cuda_cores():
    """Even a tile that happens to be mma-aligned stays off tensor cores when the op was tiled for V100."""
    rtile = {"block": {"m": 32, "n": 32}, "thread": {"m": 2, "n": 2}, "step": {"k": 16}}
    ref = compute_module(MATMUL, [T((64, 64), "bf16"), T((64, 64), "bf16")], T((64, 64), "bf16"), rtile=rtile,
                         estimate={"arch": "v100"})
    get_pass("lower-cuda").apply(ref)
    assert kernels(ref)[0].attributes["kind"] == "tiled"


@pytest.mark.parametrize("shape,dtype", [((4096, 4096, 4096), "f16"), ((1024, 768, 3072), "bf16"),
                                         ((512, 512, 512), "tf32")])
def test_roller_prices_the_engine_kernel_it_gets(shape, dtype):
    """Roller's estimate of a tensor-core tile on sm_80 is the mma engine's kernel (issue #17): the stages it
    records in the rTile and the shared memory and threads it prices are the lowered kernel's; a big GEMM
    keeps a 64x64 warp tile (a 128x64 block won on waves once the stages' shared memory cut occupancy,
    until the estimate read the engine's ldmatrix traffic by warp tile)."""
    from tilec.passes import get_pass
    m, n, k = shape
    t = "f32" if dtype == "tf32" else dtype
    module = compute_module(MATMUL, [T((m, k), t), T((k, n), t)], T((m, n), t))
    module.attributes["tilec.target"] = "a100"
    op = next(o for o in module.walk() if o.name == "tile.compute")
    if dtype == "tf32":
        op.attributes["precision"] = "tf32"
    get_pass("roller").apply(module)
    rtile, est = dict(op.attributes["rtile"]), dict(op.attributes["estimate"])
    (kern,) = kernels(lower(module))
    cfg, a = kern.attributes["config"], kern.attributes
    assert cfg["engine"] == "mma_sync" and rtile["stages"] == est["stages"] == cfg["stages"] >= 2
    assert est["smem_bytes"] == int(a.get("smem", 0)) + int(a.get("smem_static", 0))
    assert est["threads"] == kern.attributes["block"][0]
    if shape == (4096, 4096, 4096):
        bm, bn = cfg["block"]["m"], cfg["block"]["n"]
        assert (bm // cfg["warps"][0], bn // cfg["warps"][1]) == (64, 64)
