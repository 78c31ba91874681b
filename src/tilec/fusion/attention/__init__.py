"""The ``attention`` fusion pattern: S = Q·Kᵀ → scale/mask → row softmax → ·V (→ head merge) in one kernel
per (batch·head, query tile), the score tile in shared memory (matcher :mod:`.match`, kernel :mod:`.kernel`);
f16/bf16 chains on sm_80+ run on tensor cores with an online softmax instead (:mod:`.mma`).
A ``seed`` pattern: the search takes the whole chain from its QKᵀ node before growing a group there."""
from __future__ import annotations

from ..registry import FusionPattern, fusion_pattern
from . import kernel, match


@fusion_pattern("attention", level="shared", enabled_at="register", stage="seed")
class AttentionPattern(FusionPattern):
    """The whole attention chain, when it beats its three segments apart."""

    def seed(self, graph, idx, spec, apart, cache):
        return match.fused_group(graph, idx, spec, apart, cache)

    def tile_attr(self, plan, nodes):
        return plan.tile_attr()

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_attention(kernel_op, name)
