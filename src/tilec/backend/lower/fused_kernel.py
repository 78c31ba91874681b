"""Lowering a welder ``tile.kernel`` to one ``kernel.func``: register-level groups through the anchor's
kernel kind with an epilogue (``fused.py``), shared-level row groups through the row kernel
(``fused_row.py``)."""
from __future__ import annotations

from . import kernel_symbol
from .fused import lower_fused
from .fused_row import lower_fused_row


def lower_kernel(kernel, index: int, kind: str | None = None):
    """The ``kernel.func`` for one ``tile.kernel`` (``kind`` forces the anchor's kernel kind)."""
    name = kernel_symbol(index, "fused_" + kernel.attributes["kind"], "fused")
    if kernel.attributes["kind"] == "attention":
        from .fused_attention import lower_fused_attention
        func = lower_fused_attention(kernel, name)
    elif kernel.attributes["kind"] == "row":
        func = lower_fused_row(kernel, name)
    elif kernel.attributes["kind"] == "conv_chain":   # producer conv tile in shared memory
        from .fused_conv import lower_fused_conv
        func = lower_fused_conv(kernel, name)
    elif kernel.attributes["kind"] == "mlp":   # back-to-back GEMMs, hidden row tile in shared memory
        from .fused_mlp import lower_fused_mlp
        func = lower_fused_mlp(kernel, name)
    elif kernel.attributes["kind"] == "conv_pool":   # conv chain + per-block partial sums of a pool
        from .fused_pool import lower_fused_pool
        func = lower_fused_pool(kernel, name)
    else:
        func = lower_fused(kernel, name, kind)
    func.loc = kernel.loc
    return func
