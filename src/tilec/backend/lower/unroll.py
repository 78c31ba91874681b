"""Which reduce loops around a thread's accumulators to unroll fully (the tiled kernel and conv chains).

An unrolled reduce body holds ``steps x per_step`` multiply-adds. ptxas bounds the registers that body takes by
its own scheduling, so NVIDIA targets keep each caller's historical rule (``legacy``). AMDGPU's LLVM (hipcc for
gfx90a) schedules every LDS read of an unrolled body ahead of its FMAs and keeps the operands live: a conv
chain's 144-step C body and 189-FMA P body took 256 VGPRs + 256 AGPRs and spilled 1317 VGPRs
(docs/benchmarks/amd-2026-12-07.md). A target whose spec sets ``unrolled_body_regs`` gets a budget instead:
from the innermost loop outwards a loop unrolls while ``accumulators + unrolled FMAs`` (one live operand per
FMA) stays within it; the first loop over budget and every loop around it stay rolled (``#pragma unroll 1``:
LLVM would otherwise unroll small constant trip counts by itself)."""
from __future__ import annotations


def unroll_flags(spec, steps: list, per_step: int, accumulators: int, legacy) -> list:
    """Per loop (outermost first) the builder's ``unroll`` value: -1 full, 1 rolled, 0 the compiler's choice.
    ``steps`` are the loops' trip counts, ``per_step`` the FMAs of one innermost iteration, ``legacy(step)``
    the caller's rule where the target sets no budget."""
    budget = getattr(spec, "unrolled_body_regs", 0)
    if not budget:
        return [legacy(s) for s in steps]
    flags, body, rolled = [], per_step, False
    for s in reversed(steps):
        body *= s
        rolled = rolled or s > 16 or accumulators + body > budget
        flags.append(1 if rolled else -1)
    return flags[::-1]
