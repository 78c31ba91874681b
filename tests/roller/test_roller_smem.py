"""Roller's shared memory is the lowering's: for every candidate Roller keeps whose tile runs on the CUDA-core
tiled kernel, the estimate's ``smem_bytes`` equals what the lowered ``kernel.func`` declares, so no kept
candidate exceeds the static limit at lower-cuda.

The first case is the P·V product of an f16 attention (batch 1, 2 heads, seq 200, head dim 128) on A100:
Roller counted its staged boxes in f16 bytes and by its own bank padding while the tiled kernel stages halves
widened to f32, so a step of 200 keys "fit" in 29,600 B and lowering asked for 58,432 B (limit 49,152). The
cases keep 8 query rows: fewer than one mma tile, so the CUDA-core kernel runs them (200 rows run on tensor
cores since batch-1 products match: tests/backend/test_mma_batch1.py)."""
from __future__ import annotations

import pytest

from tilec.analysis.cost_model import tiled_smem_bytes
from tilec.analysis.hardware import get_arch
from tilec.analysis.roller import construct_rtiles
from tilec.analysis.tile_problem import TileProblem
from tilec.backend.launch_resources import static_shared_bytes
from tilec.backend.lower import lower_compute
from tilec.ir import parse_module

# name: (arch, expr, input types, output type, attributes)
CASES = {
    "attention_pv_f16": ("a100", "Y[b0, b1, m, n] += A[0, b1, m, k] * B[0, b1, k, n]",
                         ["1x2x8x200xf16", "1x2x200x128xf16"], "1x2x8x128xf16", ""),
    "attention_qk_f16_v100": ("v100", "Y[b0, b1, m, n] += A[0, b1, m, k] * B[0, b1, k, n]",
                              ["1x2x8x96xf16", "1x2x96x200xf16"], "1x2x8x200xf16", ""),
    "bf16_matmul_v100": ("v100", "C[m, n] += A[m, k] * B[k, n]", ["200x72xbf16", "72x96xbf16"], "200x96xbf16", ""),
    "conv3x3_halo": ("a100", "Y[n, f, h, w] += X[n, c, h + kh - 1, w + kw - 1] * W[f, c, kh, kw]",
                     ["1x8x20x20xf32", "16x8x3x3xf32"], "1x16x20x20xf32", " {pad = 0.0}"),
    "conv_stride2": ("h200", "Y[n, f, h, w] += X[n, c, h*2 + kh - 1, w*2 + kw - 1] * W[f, c, kh, kw]",
                     ["1x4x17x17xf32", "8x4x3x3xf32"], "1x8x9x9xf32", " {pad = 0.0}"),
    "maxpool_f16": ("a100", "Y[n, c, h, w] max= X[n, c, h*2 + kh, w*2 + kw]", ["1x8x16x16xf16"], "1x8x8x8xf16",
                    " {pad = -65504.0, axes = {kh = 2, kw = 2}}"),
    "depthwise_f16": ("h200", "Y[n, c, h, w] += X[n, c, h + kh - 1, w + kw - 1] * W[c, kh, kw]",
                      ["1x6x10x10xf16", "6x3x3xf16"], "1x6x10x10xf16", " {pad = 0.0}"),
    "gram_same_tensor": ("a100", "C[m, n] += A[m, k] * A[n, k]", ["48x40xf32"], "48x48xf32", ""),
}


def _op(arch, expr, ins, out, attrs):
    args = ", ".join(f"%a{i}: tensor<{t}>" for i, t in enumerate(ins))
    types = ", ".join(f"tensor<{t}>" for t in ins)
    operands = ", ".join(f"%a{i}" for i in range(len(ins)))
    text = (f'module attributes {{tilec.target = "{arch}"}} {{\n'
            f"  func.func @main({args}) -> (tensor<{out}>) {{\n"
            f'    %0 = tile.compute "{expr}" ({operands}){attrs} : ({types}) -> tensor<{out}>\n'
            f"    return %0 : tensor<{out}>\n  }}\n}}\n")
    module = parse_module(text)
    return next(op for op in module.walk() if op.name == "tile.compute")


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_tiled_candidate_declares_the_estimated_smem(case):
    arch, *rest = CASES[case]
    op = _op(arch, *rest)
    spec = get_arch(arch)
    cands = construct_rtiles(TileProblem.of(op), spec, topk=8)
    tiled = 0
    for c in cands:
        op.attributes["rtile"] = c.rtile.as_attr()
        op.attributes["estimate"] = dict(c.est.as_attr(), arch=arch)
        func = lower_compute(op, 0)   # never "tile config needs N B of shared memory"
        if func.attributes["kind"] != "tiled":
            continue
        tiled += 1
        assert static_shared_bytes(func) == c.est.smem_bytes <= spec.smem_per_block_bytes, (c.rtile, func.attributes)
    assert tiled, [c.rtile for c in cands]


def test_attention_pv_step_that_did_not_fit_is_counted_in_f32():
    """The tile Roller chose before the fix (a 200-key step) is counted at what the lowering needs, over the
    limit, so Roller drops it instead of handing it to lower-cuda."""
    from tilec.analysis.cost_model import RTile, estimate
    op = _op(*CASES["attention_pv_f16"])
    problem = TileProblem.of(op)
    old = RTile((("b0", 1), ("b1", 1), ("m", 8), ("n", 64)), (("b0", 1), ("b1", 1), ("m", 2), ("n", 8)),
                (("k", 200),))
    # A: 8 rows x (200 + 1 pad) f32, B: 200 rows x (64 + 1 pad) f32
    assert tiled_smem_bytes(problem, old) == (8 * 201 + 200 * 65) * 4 == 58432
    assert estimate(problem, old, get_arch("a100")) is None
