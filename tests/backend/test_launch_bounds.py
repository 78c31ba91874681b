"""``__launch_bounds__(threads, 1)`` on standalone kernels (backend/emit.py MIN_BLOCKS_PER_SM).

The reproducer is resnext29-small's ``k19_fused_epilogue`` under ``--pipeline welder``: a 1x1 conv (16 -> 32
channels, 16x16) with its batch norm, tiled 16 accumulators per thread in 256-thread blocks. With
``__launch_bounds__(256)`` alone ptxas 13 gave it 40 registers and 24 B of spills; with the minimum of one
block per SM it compiles without spilling. The emulator must still parse the two-argument form."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.backend.emit import MIN_BLOCKS_PER_SM, emit_kernel, kernel_signature
from tilec.backend.emu.signature import _KERNEL
from tilec.ir.io import read_ir

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")


def conv_bn_model(path) -> None:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((32, 16, 1, 1)).astype(np.float32), "W"),
             numpy_helper.from_array((rng.random(32) + 0.5).astype(np.float32), "scale"),
             numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "bias"),
             numpy_helper.from_array(rng.standard_normal(32).astype(np.float32), "mean"),
             numpy_helper.from_array((rng.random(32) + 0.5).astype(np.float32), "var")]
    nodes = [h.make_node("Conv", ["X", "W"], ["c"], kernel_shape=[1, 1]),
             h.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["Y"])]
    graph = h.make_graph(nodes, "conv_bn", [h.make_tensor_value_info("X", T.FLOAT, [1, 16, 16, 16])],
                         [h.make_tensor_value_info("Y", T.FLOAT, [1, 32, 16, 16])], inits)
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 17)]), str(path))


def _kernels(build):
    return [op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"]


def test_standalone_kernels_ask_for_one_block_per_sm_and_the_emulator_parses_it(tmp_path):
    from tilec.driver import compile_model
    conv_bn_model(tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder")
    assert MIN_BLOCKS_PER_SM == 1
    for k in _kernels(tmp_path / "b"):
        threads = math.prod(k.attributes["block"])
        sig = kernel_signature(k)
        cluster = k.attributes.get("cluster", 1)   # sm_90 clusters follow the bounds (a conv chain here)
        dims = f"__cluster_dims__({cluster}, 1, 1) " if cluster > 1 else ""
        assert f"__launch_bounds__({threads}, 1) {dims}{k.sym_name}(" in sig
        m = _KERNEL.search(emit_kernel(k))
        assert m is not None and m.group("name") == k.sym_name


@needs_nvcc
def test_conv_bn_tile_compiles_without_spills(tmp_path, monkeypatch):
    from tilec.analysis import hardware
    from tilec.driver import compile_model
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    # The tile that spilled was chosen without thread-block clusters, which now change it: an H200 spec
    # without clusters keeps that tile, so the kernel under test is still the one that spilled.
    hw = tmp_path / "hw"
    hw.mkdir()
    spec = json.loads((hardware.HW_DIR / "h200.json").read_text())
    (hw / "h200.json").write_text(json.dumps(dict(spec, max_cluster_blocks=1)))
    monkeypatch.setattr(hardware, "HW_DIR", hw)
    hardware.get_arch.cache_clear()
    conv_bn_model(tmp_path / "m.onnx")
    try:
        compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", check_ptx=True)
    finally:
        hardware.get_arch.cache_clear()
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    tiled = [k for k in _kernels(tmp_path / "b") if k.attributes.get("kind") == "tiled"]
    # The kernel that spilled had 256 threads and a 4x2x2 thread tile of the conv+BN. Since Roller ranks tiles
    # by modelled time (issue #18) it picks a 1-output thread tile here, so what is left to check is that the
    # conv+BN kernel it does pick, and every other, compiles without spills under its launch bounds.
    assert len(tiled) == 1 and math.prod(tiled[0].attributes["block"]) == 256
    assert tiled[0].attributes["origin"] == "graph.conv+graph.batch_norm"
    rows = {r["name"]: r["ptxas"] for r in report["kernels"]}
    assert rows[tiled[0].sym_name]["spill_bytes"] == 0, rows[tiled[0].sym_name]
    assert report["totals"]["spill_bytes"] == 0
