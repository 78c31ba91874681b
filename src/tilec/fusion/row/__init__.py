"""The ``row`` fusion pattern: softmax / layernorm style chains over rows, one block per row, staged in
shared memory (matcher :mod:`.match`, kernel :mod:`.kernel`)."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("row", level="shared", enabled_at="shared", priority=0)
class RowPattern(FusionPattern):
    """Row-wise reduction chains; competes with ``epilogue`` by score."""

    def match(self, graph, members, spec):
        return match.row_group(graph, members, spec)

    def tile_attr(self, plan, nodes):
        return plan.tile_attr()

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_row(kernel_op, name, spec)
