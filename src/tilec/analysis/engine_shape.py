"""The sm_80 tensor-core engine's shape as a function of a block tile (``backend/lower/mma_engine.py`` runs
it): warp grid, k tile and cp.async stages from the target's shared memory. Analysis-level facts, so Roller's
estimate (``cost_model``) sees the stages and shared memory of the kernel a tensor-core rTile will get
(issue #17), and the lowering builds exactly that kernel (``backend/lower/tiled_mma.engine_config``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.types import itemsize
from .hardware import GPUSpec
from .mma_tile import MMA, match_problem

MAX_STAGES = 4       # beyond 4 k tiles in flight CUTLASS and Triton see no gain on sm_80/sm_90
MIN_STAGES = 2
MAX_WARP_ACC = 128   # f32 accumulators per thread (a 64x64 warp tile): beyond, ptxas spills under 255 registers


@dataclass(frozen=True)
class EngineConfig:
    """One engine kernel's shape: block tile, k tile, warp grid and pipeline depth."""
    bm: int
    bn: int
    bk: int
    warps_m: int
    warps_n: int
    stages: int
    dynamic: bool = False   # shared memory past the 48 KB a kernel may declare statically: dynamic, opted in

    @property
    def warps(self) -> int:
        return self.warps_m * self.warps_n

    @property
    def warp_tile(self) -> tuple:
        return self.bm // self.warps_m, self.bn // self.warps_n

    @property
    def acc_per_thread(self) -> int:
        """f32 accumulators per thread: the warp tile over 32 lanes."""
        tm, tn = self.warp_tile
        return tm * tn // 32

    def stage_bytes(self, dtype: str) -> int:
        return (self.bm + self.bn) * self.bk * itemsize(dtype)

    def smem_bytes(self, dtype: str) -> int:
        return self.stages * self.stage_bytes(dtype)


def sm_version(spec: GPUSpec) -> int:
    """The compute capability of ``spec`` as a number (``sm_80`` -> 80); 0 for a GPU that has none (an AMD
    ``gfx90a``): no NVIDIA tensor-core instruction applies there."""
    if not spec.sm_arch.startswith("sm_"):
        return 0
    return int(spec.sm_arch.split("_")[1].rstrip("a"))


def supports(spec: GPUSpec, mt: dict, extents: dict) -> bool:
    """Whether the engine can run the matched product ``mt`` (``tiled_mma.match``): an sm_80+ target (mma.sync
    m16n8k16, ldmatrix, cp.async), and every operand's contiguous extent a multiple of 8 elements, so each
    16-byte chunk lies wholly inside or outside the tensor and every row starts 16-byte aligned."""
    if sm_version(spec) < 80:
        return False
    a_inner = mt["m"] if mt["a_kmajor"] else mt["k"]
    b_inner = mt["k"] if mt["b_nmajor"] else mt["n"]
    chunk = chunk_of(mt.get("dtype", "f16"))
    return extents[a_inner] % chunk == 0 and extents[b_inner] % chunk == 0


def chunk_of(dtype: str) -> int:
    """Elements of ``dtype`` per 16-byte chunk (one cp.async, one ldmatrix row): 8 b16, 4 f32."""
    return 16 // itemsize(dtype)


def plan(bm: int, bn: int, k_extent: int, warps: int, dtype: str, spec: GPUSpec,
         max_acc: int = MAX_WARP_ACC) -> EngineConfig | None:
    """The engine's shape for a ``bm`` x ``bn`` block tile with about ``warps`` warps, or None when no warp grid
    keeps the accumulators in registers or two stages do not fit the target's shared memory.

    Warp tiles are multiples of 16 x 16 (one ``ldmatrix.x4`` feeds two n8 mma tiles), as square as the grid
    allows; the k tile is 64 (128-byte rows: 4 mma k steps per barrier, as Triton's and CUTLASS's f16 tiles)
    unless K is shorter or two stages of it do not fit; the stages are as many as fit the per-block opt-in
    shared memory, 2 to 4."""
    grid = warp_grid(bm, bn, warps, 16, 32, max_acc)
    if grid is None:
        return None
    wm, wn = grid
    budget = spec.smem_per_block_optin_bytes
    row = 128 // itemsize(dtype)   # a 128-byte row: 64 b16 or 32 f32
    lo = 16 // itemsize(dtype) * 2   # the smallest k tile: one 32-byte row (16 b16, 8 f32)
    bk = row if k_extent >= row else row // 2 if k_extent > lo else lo
    while bk > lo and MIN_STAGES * (bm + bn) * bk * itemsize(dtype) > budget:
        bk //= 2
    cfg = EngineConfig(bm, bn, bk, wm, wn, MIN_STAGES)
    stages = min(MAX_STAGES, budget // cfg.stage_bytes(dtype))
    if stages < MIN_STAGES:
        return None
    dynamic = stages * cfg.stage_bytes(dtype) > spec.smem_per_block_bytes
    return EngineConfig(bm, bn, bk, wm, wn, stages, dynamic)


def warp_grid(bm: int, bn: int, warps: int, unit: int, lanes: int, max_acc: int) -> tuple | None:
    """``(rows, cols)`` of the largest grid of at most ``warps`` warps (halving from ``warps``) whose warp tiles
    are multiples of ``unit`` and hold at most ``max_acc`` accumulators per lane (``lanes`` to a warp or
    wave), the warp tile as square as the grid allows; None where no grid does. The sm_80 engine's and the
    MFMA engine's (``mfma_shape.plan``)."""
    w = warps
    while w >= 1:
        grids = [(wm, w // wm) for wm in powers_of_two(w)
                 if bm % (unit * wm) == 0 and bn % (unit * (w // wm)) == 0
                 and (bm // wm) * (bn // (w // wm)) // lanes <= max_acc]
        if grids:
            return min(grids, key=lambda g: (abs(math.log2((bm // g[0]) / (bn // g[1]))), g))
        w //= 2
    return None


def powers_of_two(n: int) -> list:
    """The powers of two that divide ``n``, ascending: the rows of a warp (or wave) grid of ``n``."""
    return [1 << i for i in range(n.bit_length()) if n % (1 << i) == 0]


def warps_for(bm: int, bn: int, threads_hint: int) -> int:
    """Warps per block: a power of two dividing the fragment count, near the rTile's thread count, ≤ 8."""
    frags = (bm // 16) * (bn // 16)
    w = 1
    while w * 2 <= min(8, max(1, threads_hint // 32)) and frags % (w * 2) == 0:
        w *= 2
    return w


def tf32_plan(mt: dict, bm: int, bn: int, k_extent: int, spec):
    """The engine's tf32 shape: f32 stages carry half the elements per 16-byte chunk, so a thread has twice
    the copies of an f16 tile and, for an operand whose rows run along k ([k][m] A, [k][n] B), per-lane
    shared-load offsets (``mma_tf32``); the warps are the fewest (4 to 16) that keep at most
    :data:`MAX_WARP_ACC` accumulators per thread (64x64 warp tiles). While each fragment register was rounded
    with cvt.rna (two instructions) ptxas spilled those (sm_80: 64 B on 128x128 with 4 warps, 40 B on 128x256
    with 8) and tf32 kept 64x32; with the one-add rounding they take 203 registers, 0 spills."""
    max_acc = MAX_WARP_ACC
    frags = (bm // 16) * (bn // 16)
    w = min(4, frags)
    while w < min(16, frags) and bm * bn // (32 * w) > max_acc:
        w *= 2
    return plan(bm, bn, k_extent, w, "f32", spec, max_acc)


def engine_shape(problem, rt, spec: GPUSpec) -> EngineConfig | None:
    """The engine's shape for the tensor-core product ``problem`` on rTile ``rt``, as the lowering gives it, or
    None where another kernel runs it (CUDA cores, wmma before sm_80, sm_90's wgmma for f16/bf16). Roller's
    estimate reads its threads, stages and shared memory, so it ranks the kernel that will run."""
    mt = match_problem(problem)
    sm = sm_version(spec)
    if mt is None or sm < 80 or not supports(spec, mt, problem.extents):
        return None
    if sm == 90 and mt["dtype"] != "f32":
        return None   # the wgmma engine (backend/lower/wgmma_engine.py): a tile and stages of its own
    block, thread = dict(rt.block), dict(rt.thread)
    bm, bn = block[mt["m"]], block[mt["n"]]
    if bm % MMA[0] or bn % MMA[1] or any(block.get(b, 1) != 1 for b in mt["batch"]):
        return None
    k = problem.extents[mt["k"]]
    if mt["dtype"] == "f32":
        return tf32_plan(mt, bm, bn, k, spec)
    hint = (bm // max(1, thread.get(mt["m"], 1))) * (bn // max(1, thread.get(mt["n"], 1)))
    return plan(bm, bn, k, warps_for(bm, bn, hint), problem.input_dtypes[0], spec)
