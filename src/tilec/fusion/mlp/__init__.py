"""The ``mlp`` fusion pattern: two GEMMs back to back (or one with a row tail), a row tile of the hidden in
shared memory (matcher :mod:`.match`, kernel :mod:`.kernel` with its row tail :mod:`.tail`); f16/bf16 chains
on sm_90 run on wgmma instead (:mod:`.wgmma`, issue #21).

On CUDA cores the kernel is f32 only (issue #17's choice for f16/bf16): elsewhere a half-precision FFN is left
to the ``epilogue`` kind, which lowers it as two tensor-core engine GEMMs with fused epilogues (GEMM + bias +
GELU, GEMM + bias; tests/welder/test_mlp_half_split.py). A back-to-back mma.sync kernel would have to keep a
row tile of the hidden on chip: for BERT-base (1024 tokens, 768 -> 3072 -> 768) that is BM x 3072 f16 in
shared memory (BM = 64: 384 KB, over every arch's opt-in limit) or, streaming the hidden in chunks, BM x 768
f32 output accumulators in registers (BM = 64: 192 KB, 3/4 of an SM's register file, 192 a thread at 8 warps
before the first GEMM's own), with only 1024 / BM = 16 blocks: at most 15% (a100) / 12% (h200) of the SMs.
The split writes and reads the hidden once, 2 x 6.3 MB: 6.2 us (a100) / 2.6 us (h200) at the specs' DRAM
bandwidth (less from L2) against 31 / 9.8 us of tensor-core time for 9.7 GFLOP, with full grids for both
GEMMs. docs/benchmarks/tensorcore-2026-12-07.md has both kernels.

On sm_90 the wgmma kernel streams the hidden in 64-column chunks through registers (Y's accumulators split
over column tiles of <= 192 and over consumer warpgroups, the weights multicast to clusters of two row tiles),
and Welder takes it where the latency model times
it faster than those two GEMMs (the welder pass' check against :meth:`MlpPattern.apart_parts`): many rows
with narrow weights, not BERT-base's FFN (docs/hopper.md)."""
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

    def apart_parts(self, plan, members):
        """A wgmma plan (f16/bf16 on sm_90) is timed against its sides as their own groups (the two engine
        GEMMs with fused epilogues it replaces), not against every member alone."""
        if plan.engine:
            return [members[:plan.split], members[plan.split:plan.tail]] + ([members[plan.tail:]] if
                                                                            plan.tail < len(members) else [])
        return None

    def lower(self, kernel_op, name, spec, kind=None):
        return kernel.lower_fused_mlp(kernel_op, name, spec)
