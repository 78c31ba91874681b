"""The register-level fused kernel (``kind = "epilogue"``): the anchor is lowered by its own kernel kind
(elementwise, reduce or tiled) through a :class:`~tilec.backend.lower.fused.FusedContext`, whose store
epilogue evaluates the other members at the anchor's output coordinates."""
from __future__ import annotations

from ...backend.lower import choose_kind
from ...backend.lower.elementwise import lower_elementwise
from ...backend.lower.fused import FusedContext
from ...backend.lower.reduce import lower_reduce
from ...backend.lower.tiled import lower_tiled


def lower_fused(kernel, name: str, kind: str | None = None):
    """The ``kernel.func`` of a register-level ``tile.kernel``."""
    ctx = FusedContext(kernel)
    kind = kind or choose_kind(ctx)
    if kind == "elementwise":
        func = lower_elementwise(ctx, name)
    elif kind == "tiled":
        func = lower_tiled(ctx, name, ctx.members[0].attributes.get("rtile"))
    else:
        func = lower_reduce(ctx, name)
    for key in ("bytes_modelled", "bytes_unclustered"):   # the epilogue moves the same with or without a cluster
        if key in func.attributes:
            func.attributes[key] = int(func.attributes[key]) + ctx.epilogue_bytes()
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in ctx.members)
    return func
