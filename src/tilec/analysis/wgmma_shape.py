"""The sm_90 wgmma engine's shape (``backend/lower/wgmma_engine.py`` runs it): block tile, warpgroups, TMA
stages and shared memory, as analysis-level facts, so Roller ranks the tiles that engine runs and prices the
kernel each one gets (issue #21: the estimate, report.json's rTile and the lowered kernel agree), the way
``engine_shape`` does for the sm_80 engine.

A tile is one of :data:`TILES` (BM = 64 or 128: one consumer warpgroup per 64 rows; BN = 64..256) with a k tile
of one 128-byte row (:func:`bk_of`); the stages are as many (2-4) as the opt-in shared memory holds. A GEMM's
blocks pair up in thread-block clusters of :data:`MULTICAST` that share an operand's tile by TMA multicast
(:func:`clustered`): along N they share A, along M B, whose bytes are then read once per cluster
(:func:`multicast_saved_bytes`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..ir.types import itemsize
from .engine_shape import MAX_STAGES, MIN_STAGES, sm_version
from .hardware import GPUSpec
from .mma_tile import match_problem

SLACK = 1024         # dynamic shared memory is aligned up to 1024 bytes (the 128B swizzle's period)
DTYPES = ("f16", "bf16", "f32")   # f32: a product marked tf32
# (BM, BN) in order of preference at equal cost: larger tiles reuse each loaded byte more.
TILES = ((128, 256), (128, 128), (64, 256), (128, 64), (64, 128), (64, 64))
PRODUCER_REGS, CONSUMER_REGS = 40, 232   # CUTLASS's split for 1 producer + 2 consumer warpgroups (<= 64K)
OVERHEAD_REGS = 40   # a lone consumer's registers beyond its BN / 2 accumulators (ptxas: 168 at BN 256)
# Blocks of a multicast cluster: CUTLASS sm90's 2x1 (or 1x2) cluster for large GEMMs. Each block loads half of
# the shared operand's tile and multicasts it to both; more blocks would split it into boxes too small to keep
# the TMA busy and need more SMs of one GPC free at once.
MULTICAST = 2


def bk_of(dtype: str) -> int:
    """The k tile: one 128-byte swizzled row (64 b16, 32 f32)."""
    return 128 // itemsize(dtype)


@dataclass(frozen=True)
class WgmmaConfig:
    """One wgmma engine kernel's shape: block tile, pipeline depth, and which operands are m/n-contiguous."""
    bm: int
    bn: int
    stages: int
    a_mn: bool         # A stored [k][m] (wgmma's "transposed" A)
    b_mn: bool         # B stored [k][n]
    cluster: int = 1   # blocks of a TMA multicast cluster (:func:`clustered`); 1: none
    shared: str = "a"  # the operand its blocks share: "a" (blocks along N), "b" (blocks along M)

    @property
    def consumers(self) -> int:
        return self.bm // 64

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumers)

    @property
    def stage_bytes(self) -> int:
        """One k tile of A and B: a 128-byte row per m and n (any element type)."""
        return (self.bm + self.bn) * 128

    @property
    def smem_bytes(self) -> int:
        """Dynamic shared memory: the stages, their full/empty barriers, and the alignment slack."""
        return self.stages * self.stage_bytes + 16 * self.stages + SLACK

    @property
    def regs_per_thread(self) -> int:
        """Registers per thread on average over the block: with two consumers ``setmaxnreg`` splits the file
        (producer 40, consumers 232); a lone consumer holds its ``BN / 2`` accumulators plus addressing."""
        if self.consumers > 1:
            return (PRODUCER_REGS + self.consumers * CONSUMER_REGS) // (1 + self.consumers)
        return min(255, -(-(self.bn // 2 + OVERHEAD_REGS) // 8) * 8)

    @property
    def inflight_bytes(self) -> int:
        """Bytes the producer keeps in flight: every stage but the one the consumers compute on."""
        return (self.stages - 1) * self.stage_bytes

    def smem_bytes_moved(self, dtype: str) -> int:
        """Shared-memory bytes one k tile moves: the TMA writes of the stage, and each consumer's wgmma reads
        of its 64-row A slab and the whole B tile."""
        return self.stage_bytes + self.consumers * (64 + self.bn) * 128


def resident(spec: GPUSpec, cfg: WgmmaConfig) -> int:
    """Blocks of shape ``cfg`` one SM holds at once (threads, shared memory, registers); 0: none fits."""
    return min(spec.max_blocks_per_sm, spec.max_threads_per_sm // cfg.threads,
               spec.smem_per_sm_bytes // cfg.smem_bytes, spec.regs_per_sm // (cfg.regs_per_thread * cfg.threads))


def persistent_grid(spec: GPUSpec, mt: dict, extents: dict, cfg: WgmmaConfig) -> int:
    """Blocks of a persistent launch (CUTLASS's persistent tile scheduler: each block loops over output tiles
    ``blockIdx.x, + gridDim.x, ...``), or 0 for one block per tile. Persistent where the tiles are more than
    one wave of resident blocks: each further tile a block takes skips a block launch, the pipeline's fill
    (the producer loads the next tile's k tiles while the consumers run this one's epilogue) and the epilogue
    itself; and where the k tiles are whole rounds of the stages, so every tile starts at stage 0 (the
    consumers' k loop is unrolled by the stage count, each stage's barriers and descriptors constants)."""
    nb = math.prod(extents[b] for b in mt["batch"])
    tiles = nb * -(-extents[mt["m"]] // cfg.bm) * -(-extents[mt["n"]] // cfg.bn)
    k_tiles = -(-extents[mt["k"]] // bk_of(mt.get("dtype", "f16")))
    grid = spec.num_sms * max(1, resident(spec, cfg))
    grid -= grid % cfg.cluster   # whole clusters, so a cluster's blocks take paired tiles (clustered)
    return grid if tiles > grid and k_tiles % cfg.stages == 0 else 0


def clustered(spec: GPUSpec, mt: dict, extents: dict, cfg: WgmmaConfig | None) -> WgmmaConfig | None:
    """``cfg`` in clusters of :data:`MULTICAST` consecutive blocks that share one operand's tile, each block's
    producer loading 1 / C of it and multicasting that to the cluster (CUTLASS sm90's way): blocks along N
    (n tiles of one m tile) share A, blocks along M share B, where the target has clusters and those tiles
    come in whole clusters (in the persistent form the grid is whole clusters too, so a cluster's blocks stay
    on paired tiles). Of the two, the one that saves more bytes (A's on a tie). The shared operand's global
    (L2) bytes are then read once per cluster: never more traffic, at the price of one predicated remote
    arrive per consumer thread and k tile and a producer tail; else ``cfg`` unchanged. A tile splits by rows
    where its operand is K-major, by k rows where it is m/n-contiguous, at multiples of 8 rows either way
    (the 128B swizzle's period), so the parts land as the whole box would."""
    c = MULTICAST
    if cfg is None or cfg.cluster != 1 or spec.max_cluster_blocks < c:
        return cfg
    m, n, k = (extents[mt[a]] for a in "mnk")
    grid_m, grid_n = -(-m // cfg.bm), -(-n // cfg.bn)
    save_a = m * k * (grid_n // c) if grid_n % c == 0 else 0
    save_b = k * n * (grid_m // c) if grid_m % c == 0 else 0
    if not save_a and not save_b:
        return cfg
    return dataclasses.replace(cfg, cluster=c, shared="a" if save_a >= save_b else "b")


def multicast_saved_bytes(mt: dict, extents: dict, cfg: WgmmaConfig, elem: int) -> int:
    """Global bytes of the shared operand that a clustered ``cfg`` does not read: every block row (column) of
    the grid reads A's (B's) tile once per cluster instead of once per block, (C - 1) / C of its reads (0
    without a cluster)."""
    if cfg.cluster < 2:
        return 0
    nb = math.prod(extents[b] for b in mt["batch"])
    m, n, k = (extents[mt[a]] for a in "mnk")
    if cfg.shared == "a":
        return nb * (-(-n // cfg.bn) // cfg.cluster) * (cfg.cluster - 1) * m * k * elem
    return nb * (-(-m // cfg.bm) // cfg.cluster) * (cfg.cluster - 1) * k * n * elem


def applies(spec: GPUSpec, mt: dict | None, extents: dict, dtype: str) -> bool:
    """Whether the engine can run the matched product ``mt``: an sm_90 target, f16/bf16 or tf32 (an f32
    product marked tf32, whose wgmma takes K-major operands only: A [m][k] and B [n][k]), and every operand's
    contiguous extent 16 bytes' worth of elements (TMA's 16-byte strides)."""
    if mt is None or sm_version(spec) != 90 or dtype not in DTYPES:
        return False
    if dtype == "f32" and (mt["a_kmajor"] or not mt["b_nmajor"]):
        return False   # wgmma tf32 has no transposed operands
    a_inner = extents[mt["m"]] if mt["a_kmajor"] else extents[mt["k"]]
    b_inner = extents[mt["k"]] if mt["b_nmajor"] else extents[mt["n"]]
    chunk = 16 // itemsize(dtype)
    return a_inner % chunk == 0 and b_inner % chunk == 0


def candidate_tiles(mt: dict, extents: dict, tiles: tuple = TILES) -> list:
    """The tiles no larger than the product (M and N rounded up to 64)."""
    m, n = extents[mt["m"]], extents[mt["n"]]
    return [(bm, bn) for bm, bn in tiles if bm <= max(64, -(-m // 64) * 64) and bn <= max(64, -(-n // 64) * 64)]


def with_stages(spec: GPUSpec, mt: dict, bm: int, bn: int) -> WgmmaConfig | None:
    """The tile's shape with as many stages (2-4) as the opt-in shared memory holds, or None."""
    budget = spec.smem_per_block_optin_bytes
    stages = MIN_STAGES
    while stages < MAX_STAGES and WgmmaConfig(bm, bn, stages + 1, False, False).smem_bytes <= budget:
        stages += 1
    cfg = WgmmaConfig(bm, bn, stages, bool(mt["a_kmajor"]), not mt["b_nmajor"])
    return cfg if cfg.smem_bytes <= budget else None


def plan(spec: GPUSpec, mt: dict, extents: dict, dtype: str, tile: tuple | None = None,
         tiles: tuple = TILES) -> WgmmaConfig | None:
    """The engine's shape for the matched product ``mt`` on ``spec``, or None where it does not apply
    (:func:`applies`) or no tile's two stages fit the shared memory. ``tile``: the block tile Roller chose
    (its rTile), taken when it is one of the engine's; otherwise the engine's own choice, which minimises
    waves x tile area over the reuse of a loaded byte (BM*BN / (BM+BN) against 128x256's): a 4096^3 GEMM
    takes 128x256, a product too small to fill the SMs with it smaller tiles."""
    if not applies(spec, mt, extents, dtype):
        return None
    allowed = candidate_tiles(mt, extents, tiles)
    if tile in allowed:
        return with_stages(spec, mt, *tile)
    nb = math.prod(extents[b] for b in mt["batch"])
    m, n = extents[mt["m"]], extents[mt["n"]]
    best, best_cost = None, None
    ref = 128 * 256 / (128 + 256)
    for bm, bn in allowed:
        blocks = nb * -(-m // bm) * -(-n // bn)
        cost = -(-blocks // spec.num_sms) * bm * bn * max(1.0, ref / (bm * bn / (bm + bn)))
        if best_cost is None or cost < best_cost:
            best, best_cost = (bm, bn), cost
    return with_stages(spec, mt, *best) if best else None


def problem_saved_bytes(problem, wg: WgmmaConfig) -> int:
    """:func:`multicast_saved_bytes` of the tensor-core product ``problem`` run as ``wg`` (Roller's estimate
    counts the shared operand once per cluster, as the lowered kernel's ``bytes_modelled`` does)."""
    if wg.cluster < 2:
        return 0
    mt = match_problem(problem)
    return multicast_saved_bytes(mt, problem.extents, wg, itemsize(mt["dtype"]))


def wgmma_shape(problem, rt, spec: GPUSpec) -> WgmmaConfig | None:
    """The engine's shape for rTile ``rt`` of the tensor-core product ``problem``, as the lowering gives it
    (``tiled_mma.engine_config``, then :func:`clustered` in ``wgmma_engine.lower``), where ``rt`` is one of
    :func:`rtiles`' tiles; else None."""
    mt = match_problem(problem)
    if mt is None or not applies(spec, mt, problem.extents, mt["dtype"]):
        return None
    block, step = dict(rt.block), dict(rt.step)
    tile = (block[mt["m"]], block[mt["n"]])
    if any(block.get(b, 1) != 1 for b in mt["batch"]) or step.get(mt["k"]) != bk_of(mt["dtype"]) \
            or tile not in candidate_tiles(mt, problem.extents):
        return None
    return clustered(spec, mt, problem.extents, with_stages(spec, mt, *tile))


def rtiles(problem, spec: GPUSpec) -> list:
    """Roller's candidates where the wgmma engine runs ``problem``: one rTile per engine tile (block m, n the
    tile, batch axes 1, k step the engine's k tile; thread tile 8 x BN/16: a consumer thread's BN / 2
    accumulators, 128 threads per 64 rows). Empty where the engine does not apply."""
    from .cost_model import RTile
    mt = match_problem(problem)
    if mt is None or not applies(spec, mt, problem.extents, mt["dtype"]):
        return []
    out = []
    for bm, bn in candidate_tiles(mt, problem.extents):
        if with_stages(spec, mt, bm, bn) is None:
            continue
        size = {mt["m"]: bm, mt["n"]: bn}
        thread = {mt["m"]: 8, mt["n"]: bn // 16}
        out.append(RTile(tuple((a, size.get(a, 1)) for a in problem.out_axes),
                         tuple((a, thread.get(a, 1)) for a in problem.out_axes),
                         tuple((a, bk_of(mt["dtype"]) if a == mt["k"] else 1) for a in problem.reduce_axes)))
    return out
