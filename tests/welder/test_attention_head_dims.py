"""Attention at head dims 48 to 256 and a sequence that is no tile multiple (200), f16 and f32, on A100, V100
and H200: every build compiles and matches numpy under the emulator.

Two bugs this guards:
- f16, batch 1, 2 heads, seq 200, d 128 on A100 did not compile: Roller counted the P·V tile's shared memory
  in f16 bytes while the CUDA-core tiled kernel stages f32, and welder lowered the over-limit tile to price
  the ops apart ("tile config needs 58432 B of shared memory (limit 49152)"); tests/roller/test_roller_smem.py
  has the accounting's unit test.
- the tensor-core attention kernel (fusion/attention/mma.py, sm_80 and sm_90) gave NaN at d 96 (and 48, 80,
  112): ``tl_swizzle_b16<96>`` sends the chunks of a 12-chunk row past the 8th into the next row; its tiles'
  rows now take :func:`mma.row_width` elements."""
from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, save

from tilec.driver import compile_model, make_executor
from tilec.fusion.attention import mma
from tilec.ir import read_ir

ONNX_T = {"f16": TensorProto.FLOAT16, "f32": TensorProto.FLOAT}
NP_T = {"f16": np.float16, "f32": np.float32}
TOL = {"f16": 4e-3, "f32": 1e-5}   # relative to max |ref|: P is rounded to f16 before ·V


def _attention(d, dtype: str, s: int, hd: int, heads: int = 2, kt: bool = True):
    """Q·Kᵀ / sqrt(hd) → softmax → ·V over (1, heads, s, hd); K given as Kᵀ or through a Transpose. Writes
    ``d/m.onnx``; returns (feeds, reference in f64 from the same rounded inputs)."""
    t, npt = ONNX_T[dtype], NP_T[dtype]
    kname, kshape = ("kt", [1, heads, hd, s]) if kt else ("k", [1, heads, s, hd])
    ins = [helper.make_tensor_value_info("q", t, [1, heads, s, hd]), helper.make_tensor_value_info(kname, t, kshape),
           helper.make_tensor_value_info("v", t, [1, heads, s, hd])]
    nodes = [] if kt else [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2])]
    nodes += [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"]),
              helper.make_node("Softmax", ["sd"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    rng = np.random.default_rng(s * 7 + hd)
    q, k, v = (rng.standard_normal((1, heads, s, hd)).astype(npt) for _ in range(3))
    scale = np.array([math.sqrt(hd)], npt)
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info("o", t, [1, heads, s, hd])],
                              [helper.make_tensor("scale", t, [1], scale.tobytes(), raw=True)])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(d / "m.onnx"))
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    sc = q64 @ k64.transpose(0, 1, 3, 2) / float(scale[0])
    p = np.exp(sc - sc.max(-1, keepdims=True))
    feeds = {"q": q, kname: k.transpose(0, 1, 3, 2).copy() if kt else k, "v": v}
    return feeds, (p / p.sum(-1, keepdims=True)) @ v64


def _check(tmp_path, dtype, s, hd, arch, kt=True, order="normal"):
    feeds, ref = _attention(tmp_path, dtype, s, hd, kt=kt)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch=arch)
    got = make_executor(str(tmp_path / "b"), "emu", order).run(feeds)["o"]
    assert got.dtype == NP_T[dtype] and got.shape == ref.shape
    np.testing.assert_allclose(got.astype(np.float64), ref, rtol=0, atol=TOL[dtype] * float(np.abs(ref).max()))
    return read_ir(str(tmp_path / "b" / "model.tir"))


def _kinds(module) -> list:
    return [op.attributes.get("kind") for op in module.body.ops if op.name == "kernel.func"]


def test_f16_d128_seq200_on_a100_is_one_tensor_core_attention_kernel(tmp_path):
    _attention(tmp_path, "f16", 200, 128)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), arch="a100")
    funcs = [op for op in read_ir(str(tmp_path / "b" / "model.tir")).body.ops if op.name == "kernel.func"]
    assert [f.attributes.get("kind") for f in funcs] == ["attention"]
    a = funcs[0].attributes
    # 64 query rows of Q and two stages of 64-key K and V chunks (b16) in dynamic shared memory, over the
    # 48 KB static limit and under A100's opt-in one
    assert a["config"]["engine"] == "mma_sync" and a["smem"] == (64 * 128 + 2 * 64 * 256) * 2 + 4


@pytest.mark.parametrize("cols", range(16, 257, 16))
def test_row_width_keeps_every_swizzled_chunk_in_its_row(cols):
    """``tl_swizzle_b16<W>`` (cuda_prelude.h) on rows of ``row_width(cols)``: the ``cols // 8`` chunks of each
    row land on distinct chunks of that row, and 8 consecutive rows' chunk 0 on 8 distinct bank groups when
    the row has 8 or more chunks."""
    w = mma.row_width(cols)
    chunks, wchunks = cols // 8, w // 8
    rows_per_line = 1 if wchunks >= 8 else 8 // wchunks
    span = min(wchunks, 8)

    def chunk_at(row, c):   # the chunk index within the row that chunk c of row ``row`` is stored at
        return ((c ^ (row // rows_per_line)) & (span - 1)) | (c & ~(span - 1))
    assert w >= cols and w % 8 == 0 and (w == cols or w in (64, 128, 192, 256))
    for row in range(16):
        placed = {chunk_at(row, c) for c in range(chunks)}
        assert len(placed) == chunks and max(placed) < wchunks, (row, sorted(placed))
    if wchunks >= 8:
        assert len({chunk_at(row, 0) for row in range(8)}) == 8


def test_f16_d96_matches_numpy_on_a100(tmp_path):
    """It was NaN: a 12-chunk row's swizzle wrote outside the row."""
    m = _check(tmp_path, "f16", 200, 96, "a100")
    assert _kinds(m) == ["attention"]


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["a100", "v100", "h200"])
@pytest.mark.parametrize("hd", [96, 128, 256])
@pytest.mark.parametrize("dtype", ["f16", "f32"])
def test_attention_head_dims_match_numpy(tmp_path, dtype, hd, arch):
    _check(tmp_path, dtype, 200, hd, arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["a100", "h200"])
@pytest.mark.parametrize("hd", [48, 80, 112])
def test_padded_row_head_dims_with_k_transposed_match_numpy(tmp_path, hd, arch):
    """K as [keys][d] rows (the K tile's rows padded too), an odd sequence, blocks and threads reversed."""
    m = _check(tmp_path, "f16", 77, hd, arch, kt=False, order="reverse")
    assert "attention" in _kinds(m)
