"""The ``conv_chain`` fusion pattern: a producer conv's tile (halo included) recomputed per block into
shared memory for a consumer conv or pooling (matcher :mod:`.match`, kernel :mod:`.kernel`)."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("conv_chain", level="shared", enabled_at="shared", priority=1)
class ConvChainPattern(FusionPattern):
    """Asked only where neither ``epilogue`` nor ``row`` matched."""

    def match(self, graph, members, spec):
        return match.chain_group(graph, members, spec)

    def tile_attr(self, plan, nodes):
        return dict(plan.chain)

    def edge_levels(self, plan, edges, count):
        return plan.edge_levels(edges)

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_conv(kernel_op, name)
