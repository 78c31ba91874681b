"""Lowering ``tile.compute`` ops (and opaque graph ops) to ``kernel.func`` ops, one module per kernel kind:
``elementwise`` (``=`` expressions), ``reduce`` (block and serial reductions), ``tiled`` (contractions,
convolutions, pooling). :func:`lower_compute` picks the kind."""
from __future__ import annotations

import re

from .context import ComputeContext
from .elementwise import lower_elementwise
from .reduce import lower_reduce
from .tiled import lower_tiled, tileable

_BAD = re.compile(r"[^A-Za-z0-9_]")

# index_map.classify kinds that get the tiled kernel (when every index is affine).
TILED_KINDS = ("contraction", "conv")


def kernel_symbol(index: int, origin: str | None, fallback: str) -> str:
    """``k<index>_<what>``: ``what`` from the origin op name (``graph.matmul`` → ``matmul``), sanitised."""
    what = (origin or fallback).rsplit(".", 1)[-1]
    what = _BAD.sub("_", what)[:24].strip("_") or fallback
    return f"k{index}_{what}"


def choose_kind(ctx: ComputeContext) -> str:
    """elementwise | reduce | tiled."""
    if ctx.combiner is None:
        return "elementwise"
    from ...analysis.index_map import classify
    if classify(ctx.expr) in TILED_KINDS and tileable(ctx):
        return "tiled"
    return "reduce"


def lower_compute(op, index: int, kind: str | None = None):
    """The ``kernel.func`` for one ``tile.compute`` op (``kind`` forces a kernel kind)."""
    ctx = ComputeContext(op)
    kind = kind or choose_kind(ctx)
    name = kernel_symbol(index, ctx.origin(), kind)
    if kind == "elementwise":
        func = lower_elementwise(ctx, name)
    elif kind == "tiled":
        from . import mma_conv
        from .tiled_mma import aligned, lower_tiled_mma
        rtile = op.attributes.get("rtile")
        conv = mma_conv.engine(ctx)   # a channels-last f16/bf16/tf32 conv: implicit GEMM on tensor cores
        if conv is not None:
            func = mma_conv.lower(ctx, name.replace("_tiled", "_tiled_mma"), *conv)
        elif aligned(ctx, rtile):   # f16/bf16 matmul on an mma-aligned tile: tensor cores
            func = lower_tiled_mma(ctx, name.replace("_tiled", "_tiled_mma"), rtile)
        else:
            func = lower_tiled(ctx, name, rtile)
    else:
        func = lower_reduce(ctx, name)
    func.attributes["expr"] = op.attributes["expr"]
    if ctx.origin():
        func.attributes["origin"] = ctx.origin()
    func.loc = op.loc
    return func


__all__ = ["ComputeContext", "choose_kind", "kernel_symbol", "lower_compute"]
