"""The ``mlp`` fusion pattern: two GEMMs back to back (or one with a row tail), a row tile of the hidden in
shared memory (matcher :mod:`.match`, kernel :mod:`.kernel` with its row tail :mod:`.tail`)."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("mlp", level="shared", enabled_at="register", priority=2)
class MlpPattern(FusionPattern):
    """Asked only where no ``epilogue``, ``row`` or ``conv_chain`` group matched."""

    def match(self, graph, members, spec):
        return match.mlp_group(graph, members, spec)

    def tile_attr(self, plan, nodes):
        return plan.tile_attr()

    def edge_levels(self, plan, edges, count):
        return plan.edge_levels(edges)

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_mlp(kernel_op, name, spec)
