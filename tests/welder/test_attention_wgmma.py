"""Attention on wgmma for sm_90 (issue #21, fusion/attention/wgmma.py): an f16/bf16 attention chain with head
dims 64 or 128 on h200 is one welder ``attention`` kernel whose S = Q·Kᵀ is wgmma with both operands in
shared memory and whose O += P·V takes P from registers (the ``_rs`` form). Run exactly under the emulator
against numpy (f32 math on the same half-precision inputs), and f16 models against onnxruntime, for
sequences 64..256 that are and are not multiples of the tiles, both head dims, both types, masks, the head
merge, and K and V stored either way round (K-major and MN-major descriptors); bytes equal the model's. ptxas (sm_90a) gives 0 spills, no
injected wgmma wait (C7517), and SASS with HGMMA for both products: d/16 from shared memory and bk/16 with
A from registers per K/V chunk. A wrong expect_tx or a missing wgmma wait, made in the built kernel, fails
under the emulator. Head dims that are not whole 128-byte atoms, and sm_80, keep mma.sync."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, save
from test_attention_tensor_cores import TOL, _attention_func, _model, _np, _round, run_and_check

from tilec.driver import compile_model, run_target

# (dtype, batch, heads, seq, head dim, mask, merge heads, K as "kt" input | "k" + Transpose | "einsum").
# K/V come by TMA boxes where every row is whole 16-byte chunks (Kᵀ [.., d, seq] needs seq % 8 == 0), by
# cp.async otherwise.
CASES = {
    "f16_s64_d64": ("f16", 1, 2, 64, 64, None, False, "k"),
    "bf16_s256_d128_causal": ("bf16", 1, 1, 256, 128, "causal", False, "kt"),
    "f16_s100_d128_keys_merge": ("f16", 1, 2, 100, 128, "keys", True, "kt"),
    "bf16_s130_d64_leftpad_merge": ("bf16", 2, 1, 130, 64, "leftpad", True, "k"),
    "f16_s96_d64_einsum": ("f16", 1, 2, 96, 64, None, False, "einsum"),
}

REVERSE = ("bf16_s256_d128_causal", "f16_s100_d128_keys_merge")   # one TMA, one cp.async case (CI time)


def _einsum_model(d, dtype, b, h, s, hd) -> tuple:
    """S = einsum(q, k) with K stored [key][d] (a K-major wgmma B) and O = einsum(p, vt) with V stored
    [d][key] (K-major too): the layouts the MatMul cases (Kᵀ and V MN-major) do not take."""
    t = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[dtype]
    rng = np.random.default_rng(s + hd)
    q, k, v = (_round(rng.standard_normal((b, h, s, hd)), dtype) for _ in range(3))
    feeds = {"q": q, "k": k, "vt": v.transpose(0, 1, 3, 2).copy()}
    ins = [helper.make_tensor_value_info(n, t, list(x.shape)) for n, x in feeds.items()]
    nodes = [helper.make_node("Einsum", ["q", "k"], ["s"], equation="bhid,bhjd->bhij"),
             helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("Einsum", ["p", "vt"], ["o"], equation="bhij,bhdj->bhid")]
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info("o", t, [b, h, s, hd])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "m.onnx"))
    sc = q @ k.transpose(0, 1, 3, 2)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    return {n: x.astype(_np(dtype)) for n, x in feeds.items()}, (p / p.sum(-1, keepdims=True)) @ v


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    dtype, b, h, s, hd, mask, merge, kmode = CASES[request.param]
    if kmode == "einsum":
        feeds, ref = _einsum_model(d, dtype, b, h, s, hd)
    else:
        feeds, ref = _model(d, dtype, b, h, s, hd, mask, merge, kmode)
    np.savez(d / "in.npz", **feeds)
    compile_model(str(d / "m.onnx"), str(d / "b"), pipeline="welder", arch="h200",
                  check_ptx=shutil.which("nvcc") is not None)
    return d, dtype, hd, ref, (s % 8 == 0 or kmode == "einsum")   # K/V rows whole 16-byte chunks: TMA


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_wgmma_attention_matches_numpy(built, order):
    d, dtype, _, ref, _ = built
    if order == "reverse" and not d.name.startswith(REVERSE):
        pytest.skip("reverse thread order: one TMA and one cp.async case")
    got = run_and_check(d, dtype, ref, order)
    if dtype == "f16" and order == "normal":   # onnxruntime's CPU kernels take f16 (not bf16) attention
        import onnxruntime as ort
        feeds = dict(np.load(d / "in.npz"))
        want = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        want = want.astype(np.float32)
        np.testing.assert_allclose(got, want, atol=TOL[dtype] * float(np.abs(want).max()), rtol=0)


def test_kernel_is_wgmma_with_p_from_registers(built):
    d, dtype, hd, _, tma = built
    func = _attention_func(d / "b")
    cfg, src = func.attributes["config"], func.attributes["source"]
    assert cfg["engine"] == "wgmma" and cfg["wgmma"][1] == [64, hd, 16], cfg
    fn = "tl_wgmma_bf16" if dtype == "bf16" else "tl_wgmma_f16"
    assert src.count(f"{fn}<") == hd // 16 and src.count(f"{fn}_rs<") == cfg["bk"] // 16
    assert "tl_mma_m16n8k16" not in src
    assert cfg["pipeline"] == ("tma" if tma else "cp.async")
    if tma:   # Q, K, V: a map each, boxes on two mbarriers; no cp.async, no generic-proxy writes to fence
        assert len(func.attributes["tensor_maps"]) == 3 and "tl_tma_load_" in src and "tl_cp_async" not in src
        # warp-specialised: a producer warpgroup in front of the consumers, registers moved to the consumers
        # where there are two of them (384 threads)
        assert cfg["producer"] and func.attributes["block"][0] == 128 * (cfg["warpgroups"] + 1)
        assert ("tl_setmaxnreg_inc<" in src) == ("tl_setmaxnreg_dec<" in src) == (cfg["warpgroups"] == 2)
    else:
        assert "tensor_maps" not in func.attributes and "tl_fence_proxy_async();" in src


def test_ptxas_sm90a_no_spills_and_hgmma_for_both_products(built):
    d, _, hd, _, _ = built
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed")
    func = _attention_func(d / "b")
    report = json.load(open(d / "b" / "report.json"))
    assert report["ptxas_checked"]
    row = next(k for k in report["kernels"] if k["name"] == func.attributes["sym_name"].name)
    assert row["ptxas"]["spill_bytes"] == 0 and row["ptxas"]["stack"] == 0, row
    cubin = d / "b" / "kernels" / f"{row['name']}.cubin"   # --check-ptx's, compiled for sm_90a
    if d.name.startswith("bf16_s256_d128"):   # ptxas' log once (a compile is seconds): no wait injected
        log = subprocess.run(["nvcc", "-arch=sm_90a", "-cubin", "-Xptxas", "-v", "-o", str(d / "k.cubin"),
                              str(cubin.with_suffix(".cu"))], capture_output=True, text=True)
        assert log.returncode == 0 and "C7517" not in log.stderr and "serializ" not in log.stderr, log.stderr
    from tilec.backend.inspect_build import find_disassembler
    from tilec.ir.diagnostics import CompileError
    try:
        tool = find_disassembler()
    except CompileError:
        pytest.skip("no cuobjdump/nvdisasm")
    sass = subprocess.run([tool[1], "-sass" if tool[0] == "cuobjdump" else "-c", str(cubin)],
                          capture_output=True, text=True, check=True).stdout
    if func.attributes["config"]["pipeline"] == "tma":   # K and V by TMA, one box per 64 columns of each
        assert re.search(r"UTMALDG\.\dD", sass) and "LDGSTS" not in sass
    ss = re.findall(r"HGMMA\.64x(\d+)x16\.F32(?:\.BF16)? R\d+, gdesc", sass)      # A and B from shared memory: S
    rs = re.findall(r"HGMMA\.64x(\d+)x16\.F32(?:\.BF16)? R\d+, R\d+, gdesc", sass)   # A from registers: O += P V
    bk = func.attributes["config"]["bk"]
    assert ss == [str(bk)] * (hd // 16) and rs == [str(hd)] * (bk // 16), (ss, rs)


@pytest.mark.parametrize("arch,hd,engine", [("h200", 32, "mma_sync"), ("a100", 64, "mma_sync"), ("h200", 64, "wgmma")])
def test_wgmma_only_on_sm90_with_whole_atoms(tmp_path, arch, hd, engine):
    _model(tmp_path, "f16", 1, 1, 64, hd, None, False, "kt")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch=arch)
    assert _attention_func(tmp_path / "b").attributes["config"]["engine"] == engine


# The kernel's synchronisation is what the emulator checks: each mistake below, made in the built kernel's
# source, fails the run instead of passing by luck (docs/hopper.md: a wrong expect_tx is a deadlock, an
# accumulator read before its wait is NaN).
MISTAKES = {
    "expect_tx": (r"(tl_mbarrier_arrive_expect_tx\(&k_full\[k_ps\], )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1024}"),
    "S wait": (r"tl_wgmma_commit\(\);\n(\s*)tl_wgmma_wait<0>\(\);", lambda m: f"tl_wgmma_commit();\n{m[1]}"),
}


@pytest.mark.parametrize("built", ["f16_s64_d64"], indirect=True)   # a TMA case
@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_a_synchronisation_mistake_fails_under_the_emulator(built, mistake, tmp_path):
    d, dtype, _, ref, tma = built
    assert tma
    build = tmp_path / "b"
    shutil.copytree(d / "b", build)
    cu = next(p for p in (build / "kernels").glob("*attention*.cu"))
    pattern, fix = MISTAKES[mistake]
    text, n = re.subn(pattern, fix, cu.read_text(), count=1)
    assert n == 1
    cu.write_text(text)
    for cubin in (build / "kernels").glob("*.cubin"):
        cubin.unlink()
    try:
        run_target(str(build), str(d / "in.npz"), str(tmp_path / "o.npz"), backend="emu")
    except Exception as e:   # the emulator's launch error: the deadlock names the barrier and its tx-count
        assert mistake == "expect_tx" and "deadlock" in str(e) and "tx-count" in str(e), e
        return
    got = np.load(tmp_path / "o.npz")
    got = got[got.files[0]].astype(np.float32)
    assert mistake == "S wait" and not np.allclose(got, ref, atol=TOL[dtype] * float(np.abs(ref).max())), mistake
