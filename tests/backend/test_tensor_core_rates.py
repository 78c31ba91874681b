"""Every tensor-core kernel family is priced on its tensor cores (issues #18/#21, analysis/latency.py): the
wgmma engine's GEMM and conv, the mma.sync engine's GEMM (f16, bf16, tf32) and conv, wmma (V100), MFMA (AMD),
the wgmma and mma.sync attention kernels and the wgmma MLP. Each lowering says so with the kernel's
``tensor_core`` attribute (the type its products run in); the model's compute term of a known kernel is then
its FLOPs over the spec's tensor-core peak of that type, by the model's own formula (its busiest SM's share, at
the SM's share of the chip's peak, over the schedulers its warps fill). A kernel that lost the attribute (or
names the wrong type) is priced on FFMA or at the wrong peak, and :func:`assert_tensor_rate` says so."""
from __future__ import annotations

import math

import numpy as np
import pytest
from lower_harness import compute_module, kernels, lower  # noqa: E402
from onnx import TensorProto, helper, numpy_helper, save
from test_mma_conv import model as conv_model  # noqa: E402

from tilec.analysis import latency
from tilec.analysis import speed_of_light as sol
from tilec.analysis.hardware import get_arch
from tilec.driver import compile_model
from tilec.ir import TensorType as T
from tilec.ir import read_ir

MATMUL = "C[m, n] += A[m, k] * B[k, n]"
RTILE = {"block": {"m": 64, "n": 64}, "thread": {"m": 4, "n": 4}, "step": {"k": 32}}
ONNX_T = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}


def assert_tensor_rate(spec, func, dtype: str) -> None:
    """``func``'s modelled compute term is its FLOPs at ``spec``'s ``dtype`` tensor-core peak: the term is
    named ``tensor_<dtype>``, no FFMA term is left, and its seconds are the model's formula worked here."""
    row = {"smem_static": func.attributes.get("smem_static", 0), "smem_dynamic": func.attributes.get("smem", 0)}
    load = latency.kernel_load(spec, func, row)
    est = latency.estimate(spec, load)
    peak = spec.tensor_core_flops(dtype)
    assert peak > 0 and load.flops > 0
    assert load.tensor and load.dtype == dtype, (load.tensor, load.dtype)
    assert "ffma" not in est.terms and f"tensor_{dtype}" in est.terms, sorted(est.terms)
    S, B = spec.num_sms, load.blocks
    busiest = math.ceil(B / S)
    warps = min(est.per_sm, busiest) * math.ceil(load.threads / spec.warp_size)
    lanes = min(1.0, warps / spec.sm_partitions) * load.threads / (math.ceil(load.threads / spec.warp_size)
                                                                  * spec.warp_size)
    want = load.flops * busiest / B / (peak / S * lanes)
    assert est.terms[f"tensor_{dtype}"] == pytest.approx(want, rel=1e-9)


def _gemm(arch: str, dtype: str, m=256, n=256, k=256, **attrs):
    (func,) = kernels(lower(compute_module(MATMUL, [T((m, k), dtype), T((k, n), dtype)], T((m, n), dtype),
                                           rtile=RTILE, estimate={"arch": arch}, **attrs)))
    assert func.attributes["flops"] == 2 * m * n * k
    return func


# (arch, operand type, tensor-core type, the config's engine; None: the wmma kernel, which names none)
GEMMS = {
    "wgmma_f16_h200": ("h200", "f16", "f16", "wgmma"),
    "wgmma_bf16_h100": ("h100", "bf16", "bf16", "wgmma"),
    "mma_sync_f16_a100": ("a100", "f16", "f16", "mma_sync"),
    "mma_sync_bf16_a100": ("a100", "bf16", "bf16", "mma_sync"),
    "mma_sync_tf32_a100": ("a100", "f32", "tf32", "mma_sync"),
    "wmma_f16_v100": ("v100", "f16", "f16", None),
    "mfma_f16_mi250x": ("mi250x", "f16", "f16", "mfma"),
    "mfma_bf16_mi300x": ("mi300x", "bf16", "bf16", "mfma"),
}


@pytest.mark.parametrize("case", sorted(GEMMS))
def test_engine_gemms_run_at_the_tensor_peak_of_their_type(case):
    arch, dtype, tc, engine = GEMMS[case]
    func = _gemm(arch, dtype, **({"precision": "tf32"} if tc == "tf32" else {}))
    assert func.attributes["kind"] == "tiled_mma" and func.attributes["config"].get("engine") == engine
    assert func.attributes["tensor_core"] == tc
    assert_tensor_rate(get_arch(arch), func, tc)


def _funcs(build) -> list:
    return [op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"]


# An f32 model under --precision fp16 keeps f32 params (the input, the bias): its products are f16 all the
# same (the model used to take the params' type and price them at the tf32 peak, half f16's).
@pytest.mark.parametrize("arch,engine,dtype,precision", [("a100", "mma_sync", "f16", None),
                                                         ("h200", "wgmma", "f16", None),
                                                         ("a100", "mma_sync", "f32", "fp16"),
                                                         ("h200", "wgmma", "f32", "fp16")])
def test_engine_convs_run_at_the_tensor_peak(tmp_path, arch, engine, dtype, precision):
    conv_model(tmp_path, 2, 32, 12, 12, 64, 3, 1, 1, dtype)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch=arch, pipeline="welder", precision=precision)
    (func,) = [f for f in _funcs(tmp_path / "b") if f.attributes.get("kind") == "tiled_mma"]
    assert func.attributes["config"]["engine"] == engine and "implicit_gemm" in func.attributes["config"]
    assert_tensor_rate(get_arch(arch), func, "f16")


def _attention(path, dtype: str, heads: int, seq: int, hd: int) -> None:
    """softmax(Q·Kᵀ)·V on [1, heads, seq, hd] inputs of ``dtype``."""
    t = ONNX_T[dtype]
    ins = [helper.make_tensor_value_info(n, t, [1, heads, seq, hd]) for n in ("q", "k", "v")]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["o"])]
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info("o", t, [1, heads, seq, hd])])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


# (arch, dtype, head dim, engine): hd 32 on sm_90 has no whole wgmma atom, so it keeps mma.sync
ATTENTION = {"wgmma_f16_h200": ("h200", "f16", 64, "wgmma"), "wgmma_bf16_h200": ("h200", "bf16", 128, "wgmma"),
             "mma_sync_f16_a100": ("a100", "f16", 64, "mma_sync"), "mma_sync_f16_h200": ("h200", "f16", 32, "mma_sync")}


@pytest.mark.parametrize("case", sorted(ATTENTION))
def test_attention_runs_at_the_tensor_peak(tmp_path, case):
    arch, dtype, hd, engine = ATTENTION[case]
    _attention(tmp_path / "m.onnx", dtype, 2, 64, hd)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch=arch, pipeline="welder")
    (func,) = [f for f in _funcs(tmp_path / "b") if f.attributes.get("kind") == "attention"]
    assert func.attributes["config"]["engine"] == engine
    assert_tensor_rate(get_arch(arch), func, dtype)


@pytest.mark.parametrize("np_dtype,precision", [(np.float16, None), (np.float32, "fp16")])
def test_the_wgmma_mlp_runs_at_the_tensor_peak(tmp_path, np_dtype, precision):
    rng = np.random.default_rng(0)
    w1, b1, w2 = (numpy_helper.from_array((rng.standard_normal(s) / 8).astype(np_dtype), n)
                  for n, s in (("w1", (64, 256)), ("b1", (256,)), ("w2", (256, 64))))
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "w1"], ["h0"]), mk("Add", ["h0", "b1"], ["h1"]), mk("Relu", ["h1"], ["h"]),
             mk("MatMul", ["h", "w2"], ["y"])]
    t = TensorProto.FLOAT16 if np_dtype == np.float16 else TensorProto.FLOAT
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, [150, 64])],
                              [helper.make_tensor_value_info("y", t, [150, 64])], [w1, b1, w2])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch="h200", pipeline="welder", precision=precision)
    (func,) = [f for f in _funcs(tmp_path / "b") if f.attributes.get("kind") == "mlp"]
    assert func.attributes["config"]["engine"] == "wgmma"
    assert_tensor_rate(get_arch("h200"), func, "f16")


def test_a_mispriced_kernel_fails_the_check():
    """The check is not vacuous: the same wgmma kernel without its attribute is an FFMA kernel to the model
    (what the attention kernels were), and one that names tf32 for its f16 products runs at half the peak."""
    h200 = get_arch("h200")
    func = _gemm("h200", "f16")
    fast = latency.kernel_seconds(h200, func, {"smem_dynamic": func.attributes["smem"]})
    func.attributes["tensor_core"] = "tf32"
    with pytest.raises(AssertionError):
        assert_tensor_rate(h200, func, "f16")
    del func.attributes["tensor_core"]
    with pytest.raises(AssertionError):
        assert_tensor_rate(h200, func, "f16")
    load = latency.kernel_load(h200, func, {"smem_dynamic": func.attributes["smem"]})
    assert not load.tensor and "ffma" in latency.estimate(h200, load).terms
    assert latency.kernel_seconds(h200, func, {"smem_dynamic": func.attributes["smem"]}) > fast


def test_the_speed_of_light_of_a_tensor_core_kernel_is_its_types_peak():
    """A tf32 GEMM (f32 operands) is bounded by the tf32 tensor peak, not FFMA's: its modelled time on tensor
    cores must not beat its speed of light. An f32 kernel on CUDA cores keeps the FFMA peak."""
    a100 = get_arch("a100")
    tf32 = _gemm("a100", "f32", 512, 512, 512, precision="tf32")
    assert sol.kernel_peak(a100, tf32) == a100.tf32_tensor_flops
    assert latency.kernel_seconds(a100, tf32, {"smem_dynamic": tf32.attributes.get("smem", 0),
                                               "smem_static": tf32.attributes.get("smem_static", 0)}) \
        >= sol.kernel_seconds(a100, tf32)
    tf32.attributes.pop("tensor_core")
    assert sol.kernel_peak(a100, tf32) == a100.fp32_flops
