"""The ``epilogue`` fusion pattern: elementwise members run in the anchor's store epilogue, internal
edges in registers (matcher :mod:`.match`, kernel :mod:`.kernel`)."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("epilogue", level="register", enabled_at="register", priority=0, retile=True)
class EpiloguePattern(FusionPattern):
    """Anchor + elementwise epilogue; its tile is the anchor's, re-chosen for the group by the welder pass."""

    def match(self, graph, members, spec):
        return match.epilogue_group(graph, members, spec)

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused(kernel_op, name, kind)
