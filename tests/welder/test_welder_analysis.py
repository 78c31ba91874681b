"""The welder analysis without running kernels: grouping on a sample, the ablation, propagation with
conv halos, and the best-fit shared-memory plan."""
from __future__ import annotations

import os

import pytest

from tilec.analysis.hardware import get_arch
from tilec.analysis.welder import TileGraph, propagate
from tilec.analysis.welder.propagate import halo
from tilec.analysis.welder.smem import Buffer, plan
from tilec.frontend.importer import import_onnx
from tilec.fusion import search_groups
from tilec.ir.core import functions
from tilec.ir.io import read_ir
from tilec.passes.pipeline import PassManager, parse_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRONT = "canonicalize,infer-shapes,fold-constants,decompose,cse,dce,roller"


def _compiled(pipeline: str):
    module = import_onnx(os.path.join(ROOT, "samples", "transformer_layer.onnx"), {})
    PassManager(parse_pipeline(f"{FRONT},{pipeline}")).run(module)
    return functions(module)[0]


def _count(fn, name):
    return sum(1 for op in fn.walk() if op.name == name)


def test_transformer_groups_softmax_layernorm_and_epilogues():
    fn = _compiled("welder")
    kernels = [op for op in fn.body.ops if op.name == "tile.kernel"]
    kinds = [k.attributes["kind"] for k in kernels]
    assert kinds.count("row") == 0            # LN1 and LN2 are row tails of the GEMM kernels before them
    # softmax stays on chip between QKᵀ (with its scale and mask) and ·V (with the head merge)
    att = next(k for k in kernels if k.attributes["kind"] == "attention")
    assert att.attributes["members"] == ["graph.matmul", "graph.div", "graph.add"] + ["graph.softmax"] * 4 + [
        "graph.matmul", "graph.transpose"]
    assert all(level == "shared" for _, _, level in att.attributes["levels"])
    # the FFN: matmul → bias → GELU → matmul → bias → residual → LN2, the hidden row tile in shared memory
    proj, ffn = [k for k in kernels if k.attributes["kind"] == "mlp"]
    # the output projection (+ bias + residual) with LN1: one GEMM whose rows stay on chip for the tail
    assert proj.attributes["members"] == ["graph.matmul", "graph.add", "graph.add"] + ["graph.layer_norm"] * 5
    assert proj.attributes["tile"]["split"] == 0
    members = ffn.attributes["members"]
    assert members[0] == "graph.matmul" and "graph.erf" in members and members.count("graph.matmul") == 2
    assert members[-5:] == ["graph.layer_norm"] * 5
    levels = ffn.attributes["levels"]
    assert all(lv == "shared" for _, c, lv in levels if c >= len(members) - 5)
    assert [lv for _, c, lv in levels if c < len(members) - 5].count("shared") == 1   # hidden → 2nd GEMM
    top = [op for op in fn.body.ops if op.name in ("tile.compute", "tile.kernel")]
    assert len(top) <= _count(fn, "tile.compute") // 2


def test_ablation_max_level_global_fuses_nothing():
    fn = _compiled("welder{max-level=global}")
    assert _count(fn, "tile.kernel") == 0
    assert _count(fn, "tile.compute") == 41


def test_max_level_shared_keeps_only_row_groups():
    fn = _compiled("welder{max-level=shared}")
    assert {op.attributes["kind"] for op in fn.body.ops if op.name == "tile.kernel"} == {"row"}


CONV = """module {
  func.func @main(%x: tensor<1x4x8x8xf32>, %w: tensor<4x4x3x3xf32>) -> (tensor<1x4x8x8xf32>) {
    %0 = tile.compute "Y[n, c, h, w] = max(X[n, c, h, w], 0.0)" (%x) : (tensor<1x4x8x8xf32>) -> tensor<1x4x8x8xf32>
    %1 = tile.compute "Y[n, f, h, w] += X[n, c, h + kh - 1, w + kw - 1] * W[f, c, kh, kw]" (%0, %w) : (tensor<1x4x8x8xf32>, tensor<4x4x3x3xf32>) -> tensor<1x4x8x8xf32>
    return %1 : tensor<1x4x8x8xf32>
  }
}
"""


def test_propagation_widens_conv_producer_by_its_halo(tmp_path):
    p = tmp_path / "conv.tir"
    p.write_text(CONV)
    graph = TileGraph(functions(read_ir(str(p)))[0].body)
    tiles = propagate(graph, [0, 1], {"n": (0, 1), "f": (0, 1), "h": (2, 6), "w": (0, 4)})
    # a 4x4 output tile of one filter needs a 6x6 (clipped at w=0: 5 wide) window of every input channel
    assert tiles[0] == {"n": (0, 1), "c": (0, 4), "h": (1, 7), "w": (0, 5)}
    assert halo(graph, [0, 1], {"n": (0, 1), "f": (0, 1), "h": (2, 6), "w": (0, 4)})[0] > 0


def test_conv_is_not_an_epilogue_of_its_elementwise_producer(tmp_path):
    p = tmp_path / "conv.tir"
    p.write_text(CONV)
    graph = TileGraph(functions(read_ir(str(p)))[0].body)
    groups = search_groups(graph, get_arch("h200"))
    assert [g.members for g in groups] == [[0], [1]]


def test_smem_plan_reuses_dead_buffers_best_fit():
    offsets, total = plan([Buffer("a", 256, 0, 1), Buffer("b", 256, 1, 2), Buffer("c", 256, 2, 3),
                           Buffer("s", 4, 0, 3)])
    assert offsets["a"] == offsets["c"] != offsets["b"]
    assert total == 2 * 256 + 16   # a and c share bytes; the row scalar is live throughout


@pytest.mark.parametrize("level", ["bogus"])
def test_bad_max_level_is_an_error(level):
    from tilec.ir.diagnostics import CompileError
    with pytest.raises(CompileError):
        _compiled(f"welder{{max-level={level}}}")


def test_group_signature_tells_element_types_apart(tmp_path):
    """An f16 and an f32 group of one shape choose different kernels (tensor cores or not), so Welder's caches
    and its banned set must not take one for the other."""
    from tilec.analysis.welder.search import group_signature
    sigs = []
    for dtype in ("f32", "f16"):
        p = tmp_path / f"conv_{dtype}.tir"
        p.write_text(CONV.replace("f32", dtype))
        graph = TileGraph(functions(read_ir(str(p)))[0].body)
        sigs.append(group_signature(graph, [0, 1]))
    assert sigs[0] != sigs[1]
    assert sigs[0].replace("f32", "f16") == sigs[1]
