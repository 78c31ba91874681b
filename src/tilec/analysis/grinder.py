"""Grinder's (Cocktailer, OSDI'23; DESIGN §6) estimate: is a loop cheaper driven from the host or run as one
persistent device kernel, and with how many blocks?

A device loop runs every body stage on all resident blocks (virtual blocks ``v = blockIdx.x; v < tasks;
v += grid``) with a grid-wide barrier after each stage and one more after the carry step, so one iteration
costs ``Σ_stages ⌈tasks/grid⌉ · task_seconds + (stages + 1) · barrier_seconds(grid)``. Candidate grids are
the multiples of the SM count, ``k · #SM`` for ``k = 1 .. resident blocks per SM`` (every block must be
resident, or a barrier never completes); the cheapest wins, the smaller grid on a tie. A barrier costs a
fence plus an L2 round trip (rammer's ``wait_seconds``) plus one same-address atomic per block, which the
L2 serialises (the spec's ``atomic_cycles`` each at the SM clock). The host-driven loop pays a launch per stage per
iteration (rammer's ``kernel_seconds``) and, when the condition is data dependent (or for an if's
predicate), one device→host read (``HOST_SYNC``). These are modelling constants, like rammer's: without a GPU the estimate decides.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .hardware import GPUSpec
from .rammer.cost import Member, kernel_seconds, program_blocks, task_seconds, wait_seconds

HOST_SYNC = 10.0e-6     # s per device→host read of a loop condition (stream drain + PCIe round trip)


@dataclass(frozen=True)
class GridChoice:
    """The chosen grid and the estimates behind it (seconds per iteration unless named otherwise)."""

    grid: int
    blocks_per_sm: int
    threads: int
    device_iter_seconds: float
    host_iter_seconds: float
    candidates: tuple  # ((grid, seconds per iteration), ...) in order tried

    @property
    def why(self) -> str:
        tried = ", ".join(f"{g}: {s * 1e6:.3g}us" for g, s in self.candidates)
        return (f"cheapest of the SM-count multiples by estimate per iteration ({tried}); "
                f"host-driven {self.host_iter_seconds * 1e6:.3g}us")


def barrier_seconds(grid: int, spec: GPUSpec) -> float:
    return wait_seconds(spec) + grid * spec.atomic_cycles / (spec.clock_ghz * 1e9)


def block_shape(stages: list) -> tuple | None:
    """``(threads, smem)`` of a block that runs every stage, or None. Stages with barriers or warp shuffles
    that cannot run guarded (rammer's ``fixed_width``) must run with exactly their own thread count, so they
    fix the block (None when two disagree); guardable ones run guarded in a block at least as wide (every
    thread meets their barriers, the extra ones skip the work); the others are independent per thread, so a
    smaller one runs on the first threads and a bigger one walks its threads in block-sized chunks
    (``backend/lower/device_loop.py``)."""
    fixed = {m.threads for m in stages if m.fixed_width}
    if len(fixed) > 1:
        return None
    threads = fixed.pop() if fixed else max(m.threads for m in stages)
    if any(m.barriers and m.threads > threads for m in stages):
        return None  # a barrier stage wider than the block cannot walk its threads in chunks
    return threads, sum(m.smem for m in stages)


def choose_grid(stages: list, spec: GPUSpec, host_reads: bool) -> GridChoice | None:
    """The best grid for ``stages`` (rammer ``Member``s in body order), or None if no block is resident."""
    shape = block_shape(stages)
    if shape is None:
        return None
    threads, smem = shape
    # Every stage is a __device__ function of one kernel: a thread needs the hungriest stage's registers, and
    # __launch_bounds__(threads, per_sm) caps them, so a higher per_sm would only make ptxas spill (as Rammer).
    limit = program_blocks(spec, threads, smem, max(m.regs for m in stages))
    if limit == 0:
        return None
    candidates = []
    for per_sm in range(1, limit + 1):
        grid = per_sm * spec.num_sms
        work = sum(math.ceil(m.blocks / grid) * task_seconds(m, per_sm, spec) for m in stages)
        candidates.append((grid, work + (len(stages) + 1) * barrier_seconds(grid, spec)))
        if grid >= max(m.blocks for m in stages):
            break  # more blocks than any stage has tasks: a bigger grid only adds barrier arrivals
    grid, best = min(candidates, key=lambda c: (c[1], c[0]))
    host = sum(kernel_seconds(m, spec) for m in stages) + (HOST_SYNC if host_reads else 0.0)
    return GridChoice(grid, grid // spec.num_sms, threads, best, host,
                      tuple((g, float(f"{s:.4g}")) for g, s in candidates))
