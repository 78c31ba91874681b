"""Welder's ``epilogue`` fusion kind on the sm_80 tensor-core engine (issue #17): an f16/bf16 contraction whose
elementwise members (bias add, activation, residual add, casts) run per lane on the mma accumulators before
the store. Built through the welder pipeline from ONNX, run under the emulator (whose mma.sync, ldmatrix and
cp.async follow the PTX ISA), compared with numpy on the same half-precision inputs, bytes measured ==
modelled; f32 models keep the CUDA-core kernel."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilec.driver import compile_model, run_target  # noqa: E402
from tilec.ir.types import np_dtype  # noqa: E402

ONNX_T = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "f32": TensorProto.FLOAT}
TOL = {"f16": 2e-2, "bf16": 6e-2, "f32": 1e-4}   # relative to the output's scale: f16 2^-11, bf16 2^-8 per rounding


def _np(dtype):
    return np.float16 if dtype == "f16" else np.float32


def _bf16(x):
    """``x`` rounded to bfloat16 (round to nearest even), kept in an f32 array (numpy has no bf16)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32)
    return u.view(np.float32)


def _tensor(name, x, dtype):
    if dtype != "bf16":
        return numpy_helper.from_array(x.astype(_np(dtype)), name)
    bits = (_bf16(x).view(np.uint32) >> 16).astype(np.uint16)
    t = helper.make_tensor(name, TensorProto.BFLOAT16, x.shape, bits.tobytes(), raw=True)
    return t


def _gelu(x):
    from math import erf
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


ACTS = {"Relu": lambda x: np.maximum(x, 0), "Sigmoid": lambda x: 1 / (1 + np.exp(-x)), "Gelu": _gelu}


def build(tmp_path, dtype, x_shape, n, act, residual, out_dtype=None, arch="a100", precision=None):
    """``y = act(x @ W + b) (+ r)`` (then a Cast to ``out_dtype``), compiled by the welder pipeline; returns
    (build dir, inputs, numpy reference in f64)."""
    rng = np.random.default_rng(1)
    k = x_shape[-1]
    w, b = rng.standard_normal((k, n)) / np.sqrt(k), rng.standard_normal(n)
    ins = {"x": rng.standard_normal(x_shape)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node(act, ["u"], ["v"])]
    if residual:
        ins["r"] = rng.standard_normal((*x_shape[:-1], n))
        nodes.append(helper.make_node("Add", ["v", "r"], ["z"]))
    last = nodes[-1].output[0]
    out_dtype = out_dtype or dtype
    if out_dtype != dtype:
        nodes.append(helper.make_node("Cast", [last], ["y"], to=ONNX_T[out_dtype]))
    else:
        nodes[-1].output[0] = "y"
    shape_y = [*x_shape[:-1], n]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(k_, ONNX_T[dtype], list(v.shape))
                                       for k_, v in ins.items()],
                          [helper.make_tensor_value_info("y", ONNX_T[out_dtype], shape_y)],
                          [_tensor("W", w, dtype), _tensor("b", b, dtype)])
    op = 21 if act == "Gelu" else 17
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", op)]), str(tmp_path / "m.onnx"))
    rounded = {"f16": lambda a: a.astype(np.float16), "bf16": _bf16, "f32": lambda a: a.astype(np.float32)}
    rnd = lambda a: rounded[dtype](a).astype(np.float64)   # noqa: E731
    ins = {k_: rnd(v) for k_, v in ins.items()}
    want = ACTS[act](ins["x"] @ rnd(w) + rnd(b)) + (ins["r"] if residual else 0)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch=arch, precision=precision)
    return tmp_path / "b", ins, want


def run_emu(tmp_path, build_dir, ins, dtype, order="normal"):
    feed = {k: v.astype(np_dtype(dtype)) for k, v in ins.items()}   # exact: the inputs are rounded already
    np.savez(tmp_path / "in.npz", **feed)
    run_target(str(build_dir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
               report_path=str(tmp_path / "run.json"), emu_order=order)
    y = np.load(tmp_path / "out.npz")["y"]
    if y.dtype.kind == "V":   # bfloat16 comes back as raw 2-byte records: the high half of an f32
        y = (y.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    return y.astype(np.float64), json.load(open(tmp_path / "run.json"))


def kernel_lines(build_dir) -> list:
    return [ln for ln in open(build_dir / "model.tir").read().splitlines() if '"kernel.func"' in ln or "engine" in ln]


@pytest.mark.parametrize("dtype,x_shape,n,act,residual,out", [
    ("f16", (72, 48), 40, "Relu", True, None),          # m, n past the block tile; bias, ReLU, residual
    ("f16", (2, 40, 64), 24, "Sigmoid", False, "f32"),  # batch folded into m; a Cast to f32 stored
    ("bf16", (3, 24, 32), 56, "Gelu", True, None),      # bf16, erf GELU
])
def test_fused_epilogue_on_the_engine(tmp_path, dtype, x_shape, n, act, residual, out):
    build_dir, ins, want = build(tmp_path, dtype, x_shape, n, act, residual, out)
    tir = open(build_dir / "model.tir").read()
    assert 'engine = "mma_sync"' in tir and "fused_epilogue" in tir
    rep = json.load(open(build_dir / "report.json"))
    (k,) = rep["kernels"]   # one kernel: the contraction and every member
    assert k["kind"] == "tiled_mma"
    for order in ("normal", "reverse"):
        got, run = run_emu(tmp_path, build_dir, ins, dtype, order)
        tol = TOL[dtype]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
        (rk,) = run["kernels"]
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


def test_f32_model_keeps_the_cuda_core_kernel(tmp_path):
    build_dir, ins, want = build(tmp_path, "f32", (72, 48), 40, "Relu", True)
    assert "mma_sync" not in open(build_dir / "model.tir").read()
    got, _ = run_emu(tmp_path, build_dir, ins, "f32")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_tf32_fused_epilogue(tmp_path):
    """An f32 model under --precision tf32: the product on m16n8k8 tf32, the members on its accumulators
    (Welder keeps Roller's tile for a tf32 anchor, as for f16/bf16 ones: fusion/retile.retileable)."""
    build_dir, ins, want = build(tmp_path, "f32", (256, 128), 192, "Relu", True, precision="tf32")
    assert 'engine = "mma_sync"' in open(build_dir / "model.tir").read()
    got, run = run_emu(tmp_path, build_dir, ins, "f32")
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-3 * np.abs(want).max())
    assert np.abs(got - want).max() > 1e-6 * np.abs(want).max()   # tf32, not f32: the inputs were rounded
    (rk,) = run["kernels"]
    assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


def test_v100_keeps_the_cuda_core_kernel(tmp_path):
    """No mma.sync before sm_80: the fused kernel stays the CUDA-core tiled kernel (the wmma kernel has no
    fused epilogue)."""
    build_dir, _, _ = build(tmp_path, "f16", (64, 64), 64, "Relu", False, arch="v100")
    (k,) = json.load(open(build_dir / "report.json"))["kernels"]
    assert k["kind"] == "tiled" and "mma_sync" not in open(build_dir / "model.tir").read()


@pytest.mark.parametrize("arch", ["a100", "h200"])
def test_fused_engine_kernel_compiles_unspilled(tmp_path, arch):
    """A BERT-base FFN's first layer in f16 (1024 tokens, 768 -> 3072, bias + GELU): one engine kernel (mma.sync
    on sm_80, wgmma on sm_90a), ptxas keeps it in registers."""
    import shutil
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    rng = np.random.default_rng(0)
    t = TensorProto.FLOAT16
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
             helper.make_node("Gelu", ["u"], ["y"])]
    g = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, [1024, 768])],
                          [helper.make_tensor_value_info("y", t, [1024, 3072])],
                          [_tensor("W", rng.standard_normal((768, 3072)) * 0.03, "f16"),
                           _tensor("b", rng.standard_normal(3072), "f16")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 21)]), str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch=arch, check_ptx=True)
    engine = "wgmma" if arch == "h200" else "mma_sync"   # sm_90: the wgmma engine, compiled for sm_90a
    assert f'engine = "{engine}"' in open(tmp_path / "b" / "model.tir").read()
    (k,) = json.load(open(tmp_path / "b" / "report.json"))["kernels"]
    assert k["kind"] == "tiled_mma" and k["ptxas"]["spill_bytes"] == 0 and k["ptxas"]["registers"] <= 255


@pytest.mark.parametrize("arch,engine", [("a100", "mma_sync"), ("v100", None)])
@pytest.mark.parametrize("expr,a_shape,b_shape", [
    ("C[b, m, n] += A[b, m, k] * B[k, n]", (3, 40, 32), (32, 24)),   # a linear layer's weight, broadcast
    ("C[b, m, n] += A[m, k] * B[b, k, n]", (40, 32), (3, 32, 24)),   # the other operand broadcast
])
def test_broadcast_operand_on_engine_and_wmma(arch, engine, expr, a_shape, b_shape):
    """An operand without the batch axes is read at offset 0 by every batch entry, by the sm_80 engine and
    by the wmma kernel."""
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lower_harness import compute_module, kernels, lower, random_inputs, reference, run_lowered
    from tilec.ir import TensorType as T
    rtile = {"block": {"b": 1, "m": 32, "n": 16}, "thread": {"m": 2, "n": 2}, "step": {"k": 16}}
    ins, out = [T(a_shape, "f16"), T(b_shape, "f16")], T((3, 40, 24), "f16")
    ref = compute_module(expr, ins, out, rtile=rtile, estimate={"arch": arch})
    m = lower(compute_module(expr, ins, out, rtile=rtile, estimate={"arch": arch}))
    (k,) = kernels(m)
    assert k.attributes["kind"] == "tiled_mma" and k.attributes["config"].get("engine") == engine
    x = random_inputs(ref)
    want = reference(ref, x)[0].astype(np.float64)
    got, stats = run_lowered(m, x)
    np.testing.assert_allclose(got[0].astype(np.float64), want, rtol=0, atol=TOL["f16"] * np.abs(want).max())
