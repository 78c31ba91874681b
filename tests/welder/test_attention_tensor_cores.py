"""Attention on tensor cores (issue #17): an f16/bf16 attention chain on sm_80+ is one welder ``attention``
kernel with mma.sync m16n8k16, ldmatrix, a cp.async K/V pipeline and an online softmax on the accumulator
fragments (fusion/attention/mma.py). Run exactly under the emulator against numpy (f32 math on the same
half-precision inputs) in normal and reverse thread order: sequences that are not multiples of the tiles,
key and full masks, K given as Kᵀ or through a Transpose (element-wise copies), the head merge, head dims 16
to 128 (128: dynamic shared memory), and bytes equal to the model's."""
from __future__ import annotations

import json
import math

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, save

from tilec.driver import compile_model, run_target
from tilec.ir import read_ir

# (dtype, batch, heads, seq, head dim, mask: None | "keys" | "full" | "causal" | "leftpad", merge heads,
#  K as "kt" input | "k" + Transpose)
CASES = {
    "f16_kt_keys": ("f16", 1, 2, 64, 32, "keys", False, "kt"),
    "f16_odd_k_full_merge": ("f16", 1, 2, 37, 16, "full", True, "k"),
    "bf16_d128_ragged": ("bf16", 1, 1, 40, 128, None, False, "kt"),
    # -inf masks: causal (B,1,S,S); left padding (B,1,1,S) that masks all of the first 64-key chunk
    "f16_causal_inf": ("f16", 1, 2, 80, 32, "causal", False, "kt"),
    "f16_leftpad_inf_merge": ("f16", 2, 2, 100, 16, "leftpad", True, "k"),
}
ONNX_T = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
TOL = {"f16": 4e-3, "bf16": 3e-2}   # P is rounded to the operand type before ·V: ~2^-11 / 2^-8 relative


def _np(dtype: str):
    return np.float16 if dtype == "f16" else ml_dtypes.bfloat16


def _round(x, dtype: str) -> np.ndarray:
    """``x`` rounded to f16 / bf16 (nearest even), as f32."""
    return np.asarray(x, np.float32).astype(_np(dtype)).astype(np.float32)


def _model(d, dtype, b, h, s, hd, mask, merge, kmode) -> tuple:
    t = ONNX_T[dtype]
    kname, kshape = ("kt", [b, h, hd, s]) if kmode == "kt" else ("k", [b, h, s, hd])
    ins = [helper.make_tensor_value_info("q", t, [b, h, s, hd]), helper.make_tensor_value_info(kname, t, kshape),
           helper.make_tensor_value_info("v", t, [b, h, s, hd])]
    nodes = [] if kmode == "kt" else [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2])]
    nodes += [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"])]
    rng = np.random.default_rng(s * 7 + hd)
    q, k, v = (_round(rng.standard_normal((b, h, s, hd)), dtype) for _ in range(3))
    feeds = {"q": q, kname: k.transpose(0, 1, 3, 2).copy() if kmode == "kt" else k, "v": v}
    scale = _round(np.array([math.sqrt(hd)]), dtype)
    scores = (q @ k.transpose(0, 1, 3, 2)) / scale[0]
    last = "sd"
    if mask:
        mshape = [b, 1, 1, s] if mask in ("keys", "leftpad") else [b, 1, s, s]
        if mask == "causal":
            m = np.broadcast_to(np.triu(np.full((s, s), -np.inf, np.float32), 1), mshape).copy()
        elif mask == "leftpad":
            m = np.broadcast_to(np.where(np.arange(s) < 70, -np.inf, 0.0).astype(np.float32), mshape).copy()
        else:
            m = _round(np.where(rng.random(mshape) < 0.3, -10000.0, 0.0), dtype)
        ins.append(helper.make_tensor_value_info("mask", t, mshape))
        nodes.append(helper.make_node("Add", ["sd", "mask"], ["sm"]))
        feeds["mask"], scores, last = m, scores + m, "sm"
    nodes += [helper.make_node("Softmax", [last], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    p = np.exp(scores - scores.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    out, oshape = "o", [b, h, s, hd]
    if merge:
        nodes.append(helper.make_node("Transpose", ["o"], ["om"], perm=[0, 2, 1, 3]))
        out, oshape, ref = "om", [b, s, h, hd], ref.transpose(0, 2, 1, 3)
    init = helper.make_tensor("scale", t, [1], scale.astype(_np(dtype)).view(np.uint16).tobytes(), raw=True)
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info(out, t, oshape)], [init])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "m.onnx"))
    return {n: x.astype(_np(dtype)) for n, x in feeds.items()}, ref


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    dtype, *shape = CASES[request.param]
    feeds, ref = _model(d, dtype, *shape)
    np.savez(d / "in.npz", **feeds)
    compile_model(str(d / "m.onnx"), str(d / "b"), pipeline="welder", arch="a100", check_ptx=True)
    return d, dtype, ref


def _attention_func(build):
    funcs = [op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"]
    att = [f for f in funcs if f.attributes.get("kind") == "attention"]
    assert len(att) == 1, [f.attributes.get("kind") for f in funcs]
    return att[0]


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_tensor_core_attention_matches_numpy(built, order):
    d, dtype, ref = built
    run_and_check(d, dtype, ref, order)


def run_and_check(d, dtype: str, ref, order: str):
    """Run build ``d/b`` on ``d/in.npz`` in the emulator (thread order ``order``), check its output against
    ``ref`` and every kernel's bytes against its model; the output (f32)."""
    run_target(str(d / "b"), str(d / "in.npz"), str(d / f"o-{order}.npz"), backend="emu",
               report_path=str(d / f"r-{order}.json"), emu_order=order)
    got = np.load(d / f"o-{order}.npz")
    got = got[got.files[0]]
    got = (got.view(_np(dtype)) if got.dtype.kind == "V" else got).astype(np.float32)   # npz: bf16 as raw records
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=TOL[dtype] * float(np.abs(ref).max()), rtol=0)
    for k in json.load(open(d / f"r-{order}.json"))["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k
    return got


def test_kernel_is_the_tensor_core_one_and_passes_ptxas(built):
    d, dtype, _ = built
    func = _attention_func(d / "b")
    src = func.attributes["source"]
    assert func.attributes["config"]["engine"] == "mma_sync"
    assert f"tl_mma_m16n8k16_{dtype}f32" in src and "tl_ldmatrix_x4_trans" in src and "tl_cp_async_commit" in src
    assert "tl_pack_b16x2" in src   # P goes from the S accumulators to the A fragment in registers
    report = json.load(open(d / "b" / "report.json"))
    assert report["ptxas_checked"]
    for k in report["kernels"]:
        assert k["ptxas"]["spill_bytes"] == 0, k


def test_head_dim_128_takes_dynamic_shared_memory(built):
    d, dtype, _ = built
    func = _attention_func(d / "b")
    hd = func.attributes["params"][0]["shape"][-1]
    if hd != 128:
        pytest.skip("head dim below 128: static shared memory")
    assert func.attributes["smem"] > 48 * 1024 and func.attributes.get("smem_static", 0) == 0


def test_f32_model_under_precision_fp16_takes_the_tensor_core_kernel(tmp_path):
    """``--precision fp16`` casts Q, K, V and P to f16 around the contractions (passes/precision.py): the
    chain, the casts of P and of O back to f32 included, is still one tensor-core attention kernel. The graph
    rounds S to f16; the kernel keeps S in f32, so it is at least as close to the f32 result as the graph."""
    rng = np.random.default_rng(5)
    b, h, s, hd = 1, 2, 48, 32
    feeds = {"q": rng.standard_normal((b, h, s, hd)), "kt": rng.standard_normal((b, h, hd, s)),
             "v": rng.standard_normal((b, h, s, hd))}
    feeds = {n: x.astype(np.float32) for n, x in feeds.items()}
    f = TensorProto.FLOAT
    ins = [helper.make_tensor_value_info(n, f, list(x.shape)) for n, x in feeds.items()]
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"]),
             helper.make_node("Softmax", ["sd"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    init = helper.make_tensor("scale", f, [1], [math.sqrt(hd)])
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info("o", f, [b, h, s, hd])], [init])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    np.savez(tmp_path / "in.npz", **feeds)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch="a100", precision="fp16")
    func = _attention_func(tmp_path / "b")
    assert func.attributes["config"]["engine"] == "mma_sync"
    # the cast of O back to f32 is stored through: the kernel's output is the model's f32 output
    assert [p["dtype"] for p in func.attributes["params"] if p["role"] == "out"] == ["f32"]
    run_target(str(tmp_path / "b"), str(tmp_path / "in.npz"), str(tmp_path / "o.npz"), backend="emu")
    q, kt, v = (_round(feeds[n], "f16") for n in ("q", "kt", "v"))
    sc = q @ kt / np.float32(math.sqrt(hd))
    p = np.exp(sc - sc.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    got = np.load(tmp_path / "o.npz")["o"]
    np.testing.assert_allclose(got, ref, atol=TOL["f16"] * float(np.abs(ref).max()), rtol=0)


def test_pre_sm80_keeps_half_attention_unfused(tmp_path):
    """V100 has no mma.sync m16n8k16 / cp.async: the f16 chain is not an attention group (the f32 kernel
    computes in f32 only), and the build still compiles."""
    _model(tmp_path, "f16", 1, 2, 32, 16, None, False, "kt")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch="v100")
    kinds = [op.attributes.get("kind") for op in read_ir(str(tmp_path / "b" / "model.tir")).body.ops
             if op.name == "kernel.func"]
    assert "attention" not in kinds
