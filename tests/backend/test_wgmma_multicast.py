"""TMA multicast in the wgmma GEMM engine (issue #21; lower/wgmma_engine.py, analysis/wgmma_shape.clustered):
pairs of blocks along N form 2-block thread-block clusters that share the A tile, each loading half of its rows
with multicast to both. Under the emulator (exact multicast and cluster semantics, docs/hopper.md) against numpy
in f16 and bf16, ragged M/N, batched, two consumer warpgroups and the persistent scheduler, with global bytes
measured == modelled (A once per cluster); chosen only where the n tiles come in whole clusters and A is
K-major; each way to get the cluster protocol wrong fails; sm_90a (ptxas and NVRTC) without spills, and the
SASS issues UTMALDG.MULTICAST."""
import dataclasses
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_wgmma_engine as W  # noqa: E402
from lower_harness import compute_module, disassembler_found, random_inputs, reference  # noqa: E402

from tilec.analysis import wgmma_shape  # noqa: E402
from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.lower import wgmma_engine  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402

GEMM = "C[m, n] += A[m, k] * B[k, n]"


def unclustered_bytes(a_shape, b_shape, out_shape, bm, bn, elem):
    """modelled_bytes of the plain kernel: A once per n tile, B once per m tile, the output once."""
    nb = math.prod(out_shape[:-2])
    m, n = out_shape[-2:]
    k = a_shape[-1]
    gm, gn = -(-m // bm), -(-n // bn)
    return nb * gn * m * k * elem + nb * gm * k * n * elem + math.prod(out_shape) * elem


@pytest.mark.parametrize("expr,a_shape,b_shape,dtype,tile,shared,orders", [
    # A shared along N (three m tiles: no m pairs), M and N ragged, 9 k tiles through 4 stages
    (GEMM, (136, 520), (520, 80), "f16", (64, 64), "a", ("normal", "reverse", "shuffle")),
    # B shared along M (N's 80 columns beat M's 72 rows), B n-contiguous: its boxes split by k rows
    (GEMM, (72, 520), (520, 80), "f16", (64, 64), "b", ("normal", "reverse", "shuffle")),
    # A m-contiguous ([k][m]), shared along N: split by k rows too
    ("C[m, n] += A[k, m] * B[n, k]", (320, 136), (128, 320), "f16", (64, 64), "a", ("normal", "shuffle")),
    ("C[b, m, n] += A[b, m, k] * B[n, k]", (3, 40, 48), (100, 48), "bf16", (64, 64), "a", ("normal", "shuffle")),
    # B K-major ([n][k]) shared along M in a batch (m pairs inside each batch)
    ("C[b, m, n] += A[b, m, k] * B[n, k]", (2, 100, 64), (120, 64), "bf16", (64, 64), "b", ("shuffle",)),
    (GEMM, (136, 320), (320, 248), "f16", (128, 128), "b", ("shuffle",)),   # two consumer warpgroups (setmaxnreg)
])
def test_multicast_engine_matches_numpy(monkeypatch, expr, a_shape, b_shape, dtype, tile, shared, orders):
    monkeypatch.setattr(wgmma_engine, "TILES", (tile,))
    n = b_shape[-1] if "B[k" in expr else b_shape[0]
    m = a_shape[-2] if "A[b, m" in expr or "A[m" in expr else a_shape[-1]
    kk = a_shape[-1] if "A[b, m" in expr or "A[m" in expr else a_shape[0]
    out_shape = a_shape[:-2] + (m, n)
    k = W.run(expr, [T(a_shape, dtype), T(b_shape, dtype)], T(out_shape, dtype), W.TOL[dtype], orders=orders)
    a = k.attributes
    assert a["cluster"] == 2 and a["config"]["cluster"] == {"n" if shared == "a" else "m": 2}
    assert a["config"]["multicast"] == shared.upper()
    src = emit_kernel(k)
    assert "__cluster_dims__(2, 1, 1)" in src and f"k_tma{0 if shared == 'a' else 1}, &k_full[k_s], 0x3" in src
    # the bytes the run measured: the shared operand read once per cluster of two blocks
    nb, gm, gn = math.prod(out_shape[:-2]), -(-m // tile[0]), -(-n // tile[1])
    plain = nb * gn * m * kk * 2 + nb * gm * kk * n * 2 + math.prod(out_shape) * 2
    saved = nb * gn // 2 * m * kk * 2 if shared == "a" else nb * gm // 2 * kk * n * 2
    assert a["bytes_modelled"] == plain - saved


def test_multicast_only_where_the_tiles_make_whole_clusters():
    spec = get_arch("h200")
    mt = {"m": "m", "n": "n", "k": "k", "batch": [], "a_kmajor": False, "b_nmajor": False, "dtype": "f16"}
    cfg = wgmma_shape.with_stages(spec, mt, 64, 64)

    def shape(m, n, k=256, s=spec, c=cfg):
        out = wgmma_shape.clustered(s, mt, {"m": m, "n": n, "k": k}, c)
        return (out.cluster, out.shared)
    assert shape(192, 256) == (2, "a")     # three m tiles: A along N
    assert shape(256, 192) == (2, "b")     # three n tiles: B along M
    assert shape(256, 256) == (2, "a")     # both pair up, the same bytes: A
    assert shape(72, 80) == (2, "b")       # both pair up: B's 80 columns save more than A's 72 rows
    assert shape(80, 72) == (2, "a")
    assert shape(192, 192) == (1, "a")     # neither pairs up
    assert shape(64, 64) == (1, "a")
    assert shape(256, 256, s=dataclasses.replace(spec, max_cluster_blocks=1)) == (1, "a")
    # the persistent grid is whole clusters: an odd SM count drops one block
    odd = dataclasses.replace(spec, num_sms=131)
    big = {"m": 4096, "n": 4096, "k": 4096}
    plain = wgmma_shape.plan(odd, mt, big, "f16")
    assert wgmma_shape.persistent_grid(odd, mt, big, plain) == 131
    assert wgmma_shape.persistent_grid(odd, mt, big, wgmma_shape.clustered(odd, mt, big, plain)) == 130
    # lowered: one m tile and three n tiles give the plain kernel
    _, k = W.lowered(GEMM, [T((64, 128), "f16"), T((128, 192), "f16")], T((64, 192), "f16"))
    assert "cluster" not in k.attributes and "multicast" not in k.attributes["source"]


def test_persistent_scheduler_keeps_a_cluster_on_paired_tiles(monkeypatch):
    """16 tiles on a grid of whole clusters (3 resident blocks rounded down to 2): blocks 2j and 2j + 1 take
    paired tiles (here the two m tiles of one n tile: B is shared) at every step, the stages running on from
    tile to tile."""
    from tilec.backend.lower import tiled_mma
    small = dataclasses.replace(get_arch("h200"), num_sms=1)
    monkeypatch.setattr(tiled_mma, "tiled_for", lambda ctx: small)
    monkeypatch.setattr(wgmma_engine, "TILES", ((64, 64),))
    k = W.run(GEMM, [T((200, 256), "f16"), T((256, 256), "f16")], T((200, 256), "f16"), W.TOL["f16"],
              orders=("shuffle", "reverse"))
    per = k.attributes["config"]["persistent"]
    assert k.attributes["grid"][0] == per["blocks"] == 2 and per["tiles"] == 16 and k.attributes["cluster"] == 2
    assert k.attributes["config"]["multicast"] == "B"


def _launch(k, inputs, src: str, order: str):
    emu = pytest.importorskip("tilec.backend.emu")
    from tilec.runtime.tensor_map import from_attr
    a = k.attributes
    args = [np.ascontiguousarray(x) for x in inputs] + [np.zeros(a["params"][-1]["shape"], np.float16)]
    args += [from_attr(t, args[t["arg"]].ctypes.data).emu_bytes() for t in a["tensor_maps"]]
    emu.EmuModule(src).launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), args, smem_bytes=a["smem"],
                              smem_optin=a["smem"], order=order)
    return args[2]


RELEASE = "tl_mbarrier_arrive_cluster(&k_empty[(j + 3) % 4], k_lane)"
INIT = ("  if (k_tid == 0) {\n    for (int i = 0; i < 4; ++i) {\n      tl_mbarrier_init(&k_full[i], 1);   // the producer's "
        "arrive.expect_tx; the TMA bytes complete it\n      tl_mbarrier_init(&k_empty[i], 8);   // every consumer warp "
        "of every block of the cluster releases the stage\n    }\n    tl_mbarrier_init_fence();\n  }\n")
SYNC = "  tl_cluster_sync();   // every block's barriers exist before a peer's multicast or remote arrive reaches them\n"


@pytest.mark.parametrize("old,new,order,error", [
    # each stage released only locally: a producer refills a stage its peer's wgmma still reads (the
    # emulator's schedule is deterministic per order; normal order runs the refill into that window)
    (RELEASE, "tl_mbarrier_arrive(&k_empty[(j + 3) % 4])", "normal", "changed before the wait"),
    ("&& k_lane < 2)", "&& k_lane < 1)", "shuffle", "deadlock"),            # block 1's consumers never release
    ("0x3, kt * 64", "0x1, kt * 64", "reverse", "deadlock"),               # block 1 never gets its A rows
    ("STAGE);   // the whole", "STAGE + 16);   // the whole", "normal", "deadlock"),   # wrong expect_tx
    ("tl_cluster_sync();   // every block's barriers", "__syncthreads();   // every block's barriers", "shuffle",
     "before any tl_cluster_sync"),                                          # a peer's barrier may not exist yet
    # no fence.mbarrier_init: a peer's multicast may reach a barrier whose init it cannot see yet
    ("    tl_mbarrier_init_fence();\n", "", "normal", "issued no tl_mbarrier_init_fence"),
    # the init after the cluster barrier (a __syncthreads after it): the same race, in every order
    (INIT + SYNC, SYNC + INIT + "  __syncthreads();\n", "reverse", "no tl_cluster_sync opened after the init"),
    ("for (int i = 0; i < 4; ++i) {   // the producer tail", "for (int i = 0; i < 0; ++i) {   // the producer tail",
     "normal", "peer that has exited"),                                      # no producer tail
])
def test_multicast_mistakes_fail_under_the_emulator(old, new, order, error):
    """9 k tiles through 4 stages in a cluster of 2: the correct kernel matches numpy; each mistake fails."""
    emu = pytest.importorskip("tilec.backend.emu")
    ins, out = [T((136, 520), "f16"), T((520, 80), "f16")], T((136, 80), "f16")   # A shared along N
    m, k = W.lowered(GEMM, ins, out)
    inputs = random_inputs(m)
    want = reference(compute_module(GEMM, ins, out, rtile=W.RTILE), inputs)[0].astype(np.float64)
    src = emit_kernel(k)
    assert old in src and k.attributes["cluster"] == 2
    np.testing.assert_allclose(_launch(k, inputs, src, order).astype(np.float64), want,
                               rtol=W.TOL["f16"], atol=W.TOL["f16"] * np.abs(want).max())
    with pytest.raises(emu.EmuError, match=error):
        _launch(k, inputs, src.replace(old, new), order)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
@pytest.mark.parametrize("dtype,m,k,n,shared", [
    ("f16", 512, 512, 512, "A"), ("bf16", 512, 512, 512, "A"),
    ("f16", 1024, 256, 192, "B"),   # three n tiles: B shared along M, its n-contiguous boxes split by k rows
])
def test_multicast_gemm_compiles_for_sm_90a_with_multicast_loads(tmp_path, dtype, m, k, n, shared):
    """GEMMs on h200 in clusters of 2: ptxas (--check-ptx, sm_90a) and NVRTC (--check-nvrtc) accept them with
    0 spills; their SASS loads the shared operand with UTMALDG.MULTICAST after a cluster barrier."""
    from tilec.driver import compile_model
    from tilec.ir import read_ir
    W._gemm_onnx(tmp_path / "g.onnx", n, dtype, m=m, k=k)
    compile_model(str(tmp_path / "g.onnx"), str(tmp_path / "b"), arch="h200", check_ptx=True, check_nvrtc=True)
    (row,) = json.load(open(tmp_path / "b" / "report.json"))["kernels"]
    assert row["ptxas"]["spill_bytes"] == 0
    (func,) = [op for op in read_ir(str(tmp_path / "b" / "model.tir")).body.ops if op.name == "kernel.func"]
    assert func.attributes["config"]["multicast"] == shared
    (cu,) = (tmp_path / "b" / "kernels").glob("*.cu")
    assert "__cluster_dims__(2, 1, 1)" in cu.read_text()
    if not disassembler_found():
        pytest.skip("needs cuobjdump/nvdisasm for the SASS checks")
    from tilec.backend.inspect_build import find_disassembler
    tool, path = find_disassembler()
    (cubin,) = (tmp_path / "b" / "kernels").glob("*.cubin")
    sass = subprocess.run([path, "-sass" if tool == "cuobjdump" else "-c", str(cubin)], capture_output=True,
                          text=True, check=True).stdout
    assert "UTMALDG.2D.MULTICAST" in sass and "UCGABAR_WAIT" in sass


@pytest.mark.parametrize("dtype,x_shape,n,act,residual,out", [
    ("f16", (96, 64), 512, "Gelu", True, None),        # bias, GELU, residual on the accumulators
    ("bf16", (2, 40, 64), 256, "Relu", False, "f32"),  # bf16, batch folded into m, a Cast to f32 stored
])
def test_fused_epilogue_with_multicast(tmp_path, dtype, x_shape, n, act, residual, out):
    """Welder's fused epilogues on a multicast kernel (every engine tile gives an even number of n tiles here),
    through the executor with plan.json's tensor maps, A's bytes once per cluster."""
    from test_mma_engine_fused import build, run_emu
    build_dir, ins, want = build(tmp_path, dtype, x_shape, n, act, residual, out, arch="h200")
    tir = open(build_dir / "model.tir").read()
    assert 'engine = "wgmma"' in tir and "fused_epilogue" in tir and "cluster = 2" in tir
    got, rep = run_emu(tmp_path, build_dir, ins, dtype)
    np.testing.assert_allclose(got, want, rtol=W.TOL[dtype], atol=W.TOL[dtype] * np.abs(want).max())
    (rk,) = rep["kernels"]
    assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


def test_tf32_with_multicast(monkeypatch):
    """An f32 product marked tf32 (wgmma k8, K-major operands, k tiles of 32): A's 64 rows split between the
    two blocks of each cluster, exact to the truncated inputs, bytes measured == modelled."""
    from lower_harness import kernels, lower, run_lowered
    monkeypatch.setattr(wgmma_engine, "TILES", ((64, 64),))
    expr, ins, out = "C[m, n] += A[m, k] * B[n, k]", [T((72, 100), "f32"), T((200, 100), "f32")], T((72, 200), "f32")
    attrs = {"rtile": W.RTILE, "precision": "tf32"}
    ref = compute_module(expr, ins, out, **attrs)
    m = lower(compute_module(expr, ins, out, **attrs))
    (k,) = kernels(m)
    assert k.attributes["cluster"] == 2 and "tl_wgmma_tf32<" in k.attributes["source"]
    x = random_inputs(ref)
    trunc = [(v.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32) for v in x]
    want = reference(ref, trunc)[0].astype(np.float64)
    got, stats = run_lowered(m, x, "shuffle")
    np.testing.assert_allclose(got[0].astype(np.float64), want, rtol=0, atol=1e-5 * np.abs(want).max())
    st = stats[k.sym_name]
    assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]


def test_rammer_and_grinder_refuse_a_multicast_kernel():
    """Its blocks reach each other's shared memory, so it cannot run on virtual block indices: no one-block twin
    (no bytes_unclustered) and no rTask, as for any cluster or dynamic-shared-memory kernel."""
    from tilec.backend.lower.cluster import declustered
    from tilec.passes.rammer import kernel_member
    _, k = W.lowered(GEMM, [T((72, 136), "f16"), T((136, 80), "f16")], T((72, 80), "f16"))
    assert k.attributes["cluster"] == 2
    assert declustered(k) is None and kernel_member(k, 0) is None
