"""Seen in the ONNX node tests for FlexAttention under the welder pipeline (with Welder work in progress; it
does not reproduce through the committed pipelines): ``FusedContext.staging_plan`` (backend/lower/fused.py)
raised ``KeyError: 'k'``, the anchor's reduce axis in ``A[m, k]``. The plan's budget is the static shared
memory the anchor's tiled kernel leaves, and the anchor's staged boxes span its reduce axes, so that count
needs a step per reduce axis; a caller that sizes an epilogue from a block tile alone (as a GEMM side of a
back-to-back fused kernel does) gives none. Fixed: missing steps are taken as the tiled kernel's
``resolve_config`` takes them (the extent clipped to 16), so a block-only config plans exactly what the
explicit default config plans."""
import pytest

from tilec.backend.lower.fused import FusedContext
from tilec.ir.core import functions
from tilec.ir.parser import parse_module
from tilec.passes.pipeline import PassManager, parse_pipeline

# A matmul anchor with a per-column bias (worth staging per block) and a full-size residual (not worth it).
GROUP = """module {
  func.func @main(%a: tensor<64x100xf32>, %w: tensor<100x128xf32>, %bias: tensor<128xf32>, %r: tensor<64x128xf32>) -> (tensor<64x128xf32>) {
    %0 = tile.compute "C[m, n] += A[m, k] * B[k, n]" (%a, %w) : (tensor<64x100xf32>, tensor<100x128xf32>) -> tensor<64x128xf32>
    %1 = tile.compute "Y[m, n] = X[m, n] + Z[n]" (%0, %bias) : (tensor<64x128xf32>, tensor<128xf32>) -> tensor<64x128xf32>
    %2 = tile.compute "Y[m, n] = X[m, n] + R[m, n]" (%1, %r) : (tensor<64x128xf32>, tensor<64x128xf32>) -> tensor<64x128xf32>
    return %2 : tensor<64x128xf32>
  }
}
"""


def _context() -> FusedContext:
    module = parse_module(GROUP, "group.tir")
    PassManager(parse_pipeline("roller,welder")).run(module)
    kernel = next(op for op in functions(module)[0].body.ops if op.name == "tile.kernel")
    assert kernel.attributes["kind"] == "epilogue" and len(kernel.attributes["members"]) == 3
    return FusedContext(kernel)


def _plan(ctx, cfg) -> list:
    return [(i, mctx.access_key(acc), box, nbytes) for i, mctx, acc, box, nbytes in ctx.staging_plan(cfg)]


@pytest.mark.parametrize("steps", [None, {}], ids=["no-step-key", "empty-steps"])
def test_staging_plan_of_a_block_only_config(steps):
    ctx = _context()
    block = {"m": 16, "n": 32}
    cfg = {"block": block} if steps is None else {"block": block, "step": steps}
    full = {"block": block, "thread": {"m": 1, "n": 1}, "step": {"k": 16}}   # resolve_config's default step
    plan = _plan(ctx, cfg)
    assert plan == _plan(ctx, full)
    assert [i for i, *_ in plan] == [1]          # the bias is staged, the residual is not
    assert ctx.epilogue_bytes(cfg) == ctx.epilogue_bytes(full)


def test_given_steps_still_count():
    """A step that is given is used: K whole (100) fills the shared memory with the anchor's own boxes
    (A 64x100, B 100x128: over 48 KiB), so nothing is left to stage the bias in."""
    ctx = _context()
    block = {"m": 64, "n": 128}
    assert [i for i, *_ in _plan(ctx, {"block": block})] == [1]
    assert _plan(ctx, {"block": block, "step": {"k": 100}}) == []
