"""Implicit-GEMM convolution on wgmma for sm_90 (issue #21, ``lower/wgmma_conv.py``): on h200 the channels-last
f16/bf16 convs that ran on the sm_80 mma.sync implicit GEMM run with the weight loaded by TMA, the im2col
operand gathered by the producer warpgroup's cp.async into wgmma's 128B-swizzled layout, wgmma consumer
warpgroups and the fused bias/ReLU epilogue. Built from ONNX, run under the emulator (exact wgmma layouts,
mbarrier phases and transaction counts, cp.async groups), compared with an f64 numpy convolution, bytes
measured == modelled; tf32 keeps mma.sync; ptxas for sm_90a: no spills, HGMMA in the main loop."""
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("onnx")
from test_mma_conv import TOL, build, engine_kernels, model, run_emu  # noqa: E402

from tilec.backend.arch_features import MARK  # noqa: E402
from tilec.backend.lower import wgmma_engine  # noqa: E402


def _check(tmp_path, shape, dtype="f16", precision=None, order="normal"):
    """Build ``shape`` for h200, check its one engine kernel is the wgmma conv, run it under the emulator's
    block/thread ``order``; returns its source."""
    from tilec.driver import run_target
    build_dir, x, want = build(tmp_path, *shape, dtype, precision, arch="h200")
    (kern,) = engine_kernels(build_dir)
    assert "conv" in kern["origin"] and "relu" in kern["origin"]   # bias and ReLU on the accumulators
    src = open(build_dir / "kernels" / f"{kern['name']}.cu").read()
    body = src[src.index(MARK):]
    assert "tl_wgmma_" in body and "tl_cp_async_16" in body
    assert "tl_tma_load_2d" in body or "tl_tma_load_multicast_2d" in body   # the weight shared by a cluster
    assert "tl_ldmatrix" not in body and "tl_mma_m16n8k16" not in body
    if order == "normal":
        got, run = run_emu(tmp_path, build_dir, x)
    else:
        np.savez(tmp_path / "in.npz", x=x)
        run_target(str(build_dir), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
                   emu_order=order, report_path=str(tmp_path / "run.json"))
        got = np.load(tmp_path / "out.npz")["y"].astype(np.float64)
        run = json.load(open(tmp_path / "run.json"))
    err = np.abs(got - want).max() / np.abs(want).max()
    assert err <= TOL[precision or dtype], err
    for rk in run["kernels"]:
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk
    return body


@pytest.mark.parametrize("shape,dtype,precision", [
    ((2, 16, 9, 9, 32, 3, 1, 1), "f16", None),      # 3x3, padding; K = 144 is not a k-tile multiple
    ((2, 32, 15, 13, 64, 3, 2, 1), "f16", None),    # stride 2, odd spatial sizes
    ((1, 32, 12, 12, 48, 1, 2, 0), "f16", None),    # 1x1 stride-2 projection, F under the tile (TMA zero fill)
    ((1, 16, 11, 11, 32, 7, 2, 3), "f16", None),    # 7x7 stride 2: 49 taps, row/column checks (no tap mask)
    ((2, 16, 9, 9, 32, 3, 1, 1), "f32", "bf16"),    # an f32 model under --precision bf16: wgmma bf16
])
def test_conv_on_wgmma(tmp_path, shape, dtype, precision):
    body = _check(tmp_path, shape, dtype, precision)
    assert f"tl_wgmma_{precision or dtype}<64, 0, 0>" in body   # both operands K-major, one n64 consumer


def test_two_consumer_warpgroups(tmp_path, monkeypatch):
    """A 128-channel x 128-pixel tile: two consumers with setmaxnreg, the producer keeping its copy plan; F and
    the pixels ragged; blocks and threads in a shuffled order (no dependence on one CUDA does not promise)."""
    monkeypatch.setattr(wgmma_engine, "TILES", ((128, 128),))
    body = _check(tmp_path, (2, 16, 9, 9, 160, 3, 1, 1), order="shuffle")
    assert "tl_setmaxnreg_dec<64>" in body and "tl_setmaxnreg_inc<224>" in body


def test_tf32_keeps_mma_sync(tmp_path):
    build_dir, _, _ = build(tmp_path, 2, 16, 9, 9, 32, 3, 2, 1, "f32", "tf32", arch="h200")
    (kern,) = engine_kernels(build_dir)
    src = open(build_dir / "kernels" / f"{kern['name']}.cu").read()
    assert MARK not in src and "mma engine: block tile" in src


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_resnet50_conv_compiles_for_sm_90a(tmp_path):
    """ResNet-50's 3x3 conv of its 14x14 stage (256 channels, batch 32, f16) for h200: sm_90a, 0 spills and (with
    a disassembler) a main loop of HGMMA only, its weight by UTMALDG and its im2col by LDGSTS.128."""
    from lower_harness import disassembler_found

    from tilec.backend.inspect_build import inspect_build
    from tilec.driver import compile_model
    model(tmp_path, 32, 256, 14, 14, 256, 3, 1, 1)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "p"), arch="h200", check_ptx=True)
    (k,) = engine_kernels(tmp_path / "p")
    assert k["ptxas"]["spill_bytes"] == 0 and k["block"] == [384, 1, 1]
    if not disassembler_found():
        pytest.skip("needs cuobjdump/nvdisasm for the SASS checks")
    (row,) = [r for r in inspect_build(tmp_path / "p")["kernels"] if r["name"] == k["name"]]
    loop = row["main_loop"]
    assert set(loop["tensor"]) == {"HGMMA.64x128x16.F32"} and loop["tensor"]["HGMMA.64x128x16.F32"] == 16
    mem = row["kernel_mix"]["memory"]
    assert mem.get("UTMALDG", 0) >= 1 and mem.get("LDGSTS.128", 0) >= 1 and not loop["memory"]


def test_unfused_conv_stores_nchw(tmp_path):
    """A Conv without bias or activation: no fused context, the accumulators stored straight to NCHW."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from tilec.driver import compile_model
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 24, 7, 9)).astype(np.float16)
    w = (rng.standard_normal((40, 24, 3, 3)) / 15).astype(np.float16)
    t = TensorProto.FLOAT16
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 1],
                                            pads=[1, 0, 1, 0])], "conv",
                          [helper.make_tensor_value_info("x", t, [2, 24, 7, 9])],
                          [helper.make_tensor_value_info("y", t, [2, 40, 4, 7])], [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch="h200")
    (kern,) = engine_kernels(tmp_path / "b")
    assert "relu" not in kern["origin"]
    assert MARK in open(tmp_path / "b" / "kernels" / f"{kern['name']}.cu").read()
    got, run = run_emu(tmp_path, tmp_path / "b", x)
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (0, 0)))
    want = np.zeros((2, 40, 4, 7))
    for i in range(3):
        for j in range(3):
            want += np.einsum("nchw,fc->nfhw", xp[:, :, i:i + 8:2, j:j + 7], w[:, :, i, j].astype(np.float64))
    assert np.abs(got - want).max() <= TOL["f16"] * np.abs(want).max()
    for rk in run["kernels"]:
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"], rk


@pytest.mark.parametrize("mistake,error", [
    ("lag", "deadlock"),      # an arrive kept past the point where the producer waits for that stage
    ("no_wait", "changed before the wait"),   # arriving before the copies landed: they land under the wgmma
])
def test_producer_mistakes_fail_under_the_emulator(tmp_path, monkeypatch, mistake, error):
    """9 k tiles through 4 stages: each mistake in the cp.async producer is a launch error, not a silent pass."""
    from tilec.backend.lower import wgmma_conv
    from tilec.ir import CompileError
    if mistake == "lag":
        monkeypatch.setattr(wgmma_conv, "lag", lambda cfg: cfg.stages - 1)
    else:
        source = wgmma_conv.kernel_source
        monkeypatch.setattr(wgmma_conv, "kernel_source",
                            lambda *a: source(*a).replace("tl_cp_async_wait<2>();", ""))
    build_dir, x, _ = build(tmp_path, 1, 64, 6, 6, 64, 3, 1, 1, arch="h200")
    with pytest.raises(CompileError, match=error):
        run_emu(tmp_path, build_dir, x)
