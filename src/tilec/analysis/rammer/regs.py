"""Registers per thread: what a lowered kernel needs (an estimate) and what a block may use (ptxas' budget).

Rammer emits a persistent block with ``__launch_bounds__(threads, blocks_per_sm)`` so every vEU is resident;
ptxas then caps each thread's registers and *spills* what a member needs beyond the cap (vit_s32-small:
a Welder back-to-back GEMM, 113–128 registers standalone, packed into a 544-thread block capped at 96,
spilled 232 B). ptxas is not run during passes, so the scheduler checks an estimate against the cap.

Estimate (:func:`kernel_regs`): the kernel's per-thread state, from its IR: every ``kernel.local`` (accumulator
arrays, staged fragments, scalars; each declaration site counted once, as if all were live together: an upper
bound, since scopes may end before others begin) in 32-bit words, plus ``BASE_REGS`` for what the IR does not
name (thread/block indices, addresses, loop counters, predicates, temporaries of unrolled loads).
Hand-written kernels (``source``) carry no IR: they get ``cost.REGS_ASSUMED``.

Budget (:func:`reg_budget`): ptxas splits the SM's register file over its ``sm_partitions`` schedulers and
gives each thread a multiple of ``reg_alloc_unit`` registers (both from the arch spec), so that
``blocks_per_sm`` blocks' warps fit on the fullest partition: ``16384 / (ceil(warps · blocks / 4) · 32)``
rounded down to 8, at most 255 (the H200/H100/A100/V100 figures). Checked against ptxas 13 (sm_90) on a
kernel needing 200: (544, 1) → 96, (256, 2) → 128, (288, 2) → 96, (288, 3) → 72, (320, 3) → 64,
(544, 2) → 56, (160, 5) → 72, (1024, 1) → 64 (the plain ``65536 / (threads · blocks)`` says 120 for
(544, 1), 113 for (288, 2)).
"""
from __future__ import annotations

import math
import re

from ...ir.types import itemsize
from ..hardware import GPUSpec

BASE_REGS = 32     # indices, addresses, loop counters, predicates and load temporaries besides the locals

_VECTOR = re.compile(r"^(\w+?)x(\d+)$")   # f32x4: four f32 lanes


def _words(dtype: str) -> int:
    """32-bit registers one value of ``dtype`` occupies (f32x4: 4, f64: 2, f16/bool: 1)."""
    m = _VECTOR.match(dtype)
    base, lanes = (m.group(1), int(m.group(2))) if m else (dtype, 1)
    try:
        size = itemsize(base)
    except Exception:  # noqa: BLE001 - a type numpy cannot name: assume one register per lane
        size = 4
    return max(1, math.ceil(size * lanes / 4))


def kernel_regs(kernel, assumed: int) -> int:
    """A conservative registers-per-thread estimate for ``kernel`` (a ``kernel.func``); ``assumed`` for
    hand-written source, whose state the IR does not show."""
    if "source" in kernel.attributes:
        return assumed
    held = 0
    for op in kernel.walk():
        if op.name == "kernel.local":
            a = op.attributes
            held += math.prod(a.get("dims") or [1]) * _words(a["dtype"])
    return BASE_REGS + held


def reg_budget(spec: GPUSpec, threads: int, blocks_per_sm: int) -> int:
    """Registers per thread ptxas allows under ``__launch_bounds__(threads, blocks_per_sm)``."""
    warps = math.ceil(threads / spec.warp_size)
    per_partition = math.ceil(warps * blocks_per_sm / spec.sm_partitions)
    regs = spec.regs_per_sm // spec.sm_partitions // (per_partition * spec.warp_size)
    return min(spec.max_regs_per_thread, regs // spec.reg_alloc_unit * spec.reg_alloc_unit)


_BLOCKS_FOR_REGS: dict = {}   # every spec field the count reads, threads, regs -> blocks


def blocks_for_regs(spec: GPUSpec, threads: int, regs: int) -> int:
    """The most blocks of ``threads`` an SM holds with ``regs`` registers per thread each (0: not even one)."""
    # Memoised: Roller's and Welder's latency estimates ask it for every candidate tile (swin_t: 18,000 times,
    # a dozen reg_budget calls each), over a few hundred distinct (threads, regs).
    key = (spec.max_blocks_per_sm, spec.warp_size, spec.sm_partitions, spec.regs_per_sm, spec.reg_alloc_unit,
           spec.max_regs_per_thread, threads, regs)
    n = _BLOCKS_FOR_REGS.get(key)
    if n is None:
        n = 0
        while n < spec.max_blocks_per_sm and reg_budget(spec, threads, n + 1) >= regs:
            n += 1
        _BLOCKS_FOR_REGS[key] = n
    return n


def sgpr_blocks(spec: GPUSpec, threads: int) -> int | None:
    """The most blocks of ``threads`` a CU holds of a persistent kernel whose members hipcc inlines (None on a
    target without a per-wave scalar register file: NVIDIA). Such a kernel is assumed to take
    ``register_files.rprogram_sgprs`` SGPRs per wave (the spec's measured figure: LLVM hoists every member's
    uniform constants out of the dispatch loop), so a SIMD holds ``sgprs_per_simd // rprogram_sgprs`` of its
    waves; a block's waves spread over the ``sm_partitions`` SIMDs (as ``reg_budget`` counts them). Allowing
    more would make LLVM squeeze the kernel into the smaller budget and spill (nasnet-small's rammer0 at 8
    waves per SIMD: 2 SGPR spills; at 4, none)."""
    files = spec.register_files
    need = files.get("rprogram_sgprs", 0)
    if not need or not files.get("sgprs_per_simd"):
        return None
    waves_per_simd = files["sgprs_per_simd"] // need
    return waves_per_simd * spec.sm_partitions // math.ceil(threads / spec.warp_size)
