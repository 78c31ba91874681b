"""Rammer's cost model: what one rTask (a thread block) costs on a vEU, and how many vEUs an SM holds.

An SM's fp32 throughput and its share of DRAM bandwidth (peak / #SMs) are split between the blocks
resident on it: a task gets ``share = min(warps / saturating_warps_per_sm, 1 / occ)`` of them, where ``occ`` is the
number of blocks sharing its SM, and costs ``max(flops/(F·share), bytes/(B·share)) + block_seconds``. A lone small kernel therefore runs its few blocks on a few SMs at their
per-SM speed and leaves the rest idle, which is exactly the waste Rammer packs away. Launches cost
``launch_seconds`` each (host launch plus the drain and ramp between dependent kernels); a segment's step
flag waits cost ``wait_seconds`` (a fence and an L2 round trip) per round of as many flags as the block
has threads. These constants are the GPU spec's (``analysis/hw/*.json``: modelling constants until ``make
gpu-calibrate`` measures them): without a GPU the estimate decides, as in Roller (DESIGN §3).

Where the pass knows a member's time by the latency model (``Member.seconds``: ``analysis/latency``, what
its report.json row says, issue #18), the baseline a packing must beat is that time, and its rTasks take
this model's durations scaled so that the kernel alone lasts that long (:func:`latency_scale`): the packed
makespan and the kernels left alone are then in the same units as report.json's ``modelled_us``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..hardware import GPUSpec
from .regs import blocks_for_regs, sgpr_blocks

def launch_seconds(spec: GPUSpec) -> float:
    """s per kernel launch in a stream (launch latency + tail/ramp of the grid): the spec's
    ``launch_overhead_us`` (a measured file overrides it: ``analysis/measured.py``)."""
    return spec.launch_overhead_us / 1e6


def block_seconds(spec: GPUSpec) -> float:
    """s per block: scheduling, index math, first loads' latency (``block_overhead_us``)."""
    return spec.block_overhead_us / 1e6


def wait_seconds(spec: GPUSpec) -> float:
    """s per round of counter or flag polls, a fence and an L2 round trip (``grid_barrier_us``; the block's
    threads each poll one per round)."""
    return spec.grid_barrier_us / 1e6


REGS_ASSUMED = 64          # registers per thread of a kernel whose IR shows no state (hand-written source)


@dataclass(frozen=True)
class Member:
    """One packable kernel launch: node ``node`` of the launch graph, launching ``kernel``."""

    node: int
    kernel: str
    blocks: int
    threads: int
    smem: int           # static shared bytes of one block (analysis/rammer/shared.layout)
    barriers: bool      # has __syncthreads / warp shuffles: every thread of the block must call it
    flops: int
    bytes: int
    guardable: bool = False  # has barriers, but can run guarded in a wider block (backend/lower/persistent)
    variant: int = 0         # which of the kernel's Roller alternatives (0: the tile it was lowered with)
    regs: int = REGS_ASSUMED  # registers per thread it needs (estimate: regs.kernel_regs)
    buffers: int = 0         # its kernel's buffer params: slots of the persistent block's pointer table
    seconds: float = 0.0     # its launch alone by the latency model (analysis/latency: its report.json row's
    #                          modelled_us); 0: not known, :func:`kernel_seconds` stands in

    @property
    def fixed_width(self) -> bool:
        """Must run with exactly ``threads`` threads per block."""
        return self.barriers and not self.guardable


def resident_limits(spec: GPUSpec, threads: int, smem: int, regs: int | None = REGS_ASSUMED,
                    smem_cap: int | None = None) -> dict:
    """Blocks of ``threads`` threads and ``smem`` shared bytes one SM holds at once, per resource: ``blocks``
    and ``threads`` per SM, ``registers`` (when ``regs`` per thread is known) and ``shared memory`` (when the
    block has any; 0 over ``smem_cap``, by default the 48 KB a block may declare statically). The register
    limit is ptxas' own (``regs.reg_budget``): under ``__launch_bounds__(threads, n)`` a thread gets fewer
    registers than ``regs_per_sm / (threads · n)``, and what it needs beyond them spills."""
    warps = math.ceil(threads / spec.warp_size) * spec.warp_size
    limits = {"blocks": spec.max_blocks_per_sm, "threads": spec.max_threads_per_sm // warps}
    if regs is not None:
        limits["registers"] = blocks_for_regs(spec, threads, regs)
    if smem:
        cap = spec.smem_per_block_bytes if smem_cap is None else smem_cap
        per_block = smem + spec.smem_reserved_per_block_bytes
        limits["shared memory"] = 0 if smem > cap else spec.smem_per_sm_bytes // per_block
    return limits


def resident_blocks(spec: GPUSpec, threads: int, smem: int, regs: int = REGS_ASSUMED) -> int:
    """Blocks one SM holds at once: the tightest of :func:`resident_limits` (0 if none fits)."""
    return max(0, min(resident_limits(spec, threads, smem, regs).values()))


def program_blocks(spec: GPUSpec, threads: int, smem: int, regs: int) -> int:
    """Blocks per SM a persistent rProgram of ``threads``-thread blocks with ``smem`` arena bytes may use,
    its members needing ``regs`` registers per thread: no more than ``regs`` leaves room for (ptxas would
    spill the rest), and no more than the ``rprog.program`` verifier's bound, which assumes ``REGS_ASSUMED``
    (it cannot see the members' registers, and must hold whatever ptxas allocates under
    ``__launch_bounds__``). Members estimated below ``REGS_ASSUMED`` once got more blocks than the verifier
    allows (a 256-thread program at 6 per SM for 40 registers, where 64 allow 4): the program failed to verify.
    On AMD, also no more than the scalar register file leaves room for (``regs.sgpr_blocks``)."""
    blocks = resident_blocks(spec, threads, smem, max(regs, REGS_ASSUMED))
    by_sgprs = sgpr_blocks(spec, threads)
    return blocks if by_sgprs is None else min(blocks, by_sgprs)


def task_seconds(m: Member, occ: int, spec: GPUSpec) -> float:
    """One rTask of ``m`` sharing its SM with ``occ`` blocks in all. A block gets at most ``1/occ`` of its
    SM, and no more than its own warps can keep busy (``warps / saturating_warps_per_sm``): latency hiding needs
    warps in flight (Little's law), so a lone small block runs slower than its share."""
    return _model_task_seconds(m, occ, spec) * latency_scale(m, spec)


def _model_task_seconds(m: Member, occ: int, spec: GPUSpec) -> float:
    """:func:`task_seconds` by this model alone (not scaled to the latency model)."""
    share = min(math.ceil(m.threads / spec.warp_size) / spec.saturating_warps_per_sm, 1.0 / occ)
    per_flops = spec.fp32_flops / spec.num_sms * share
    per_bytes = spec.dram_bytes_per_s / spec.num_sms * share
    return max(m.flops / m.blocks / per_flops, m.bytes / m.blocks / per_bytes) + block_seconds(spec)


def latency_scale(m: Member, spec: GPUSpec) -> float:
    """How much longer the latency model times ``m``'s launch alone than this model does (launch excluded;
    1 when ``m.seconds`` is not known): its rTasks take that much longer, so a packed makespan is in the
    latency model's units, comparable with :func:`sequential_seconds` and with report.json (issue #18)."""
    if not m.seconds:
        return 1.0
    own = kernel_seconds(m, spec, _model_task_seconds) - launch_seconds(spec)
    return max(m.seconds - launch_seconds(spec), 0.0) / own if own > 0 else 1.0


def kernel_seconds(m: Member, spec: GPUSpec, task=task_seconds) -> float:
    """``m`` launched on its own: its blocks spread over the SMs, up to its resident limit per SM, each rTask
    ``task(m, occ, spec)`` long."""
    # REGS_ASSUMED, not m.regs: a standalone kernel is built with __launch_bounds__(threads, 1), so ptxas
    # allocates what it likes (often well above m.regs, which estimates what the kernel needs, not what it
    # gets); the baseline packing must beat stays the one it has always been.
    limit = max(1, resident_blocks(spec, m.threads, m.smem))
    occ = min(limit, math.ceil(m.blocks / spec.num_sms))
    waves = math.ceil(m.blocks / (occ * spec.num_sms))
    return launch_seconds(spec) + waves * task(m, occ, spec)


def sequential_seconds(members, spec: GPUSpec) -> float:
    """The members launched one after another: what a packing must beat. Each costs what the latency model
    says of its kernel as lowered (``Member.seconds``, issue #18), so Rammer packs only where its makespan
    beats the time report.json would show without the packing (nerf_mlp's rammer build modelled 326.6 us
    against welder's 197.4 us when this baseline was Rammer's own :func:`kernel_seconds`)."""
    return sum(m.seconds or kernel_seconds(m, spec) for m in members)
