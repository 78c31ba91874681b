"""TMA multicast in the implicit-GEMM conv on wgmma (issue #21, ``lower/wgmma_conv.clustered``): where the pixel
tiles of one channel tile come in pairs, two blocks form a thread-block cluster and each loads half of the
weight tile's rows with ``.multicast::cluster`` to both (the im2col operand stays per block: cp.async has no
multicast). Built from ONNX for h200 and run under the emulator (exact multicast, remote mbarrier arrives and
DSMEM rules) against an f64 numpy convolution in normal, reverse and shuffled orders, with the bytes measured
== modelled == the plain kernel's minus one weight read per cluster; an odd count of pixel tiles keeps the
plain kernel; a local-only stage release and a missing producer tail fail; sm_90a without spills."""
import dataclasses
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("onnx")
from test_mma_conv import TOL, build, engine_kernels  # noqa: E402

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend.lower import mma_conv, wgmma_conv, wgmma_engine  # noqa: E402
from tilec.driver import run_target  # noqa: E402


def _kernel(build_dir):
    (row,) = engine_kernels(build_dir)
    return row, (build_dir / "kernels" / f"{row['name']}.cu").read_text()


def _run(tmp_path, build_dir, x, order):
    np.savez(tmp_path / "in.npz", x=x)
    run_target(str(build_dir), str(tmp_path / "in.npz"), str(tmp_path / f"out-{order}.npz"), backend="emu",
               emu_order=order, report_path=str(tmp_path / f"run-{order}.json"))
    got = np.load(tmp_path / f"out-{order}.npz")["y"].astype(np.float64)
    return got, json.load(open(tmp_path / f"run-{order}.json"))


def _plain_bytes(tmp_path, monkeypatch, shape, dtype, precision) -> int:
    """The bytes_modelled of the same conv's kernel without the cluster (``clustered`` a no-op)."""
    monkeypatch.setattr(wgmma_conv, "clustered", lambda cg, spec, cfg: cfg)
    (tmp_path / "plain").mkdir()
    build_dir, _, _ = build(tmp_path / "plain", *shape, dtype, precision, arch="h200")
    row, src = _kernel(build_dir)
    monkeypatch.undo()
    assert "__cluster_dims__(2" not in src
    return row["bytes_modelled"]


@pytest.mark.parametrize("shape,dtype,precision,tile,orders", [
    # stride 2, odd spatial sizes: 112 pixels in two 64-pixel tiles, K = 288 (5 k tiles through the stages)
    ((2, 32, 15, 13, 64, 3, 2, 1), "f16", None, (64, 64), ("normal", "reverse", "shuffle")),
    # F = 48 under the 64-row tile (rows 48.. of block 1's half are zero fill), 1x1 stride-2 projection, 72 pixels
    ((2, 32, 12, 12, 48, 1, 2, 0), "f16", None, (64, 64), ("shuffle",)),
    # an f32 model under --precision bf16, K = 144 not a k-tile multiple, 200 pixels in 4 tiles of 64 (ragged)
    ((2, 16, 10, 10, 32, 3, 1, 1), "f32", "bf16", (64, 64), ("reverse",)),
    # two consumer warpgroups (128-channel tiles, setmaxnreg), F ragged
    ((2, 16, 9, 9, 160, 3, 1, 1), "f16", None, (128, 128), ("shuffle",)),
])
def test_multicast_conv_matches_numpy(tmp_path, monkeypatch, shape, dtype, precision, tile, orders):
    monkeypatch.setattr(wgmma_engine, "TILES", (tile,))
    plain = _plain_bytes(tmp_path, monkeypatch, shape, dtype, precision)
    monkeypatch.setattr(wgmma_engine, "TILES", (tile,))
    build_dir, x, want = build(tmp_path, *shape, dtype, precision, arch="h200")
    row, src = _kernel(build_dir)
    assert "__cluster_dims__(2, 1, 1)" in src and "tl_tma_load_multicast_2d(" in src
    assert "k_tma0, &k_full[k_s], 0x3" in src
    assert "tl_tma_load_2d(" not in src[src.index("wgmma implicit-GEMM conv"):]   # the weight only by multicast
    n, c, h, w, f, k, stride, pad = shape
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    saved = -(-n * oh * ow // tile[1]) // 2 * f * k * k * c * 2   # the weight once per cluster of two pixel tiles
    assert row["bytes_modelled"] == plain - saved
    for order in orders:
        got, run = _run(tmp_path, build_dir, x, order)
        assert np.abs(got - want).max() <= TOL[precision or dtype] * np.abs(want).max(), order
        (rk,) = [r for r in run["kernels"] if r["name"] == row["name"]]
        assert rk["bytes_loaded"] + rk["bytes_stored"] == rk["bytes_modelled"] == plain - saved, rk


def test_multicast_only_where_the_pixel_tiles_pair_up():
    spec = get_arch("h200")
    cfg = wgmma_engine.WgmmaConfig(64, 64, 4, False, False)

    def cg(n, oh, ow):
        return mma_conv.ConvGemm("x", "w", "f16", n, oh, ow, 32, 64, 1, 1, oh, ow, ((1, 1, 0), (1, 1, 0)))
    assert wgmma_conv.clustered(cg(2, 8, 8), spec, cfg).cluster == 2      # 128 pixels: two tiles
    assert wgmma_conv.clustered(cg(3, 8, 8), spec, cfg).cluster == 1      # 192 pixels: three tiles
    assert wgmma_conv.clustered(cg(1, 5, 5), spec, cfg).cluster == 1      # one tile
    assert wgmma_conv.clustered(cg(2, 8, 8), dataclasses.replace(spec, max_cluster_blocks=1), cfg).cluster == 1


def test_odd_pixel_tiles_keep_the_plain_kernel(tmp_path, monkeypatch):
    monkeypatch.setattr(wgmma_engine, "TILES", ((64, 64),))
    build_dir, _, _ = build(tmp_path, 3, 16, 8, 8, 32, 3, 1, 1, arch="h200")   # 192 pixels: three tiles
    row, src = _kernel(build_dir)
    assert "__cluster_dims__(2" not in src and "multicast" not in src[src.index("wgmma implicit-GEMM conv"):]


@pytest.mark.parametrize("old,new,order,error", [
    # each stage released only locally: a producer refills a stage its peer's wgmma still reads
    ("tl_mbarrier_arrive_cluster(&k_empty[(j + 3) % 4], k_lane)", "tl_mbarrier_arrive(&k_empty[(j + 3) % 4])",
     "normal", "changed before the wait"),
    # no producer tail: a peer's consumers arrive on the barrier of a block that has exited
    (r"if \(k_tid == 0\) for \(int i = 0; i < 4; \+\+i\) \{", "if (k_tid == 0) for (int i = 0; i < 0; ++i) {",
     "normal", "peer that has exited"),
])
def test_multicast_mistakes_fail_under_the_emulator(tmp_path, monkeypatch, old, new, order, error):
    """5 k tiles through 4 stages in a cluster of 2: the kernel as built matches numpy; each mistake fails."""
    from tilec.ir import CompileError
    monkeypatch.setattr(wgmma_engine, "TILES", ((64, 64),))
    build_dir, x, want = build(tmp_path, 2, 32, 15, 13, 64, 3, 2, 1, arch="h200")
    got, _ = _run(tmp_path, build_dir, x, order)
    assert np.abs(got - want).max() <= TOL["f16"] * np.abs(want).max()
    row, src = _kernel(build_dir)
    cu = build_dir / "kernels" / f"{row['name']}.cu"
    text, n = re.subn(old if old.startswith("if \\(") else re.escape(old), new, src)
    assert n >= 1
    cu.write_text(text)
    for cubin in (build_dir / "kernels").glob("*.cubin"):
        cubin.unlink()
    with pytest.raises(CompileError, match=error):
        _run(tmp_path, build_dir, x, order)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_multicast_conv_compiles_for_sm_90a(tmp_path):
    """A ResNet-style 3x3 conv (128 channels, 32x32, batch 8, f16: 8192 pixels) for h200: sm_90a, 0 spills, and
    (with a disassembler) the weight by UTMALDG.2D.MULTICAST after a cluster barrier."""
    from lower_harness import disassembler_found

    from tilec.backend.inspect_build import find_disassembler
    from tilec.driver import compile_model
    from test_mma_conv import model
    model(tmp_path, 8, 128, 32, 32, 128, 3, 1, 1)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch="h200", check_ptx=True)
    row, src = _kernel(tmp_path / "b")
    assert "__cluster_dims__(2, 1, 1)" in src and row["ptxas"]["spill_bytes"] == 0, row
    if not disassembler_found():
        pytest.skip("needs cuobjdump/nvdisasm for the SASS checks")
    tool, path = find_disassembler()
    sass = subprocess.run([path, "-sass" if tool == "cuobjdump" else "-c",
                           str(tmp_path / "b" / "kernels" / f"{row['name']}.cubin")],
                          capture_output=True, text=True, check=True).stdout
    assert "UTMALDG.2D.MULTICAST" in sass and "UCGABAR_WAIT" in sass and "HGMMA" in sass
