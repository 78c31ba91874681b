"""Roller raises the padding threshold ε past the first one that fits while that still pays.

An extent with no power-of-two divisor but 1 (ViT's 197 tokens) offers only 1 and 197 at ε = 0; stopping
there chose 1-row tiles that re-read the whole weight once per row (an estimate ~19x worse)."""
from __future__ import annotations

from tilec.analysis.hardware import get_arch
from tilec.analysis.roller import construct_rtiles
from tilec.analysis.tile_problem import TileProblem
from tilec.ir import parse_module

MATMUL = """module {{
  func.func @main(%a: tensor<{m}x{k}xf32>, %b: tensor<{k}x{n}xf32>) -> (tensor<{m}x{n}xf32>) {{
    %0 = tile.compute "C[m, n] += A[m, k] * B[k, n]" (%a, %b) : (tensor<{m}x{k}xf32>, tensor<{k}x{n}xf32>) -> tensor<{m}x{n}xf32>
    return %0 : tensor<{m}x{n}xf32>
  }}
}}"""


def _best(m, k, n):
    module = parse_module(MATMUL.format(m=m, k=k, n=n))
    op = next(o for o in module.walk() if o.name == "tile.compute")
    return construct_rtiles(TileProblem.of(op), get_arch("h200"), 4)[0]


def test_odd_extent_gets_a_padded_tile_not_single_rows():
    odd, even = _best(197, 768, 2304), _best(192, 768, 2304)
    rows = dict(odd.rtile.block)
    assert min(rows.values()) >= 16, odd.rtile
    # padding 197 rows costs about what 192 rows cost, not an order of magnitude more
    assert odd.est.seconds <= 1.5 * even.est.seconds
    assert odd.est.traffic_bytes <= 2 * even.est.traffic_bytes
