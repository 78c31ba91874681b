"""The ``conv_pool`` fusion pattern (a conv chain's pooling tail): after the search, a conv chain whose
result is only summed over some dims gets a partial-sum op fused in, so that result stays on chip (rewrite
:mod:`.match`, kernel :mod:`.kernel`)."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("conv_pool", level="shared", enabled_at="register", stage="rewrite")
class ConvPoolPattern(FusionPattern):
    """A ``rewrite`` pattern: it edits the grouped function body instead of matching while groups grow."""

    def rewrite(self, block, graph, groups, spec, classify):
        return match.attach(block, graph, groups, spec, classify)

    def tile_attr(self, plan, nodes):
        return dict(plan.chain)

    def edge_levels(self, plan, edges, count):
        return plan.edge_levels(edges, count - 1)   # the chain's tile is reduced in shared memory too

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_pool(kernel_op, name)
