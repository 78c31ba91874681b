"""Implicit-GEMM convolution on the sm_80 tensor-core engine (issue #17, ``lower/mma_conv.py``): f16/bf16 convs
(and f32 ones under ``--precision tf32|fp16|bf16``) read a channels-last input (``passes/conv_layout.py``) and
run as M = F, N = batch x pixels, K = R x S x C with cp.async, ldmatrix and mma.sync. Built from ONNX through
the default pipeline, run under the emulator (exact PTX register layouts, cp.async groups), compared with an
f64 numpy convolution of the same rounded inputs, bytes measured == modelled; the shapes the engine cannot
chunk (C not a multiple of 8, few output channels, depthwise, f32 without a precision mode) keep the
CUDA-core kernel."""
import json

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from tilec.driver import compile_model, run_target  # noqa: E402

# Of the output scale. The reference takes the inputs as the kernel does (f16, or rounded to bf16), so what is
# left is f32 accumulation order and the output's rounding (f16 2^-11, bf16 2^-8); tf32's reference is exact f32.
TOL = {"f16": 2e-3, "bf16": 2e-2, "tf32": 5e-3, "f32": 1e-5}


def _conv_ref(x, w, b, stride, pad, group=1):
    """f64 convolution + bias + ReLU (NCHW, OIHW)."""
    n, c, h, wd = x.shape
    f, cg, r, s = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - r) // stride + 1, (wd + 2 * pad - s) // stride + 1
    y = np.zeros((n, f, oh, ow))
    fg = f // group
    for g in range(group):
        for i in range(r):
            for j in range(s):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + stride * oh:stride, j:j + stride * ow:stride]
                y[:, g * fg:(g + 1) * fg] += np.einsum("nchw,fc->nfhw", patch, w[g * fg:(g + 1) * fg, :, i, j])
    return np.maximum(y + b[None, :, None, None], 0)


def model(tmp_path, n, c, h, wd, f, k, stride, pad, dtype="f16", group=1):
    """``tmp_path/m.onnx``: Conv(+bias) + ReLU in ``dtype``; returns its input and weights."""
    rng = np.random.default_rng(0)
    npt = np.float16 if dtype == "f16" else np.float32
    w = (rng.standard_normal((f, c // group, k, k)) / np.sqrt(c // group * k * k)).astype(npt)
    b = rng.standard_normal(f).astype(npt)
    x = rng.standard_normal((n, c, h, wd)).astype(npt)
    t = TensorProto.FLOAT16 if dtype == "f16" else TensorProto.FLOAT
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["t"], kernel_shape=[k, k], strides=[stride] * 2,
                              pads=[pad] * 4, group=group), helper.make_node("Relu", ["t"], ["y"])]
    g = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", t, [n, c, h, wd])],
                          [helper.make_tensor_value_info("y", t, [n, f, oh, ow])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    return x, w, b


def build(tmp_path, n, c, h, wd, f, k, stride, pad, dtype="f16", precision=None, group=1, arch="a100"):
    """:func:`model` compiled with ``precision``; returns (build, input, f64 reference)."""
    x, w, b = model(tmp_path, n, c, h, wd, f, k, stride, pad, dtype, group)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch=arch, precision=precision)
    rnd = {None: lambda a: a, "fp16": lambda a: a.astype(np.float16), "tf32": lambda a: a,
           "bf16": _bf16}[precision]
    want = _conv_ref(*(rnd(a).astype(np.float64) for a in (x, w)), b.astype(np.float64), stride, pad, group)
    return tmp_path / "b", x, want


def _bf16(a):
    u = np.asarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)


def run_emu(tmp_path, build_dir, x):
    np.savez(tmp_path / "in.npz", x=x)
    run_target(str(build_dir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
               report_path=str(tmp_path / "run.json"))
    return np.load(tmp_path / "out.npz")["y"].astype(np.float64), json.load(open(tmp_path / "run.json"))


def engine_kernels(build_dir) -> list:
    return [k for k in json.load(open(build_dir / "report.json"))["kernels"] if k["kind"] == "tiled_mma"]


@pytest.mark.parametrize("n,c,h,wd,f,k,stride,pad,dtype,precision", [
    (2, 16, 9, 9, 32, 3, 1, 1, "f16", None),        # ResNet's 3x3, padding; K = 144 is not a k-tile multiple
    (2, 32, 15, 13, 64, 3, 2, 1, "f16", None),      # stride 2, odd spatial sizes
    (1, 32, 12, 12, 48, 1, 2, 0, "f16", None),      # 1x1 stride-2 projection
    (4, 64, 14, 14, 64, 3, 1, 1, "f16", None),      # 64x64 block tile of 4 warps: the strided copy plan
    (1, 16, 11, 11, 32, 7, 2, 3, "f16", None),      # 7x7 stride 2: 49 taps, row/column checks (no tap mask)
    (2, 16, 9, 9, 32, 3, 1, 1, "f32", "bf16"),      # an f32 model under --precision bf16
    (2, 16, 9, 9, 32, 3, 2, 1, "f32", "tf32"),      # ... under --precision tf32: m16n8k8 on f32 chunks of 4
])
def test_conv_on_the_engine(tmp_path, n, c, h, wd, f, k, stride, pad, dtype, precision):
    build_dir, x, want = build(tmp_path, n, c, h, wd, f, k, stride, pad, dtype, precision)
    (kern,) = engine_kernels(build_dir)
    assert "conv" in kern["origin"] and "relu" in kern["origin"]   # bias and ReLU on the accumulators
    src = open(build_dir / "kernels" / f"{kern['name']}.cu").read()
    assert "tl_cp_async_16" in src and "tl_ldmatrix_x4" in src and ("m16n8k8" if precision == "tf32" else
                                                                     "m16n8k16") in src
    got, run = run_emu(tmp_path, build_dir, x)
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= TOL[precision or dtype], err
    if precision == "tf32":
        assert err > 1e-6   # the inputs were rounded: tensor cores, not f32 FMAs
    for rk in run["kernels"]:
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


@pytest.mark.parametrize("c,f,group,dtype,precision", [
    (12, 32, 1, "f16", None),     # C not a multiple of 8: no 16-byte chunks
    (16, 8, 1, "f16", None),      # 8 output channels: under one mma tile's M
    (16, 16, 16, "f16", None),    # depthwise
    (16, 32, 1, "f32", None),     # f32 without a precision mode: exact f32 on CUDA cores
])
def test_convs_the_engine_leaves_alone(tmp_path, c, f, group, dtype, precision):
    build_dir, x, want = build(tmp_path, 2, c, 7, 7, f, 3, 1, 1, dtype, precision, group)
    assert engine_kernels(build_dir) == []
    assert "transpose" not in open(build_dir / "model.tir").read()
    got, _ = run_emu(tmp_path, build_dir, x)
    assert np.abs(got - want).max() <= TOL[dtype] * np.abs(want).max()


def test_v100_keeps_the_cuda_core_kernel(tmp_path):
    build_dir, _, _ = build(tmp_path, 2, 16, 7, 7, 32, 3, 1, 1, arch="v100")
    assert engine_kernels(build_dir) == [] and "transpose" not in open(build_dir / "model.tir").read()


def test_resnet50_conv_compiles_unspilled(tmp_path):
    """ResNet-50's 3x3 conv of its 14x14 stage (256 channels, batch 32, f16) for sm_80: one engine kernel,
    ptxas keeps it in registers."""
    import shutil
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc is not installed")
    model(tmp_path, 32, 256, 14, 14, 256, 3, 1, 1)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "p"), arch="a100", check_ptx=True)
    (k,) = engine_kernels(tmp_path / "p")
    assert k["ptxas"]["spill_bytes"] == 0 and k["ptxas"]["registers"] <= 255


def test_compile_to_stops_before_the_layout_pass(tmp_path):
    """``--compile-to decompose`` stops there: the conv-layout pass the driver adds after it does not run."""
    model(tmp_path, 1, 16, 7, 7, 32, 3, 1, 1)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "d"), compile_to="decompose", arch="a100")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "l"), compile_to="roller", arch="a100")
    assert "T[n, h, w, c]" not in open(tmp_path / "d" / "model.tir").read()
    assert "T[n, h, w, c]" in open(tmp_path / "l" / "model.tir").read()
