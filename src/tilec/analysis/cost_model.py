"""Roller's micro performance model (DESIGN §3): traffic, footprint, and the estimate of one rTile.

- traffic Q(T): bytes of input tiles loaded plus the output tile stored, each row rounded up to 32-B
  sectors, summed over blocks and reduce steps; only the in-bounds part of a box counts, so edge tiles
  and padded conv halos cost what the predicated loads really move;
- footprint F(T): shared memory for the staged input boxes (rows padded against bank conflicts), for a tile
  of the CUDA-core tiled kernel exactly what that kernel declares, and registers per thread;
- estimate: the latency model's time of the tile's launch (``latency.candidate_estimate``: waves, idle SMs,
  occupancy, the L2-aware DRAM guess, L2 and issue from the traffic, shared memory, barriers), the same model
  report.json's ``modelled_us`` uses (issue #18); bytes stay in the estimate as ``traffic_bytes``. Tensor-core
  tiles keep waves × max(compute, memory, shared memory) per wave until the model sees their engine, except
  the sm_90 wgmma engine's (``wgmma_estimate``: the latency model on tensor cores, with its shape).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.types import itemsize
from .hardware import GPUSpec
from .latency import candidate_estimate
from .engine_shape import engine_shape
from .mfma_shape import mfma_shape
from .wgmma_shape import wgmma_shape
from .tile_problem import TileProblem


@dataclass(frozen=True)
class RTile:
    """Tile sizes: ``block`` per output axis (level 0), ``thread`` per output axis (level 1), and
    ``step`` per reduce axis (the reduce tile staged per iteration)."""

    block: tuple   # ((axis, size), ...) in out-axis order
    thread: tuple
    step: tuple    # ((axis, size), ...) in reduce-axis order

    def as_attr(self) -> dict:
        return {"block": dict(self.block), "thread": dict(self.thread), "step": dict(self.step)}

    @staticmethod
    def from_attr(attr: dict) -> "RTile":
        return RTile(tuple(attr["block"].items()), tuple(attr["thread"].items()), tuple(attr["step"].items()))

    def threads(self) -> int:
        t = dict(self.thread)
        return math.prod(b // t[a] for a, b in self.block)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    traffic_bytes: int
    smem_bytes: int
    regs_per_thread: int
    threads: int
    blocks: int
    blocks_per_sm: int
    waves: int
    flops: int
    stages: int = 0   # the sm_80 engine's cp.async stages (smem_bytes is all of them); 0: no pipeline

    def as_attr(self) -> dict:
        out = {"seconds": float(f"{self.seconds:.6g}"), "traffic_bytes": self.traffic_bytes,
               "smem_bytes": self.smem_bytes, "regs_per_thread": self.regs_per_thread,
               "threads": self.threads, "blocks": self.blocks, "waves": self.waves}
        return dict(out, stages=self.stages) if self.stages else out


def round_up(x: int, m: int) -> int:
    return -(-x // m) * m


def box_dims(problem: TileProblem, access, ranges: dict) -> list:
    from .index_map import access_box
    shape = problem.input_shapes[problem.input_index(access)]
    box = access_box(problem.expr, access, ranges)
    # An interior tile's box (halo included), but never more than the whole input along a dim.
    return [min(hi - lo, d) for (lo, hi), d in zip(box, shape)]


def tile_ranges(problem: TileProblem, rt: RTile) -> dict:
    ranges = {a: (0, s) for a, s in rt.block}
    ranges.update({a: (0, s) for a, s in rt.step})
    return ranges


def smem_bytes(problem: TileProblem, rt: RTile, spec: GPUSpec) -> int:
    """Shared memory for one step's staged input boxes. A tile the CUDA-core tiled kernel runs is counted as
    that kernel declares it (:func:`tiled_smem_bytes`), so no tile Roller keeps exceeds the limit at lowering;
    any other (tensor-core tiles, whose engines count their own, and kernels that stage nothing) by Roller's
    bank rule: rows padded by one 4-B bank when they are a multiple of the bank window (pad = 32 banks × 4 B /
    dtype size elements)."""
    if runs_tiled(problem, rt, spec):
        return tiled_smem_bytes(problem, rt)
    ranges = tile_ranges(problem, rt)
    total = 0
    window = spec.smem_banks * spec.smem_bank_bytes
    for acc in problem.staged_accesses:
        elem = itemsize(problem.input_dtypes[problem.input_index(acc)])
        dims = box_dims(problem, acc, ranges)
        if dims and (dims[-1] * elem) % window == 0:
            dims = dims[:-1] + [dims[-1] + max(1, spec.smem_bank_bytes // elem)]
        total += math.prod(dims) * elem if dims else elem
    return total


def staged_dims(dims: list) -> tuple:
    """(rows, padded cols) of a box of extents ``dims`` the tiled kernel stages (``backend/lower/tiled.py``):
    all dims but the last are rows; an even row gets one more element against bank conflicts."""
    dims = dims or [1]
    rows, cols = math.prod(dims[:-1]), dims[-1]
    return rows, cols + (1 if rows > 1 and cols % 2 == 0 else 0)


def staged_itemsize(dtype: str) -> int:
    """Bytes of one staged element: the tiled kernel stages in its compute type, halves widened to f32
    (``ComputeContext.load_dtype``)."""
    return 4 if dtype in ("f16", "bf16") else itemsize(dtype)


def runs_tiled(problem: TileProblem, rt: RTile, spec: GPUSpec) -> bool:
    """Whether lower-cuda gives ``rt`` the CUDA-core tiled kernel (``backend/lower/__init__.choose_kind``: a
    contraction or conv whose indices are all affine) rather than a tensor-core one (``tiled_mma.aligned``: a
    matched f16/bf16/tf32 product on the GPU's tensor cores, its block m, n and step k whole mma tiles, run
    by an engine, or by wmma where its staging fits; tf32 and AMD have no wmma kernel)."""
    from .mma_tile import MMA
    from .mma_tile import smem_bytes as wmma_smem_bytes
    tiled, mt = _tiled_kind(problem, spec)
    if not tiled or mt is None:
        return tiled
    sizes = dict(rt.block, **dict(rt.step))
    bm, bn, bk = (sizes.get(mt[a], 0) for a in "mnk")
    if any(x <= 0 or x % q for x, q in zip((bm, bn, bk), MMA)) or any(sizes.get(b, 1) != 1 for b in mt["batch"]):
        return True
    engine = mfma_shape(problem, rt, spec) if spec.is_amd else \
        wgmma_shape(problem, rt, spec) or engine_shape(problem, rt, spec)
    if engine is not None:
        return False
    return mt["dtype"] == "f32" or spec.is_amd or \
        wmma_smem_bytes(bm, bn, bk, mt["dtype"]) > spec.smem_per_block_bytes


def _tiled_kind(problem: TileProblem, spec: GPUSpec) -> tuple:
    """``(lowered by a tiled kernel, its tensor-core match on ``spec`` or None)``, once per problem and GPU:
    Roller asks for every tile it grows and every thread tile."""
    key = ("tiled_kind", spec.arch)
    if key not in problem.memo:
        from ..ir.texpr import to_affine
        from .mma_tile import match_problem, tensor_core_dtype
        e = problem.expr
        tiled = e.combiner is not None and problem.kind in ("contraction", "conv") and \
            all(to_affine(ix) is not None for acc in e.accesses for ix in acc.indices)
        mt = match_problem(problem) if tiled else None
        if mt is not None and not spec.tensor_core_flops(tensor_core_dtype(mt["dtype"])):
            mt = None
        problem.memo[key] = (tiled, mt)
    return problem.memo[key]


def tiled_smem_bytes(problem: TileProblem, rt: RTile) -> int:
    """Shared memory the CUDA-core tiled kernel declares for ``rt`` (``tiled.staged_bytes``): per distinct
    access (tensor and indices) its whole box, halo included and not clipped to the tensor (out-of-bounds
    elements are staged as the pad value), as :func:`staged_dims` in :func:`staged_itemsize` bytes."""
    key = ("tiled_smem", rt.block, rt.step)   # the thread tile stages nothing of its own
    if key not in problem.memo:
        from .index_map import access_box
        if "distinct_accesses" not in problem.memo:
            seen, distinct = set(), []
            for acc in problem.expr.accesses:
                if (acc.tensor, repr(acc.indices)) not in seen:
                    seen.add((acc.tensor, repr(acc.indices)))
                    distinct.append((acc, staged_itemsize(problem.input_dtypes[problem.input_index(acc)])))
            problem.memo["distinct_accesses"] = distinct
        ranges = tile_ranges(problem, rt)
        total = 0
        for acc, size in problem.memo["distinct_accesses"]:
            rows, cols = staged_dims([hi - lo for lo, hi in access_box(problem.expr, acc, ranges)])
            total += rows * cols * size
        problem.memo[key] = total
    return problem.memo[key]


def regs_per_thread(problem: TileProblem, rt: RTile) -> int:
    """Accumulators for the thread's output tile, one fragment per input, plus addressing overhead."""
    per_thread = math.prod(s for _, s in rt.thread) if rt.thread else 1
    frags = sum(min(per_thread, 8) for _ in problem.staged_accesses)
    return per_thread + frags + 24


def traffic_bytes(problem: TileProblem, rt: RTile, spec: GPUSpec) -> int:
    """Q(T) summed over the whole grid: per block and reduce step, the in-bounds part of every staged
    input box (padded halos and edge-tile overhang load nothing), each row rounded up to sectors; plus the
    output tile, stores predicated to the output's extent."""
    return _traffic(problem, rt, spec.sector_bytes)


def global_bytes(problem: TileProblem, rt: RTile) -> int:
    """Q(T) without the sector rounding: the global bytes the tiled kernel's loads and stores count (what
    the CUDA emulator measures)."""
    return _traffic(problem, rt, 1)


def _traffic(problem: TileProblem, rt: RTile, sector: int) -> int:
    key = ("traffic", rt.block, rt.step, sector)   # the thread tile does not change what a block moves
    if key not in problem.memo:
        problem.memo[key] = _grid_traffic(problem, rt, sector)
    return problem.memo[key]


def _grid_traffic(problem: TileProblem, rt: RTile, sector: int) -> int:
    from .index_map import grid_footprint
    sizes = dict(rt.block)
    sizes.update(rt.step)
    total = 0
    for acc in problem.staged_accesses:
        idx = problem.input_index(acc)
        elem = itemsize(problem.input_dtypes[idx])
        # last_key names the sector rounding, so grid_footprint may memoise the per-group sums (Roller's
        # candidates repeat them across tile shapes)
        total += grid_footprint(problem.expr, acc, sizes, problem.extents, problem.input_shapes[idx],
                                lambda n, e=elem: -(-n * e // sector) * sector, last_key=("sectors", elem, sector))
    # The output: stores are predicated to its extent, so every element is stored once; along the innermost
    # axis each block's row rounds up to sectors, the last block's (tail) row being shorter.
    elem = problem.out_itemsize
    block = dict(rt.block)
    if not problem.out_axes:
        return total + round_up(elem, sector)
    *outer, inner = problem.out_axes
    ext, size = problem.extents[inner], block[inner]
    row = (ext // size) * round_up(size * elem, sector) + (round_up(ext % size * elem, sector))
    return total + row * math.prod(problem.extents[a] for a in outer)


def num_blocks(problem: TileProblem, rt: RTile) -> int:
    return math.prod(-(-problem.extents[a] // s) for a, s in rt.block) if rt.block else 1


def smem_read_bytes(problem: TileProblem, rt: RTile) -> int:
    """Shared-memory bytes all threads read: per thread and reduce point, one fragment per staged input
    (the thread-tile extent of the output axes that index it)."""
    if not problem.reduce_axes:
        return 0
    from ..ir.texpr import axes_in
    thread = dict(rt.thread)
    reduce_points = math.prod(problem.extents[a] for a in problem.reduce_axes)
    per_point = 0
    for acc in problem.staged_accesses:
        used = set()
        for idx in acc.indices:
            used |= set(axes_in(idx))
        frag = math.prod(thread[a] for a in problem.out_axes if a in used)
        per_point += frag * itemsize(problem.input_dtypes[problem.input_index(acc)])
    threads_total = num_blocks(problem, rt) * rt.threads()
    return threads_total * reduce_points * per_point


def peak_flops(problem: TileProblem, spec: GPUSpec) -> float:
    if problem.input_dtypes and all(d in ("f16", "bf16") for d in problem.input_dtypes):
        # A GPU without a tensor-core engine for the type computes it on the vector ALUs (and so does an AMD
        # tile the MFMA engine does not take: kernel_peak_flops).
        return (spec.fp16_tensor_flops if problem.input_dtypes[0] == "f16" else spec.bf16_tensor_flops) or \
            spec.fp32_flops
    if problem.precision == "tf32":   # an f32 product the precision pass hands to tf32 tensor cores
        return spec.tf32_tensor_flops or spec.fp32_flops
    return spec.fp32_flops


def kernel_peak_flops(problem: TileProblem, rt: RTile, spec: GPUSpec) -> float:
    """:func:`peak_flops` of the kernel the lowering gives ``rt``: on an AMD target, the vector ALUs' where the
    MFMA engine does not take the tile (``mfma_shape``: a block tile it has no wave grid for), since that
    tile runs as CUDA-core code there (there is no wmma kernel on AMD)."""
    peak = peak_flops(problem, spec)
    if spec.is_amd and peak != spec.fp32_flops and mfma_shape(problem, rt, spec) is None:
        return spec.fp32_flops
    return peak


def estimate(problem: TileProblem, rt: RTile, spec: GPUSpec) -> Estimate | None:
    """The model's time for ``rt``, or None when the tile does not fit the hardware."""
    peak = kernel_peak_flops(problem, rt, spec)
    if spec.sm_arch.startswith("sm_90") and peak != spec.fp32_flops:
        wg = wgmma_shape(problem, rt, spec)
        if wg is not None:
            return wgmma_estimate(problem, rt, spec, wg)
    threads = rt.threads()
    smem = smem_bytes(problem, rt, spec)
    regs = regs_per_thread(problem, rt)
    limit = spec.smem_per_block_bytes
    engine = engine_shape(problem, rt, spec) if peak != spec.fp32_flops else None
    if engine is not None:
        # The sm_80 engine runs this tile (lower/tiled_mma.engine_config): its warps, its stages of BM x BK
        # and BK x BN tiles in dynamic shared memory up to the opt-in limit, its accumulators in registers
        # (ptxas: 64x64 warp tiles, 128 accumulators, take 220-252 registers).
        threads, smem, limit = 32 * engine.warps, engine.smem_bytes(problem.input_dtypes[0]), \
            spec.smem_per_block_optin_bytes
        regs = min(spec.max_regs_per_thread, engine.acc_per_thread + ENGINE_REGS)
    if threads > spec.max_threads_per_block or threads < 1 or smem > limit \
            or regs > spec.max_regs_per_thread:
        return None
    per_sm = min(spec.max_blocks_per_sm, spec.max_threads_per_sm // threads,
                 spec.smem_per_sm_bytes // max(smem, 1), spec.regs_per_sm // (regs * threads))
    if per_sm < 1:
        return None
    blocks = num_blocks(problem, rt)
    waves = -(-blocks // (per_sm * spec.num_sms))
    q = traffic_bytes(problem, rt, spec)
    flops = problem.flops
    steps = math.prod(-(-problem.extents[a] // s) for a, s in rt.step) if rt.step else 1
    if engine is not None:   # one barrier per k tile of the engine's (its k tile, not the rTile's step)
        steps = -(-max(problem.extents[a] for a, _ in rt.step) // engine.bk)
    # The latency model decides (analysis/latency.py, the model of report.json's modelled_us): DRAM bytes are
    # the L2-aware guess (every tensor once when they fit the L2), the L2 and issue terms see the traffic, and
    # a grid below the SM count runs breadth-first on as many SMs as it has blocks and gets only their share
    # of DRAM and L2. Level 1 (shared -> registers): per
    # reduce point a thread reads one fragment of each staged input (a bigger per-thread tile reuses each for
    # more outputs); each reduce step stages the boxes (one write per element) between two barriers.
    # Tensor-core tiles keep the wave model below: their time depends on the engine the tile gets
    # (lower/mma_engine's stages and k tile, or wmma), which the latency model does not see yet.
    if peak == spec.fp32_flops:
        accesses = (smem_read_bytes(problem, rt) / 4 / blocks) + steps * smem / 4
        est = candidate_estimate(spec, blocks=blocks, threads=threads, smem=smem, regs=regs, flops=flops,
                                 global_bytes=q, unique_bytes=unique_bytes(problem), barriers=2 * steps,
                                 smem_accesses=accesses)
        return Estimate(est.seconds, q, smem, regs, threads, blocks, per_sm, waves, flops)
    # One wave: each busy SM runs its resident blocks at its share of the peak; DRAM bandwidth is shared
    # by the SMs that are busy. Each reduce step also pays a barrier round trip (staging, __syncthreads).
    in_flight = min(blocks, per_sm * spec.num_sms)
    busy_sms = min(spec.num_sms, in_flight)
    resident = -(-in_flight // busy_sms)
    compute = flops / blocks * resident / (peak / spec.num_sms)
    if engine is not None:
        compute *= engine_issue_factor(engine)
    memory = q / blocks * in_flight / (spec.dram_bytes_per_s * busy_sms / spec.num_sms)
    sync = steps * spec.barrier_cycles / (spec.clock_ghz * 1e9)
    # Level 1 (shared → registers): per reduce point a thread reads one fragment of each staged input;
    # a bigger per-thread tile reuses each fragment for more outputs, so it reads less per FLOP.
    smem_read = smem_read_bytes(problem, rt) if engine is None else engine_smem_bytes(problem, engine, blocks, steps)
    smem_time = smem_read / blocks * in_flight / (spec.smem_bytes_per_s * busy_sms / spec.num_sms)
    seconds = waves * (max(compute, memory, smem_time) + sync)
    return Estimate(seconds, q, smem, regs, threads, blocks, per_sm, waves, flops, engine.stages if engine else 0)


def wgmma_estimate(problem: TileProblem, rt: RTile, spec: GPUSpec, wg) -> Estimate | None:
    """The latency model's time of the wgmma engine kernel ``wg`` (analysis/wgmma_shape.py) for ``rt``: its
    warpgroups' threads, its stages' shared memory (opt-in), its registers, one mbarrier round per k tile,
    and the shared memory its TMA writes and wgmma reads move (4-byte accesses: wgmma's operand reads are
    no thread's instructions, but they share the SM's shared-memory bandwidth, which small-N tiles exhaust
    first); in a multicast cluster A's bytes once per cluster. The same model as report.json's
    ``modelled_us``, on tensor cores."""
    dtype = problem.input_dtypes[0]
    threads, smem, regs = wg.threads, wg.smem_bytes, wg.regs_per_thread
    if smem > spec.smem_per_block_optin_bytes or threads > spec.max_threads_per_block:
        return None
    from .wgmma_shape import problem_saved_bytes, resident
    per_sm = resident(spec, wg)
    if per_sm < 1:
        return None
    blocks = num_blocks(problem, rt)
    waves = -(-blocks // (per_sm * spec.num_sms))
    q = traffic_bytes(problem, rt, spec) - problem_saved_bytes(problem, wg)   # multicast: A once per cluster
    k_tiles = math.prod(-(-problem.extents[a] // s) for a, s in rt.step)
    est = candidate_estimate(spec, blocks=blocks, threads=threads, smem=smem, regs=regs, flops=problem.flops,
                             global_bytes=q, unique_bytes=unique_bytes(problem), barriers=k_tiles,
                             smem_accesses=k_tiles * wg.smem_bytes_moved(dtype) / 4, tensor=True,
                             dtype=dtype if dtype != "f32" else "tf32", inflight_bytes=wg.inflight_bytes)
    return Estimate(est.seconds, q, smem, regs, threads, blocks, per_sm, waves, problem.flops, wg.stages)


ENGINE_REGS = 96   # registers of an engine thread beyond its accumulators: fragments, addresses, loop state


def engine_issue_factor(engine) -> float:
    """The engine's tensor-core time over the peak's, from its warp tile: per k step a warp issues
    (TM/16)(TN/8) mma.sync fed by TM/16 + TN/16 ldmatrix.x4, which share its issue slots and wait on shared
    memory; a 64x64 warp tile (32 mma per 8 ldmatrix) runs nearer the peak than a 32x32 one (8 per 4)."""
    tm, tn = engine.warp_tile
    mma, ldsm = (tm // 16) * (tn // 8), tm // 16 + tn // 16
    return 1 + ldsm / mma


def engine_smem_bytes(problem: TileProblem, engine, blocks: int, steps: int) -> float:
    """Shared-memory bytes the engine moves: its warps' ldmatrix reads, (TM + TN) elements per k for
    2 TM TN FLOPs, and the cp.async writes of every stage, (BM + BN) BK per k tile and block."""
    tm, tn = engine.warp_tile
    elem = itemsize(problem.input_dtypes[0])
    return problem.flops * (tm + tn) * elem / (2 * tm * tn) + blocks * steps * engine.stage_bytes(
        problem.input_dtypes[0])


def unique_bytes(problem: TileProblem) -> int:
    """Bytes of the problem's inputs and output, each once (what a launch must move at least)."""
    ins = sum(math.prod(s) * itemsize(d) for s, d in zip(problem.input_shapes, problem.input_dtypes))
    return ins + math.prod(problem.extents[a] for a in problem.out_axes) * problem.out_itemsize
