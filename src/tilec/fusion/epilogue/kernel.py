"""The register-level fused kernel (``kind = "epilogue"``): the anchor is lowered by its own kernel kind
(elementwise, reduce or tiled) through a :class:`~tilec.backend.lower.fused.FusedContext`, whose store
epilogue evaluates the other members at the anchor's output coordinates."""
from __future__ import annotations

from ...backend.lower import choose_kind
from ...backend.lower.elementwise import lower_elementwise
from ...backend.lower.fused import FusedContext
from ...backend.lower import mma_conv
from ...backend.lower.reduce import lower_reduce
from ...backend.lower.tiled import lower_tiled
from ...backend.lower.tiled_mma import aligned, engine_config, lower_engine


def lower_fused(kernel, name: str, kind: str | None = None):
    """The ``kernel.func`` of a register-level ``tile.kernel``."""
    ctx = FusedContext(kernel)
    kind = kind or choose_kind(ctx)
    if kind == "elementwise":
        func = lower_elementwise(ctx, name)
    elif kind == "tiled":
        rtile = ctx.members[0].attributes.get("rtile")
        conv = mma_conv.engine(ctx)   # a channels-last convolution: the engine's implicit GEMM
        cfg = engine_config(ctx, rtile) if conv is None and aligned(ctx, rtile) else None
        # An f16/bf16 contraction on an mma-aligned tile runs on the sm_80 tensor-core engine, the members on
        # its accumulator fragments; elsewhere (f32, V100, ragged operand rows) the CUDA-core tiled kernel.
        func = (mma_conv.lower(ctx, name, *conv) if conv is not None else lower_engine(ctx, name, rtile, cfg)
                if cfg is not None else lower_tiled(ctx, name, rtile))
    else:
        func = lower_reduce(ctx, name)
    for key in ("bytes_modelled", "bytes_unclustered"):   # the epilogue moves the same with or without a cluster
        if key in func.attributes:
            func.attributes[key] = int(func.attributes[key]) + ctx.epilogue_bytes()
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in ctx.members)
    return func
