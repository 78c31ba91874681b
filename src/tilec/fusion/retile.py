"""Group-level tile re-choice (DESIGN §4 step 2: "score each candidate group by its best tile").

Roller picks each op's tile alone, by its own time estimate, and often lands on tiny tiles (one row by
eight columns for a matmul) that re-read the weights once per block. Once Welder has grouped the ops, the
group's anchor (the tiled contraction or convolution whose store epilogue runs the other members) gets its
tile chosen again, for the whole group:

1. **Candidates**: Roller's pick and its recorded top-k alternatives, then tiles grown (and shrunk) from the
   best of them one axis at a time by factors of two, hill-climbing on the score below.
2. **Propagation and fit**: the block tile fixes every member's tile (epilogue members are elementwise at
   the anchor's coordinates, so their tile is the anchor's output tile, :func:`.propagate`); each candidate
   must fit the static shared memory of the tiled kernel and the arch's limit, at most ``MAX_THREADS``
   threads and ``MAX_ACC`` accumulators per thread (so ptxas keeps them in registers, no spills).
3. **Score**: the modelled time of the candidate's launch (``analysis/latency.candidate_estimate``, the
   model of report.json's ``modelled_us``, issue #18: waves, SMs at work, occupancy, the L2-aware DRAM guess,
   L2 and issue from the traffic, shared memory and barriers), the group's global bytes counted exactly as
   the emitted kernel moves them (:func:`tilec.backend.lower.tiled.modelled_bytes`, the count the emulator
   measures, plus the fused epilogue's loads and stores) breaking ties. Ranking by bytes (DESIGN §4's
   ``(bytes + 1) × waves``) picked one-block grids for small outputs (a 2048x1000 FC layer on one SM).
4. **Parallelism floor**: a candidate needs at least ``min(#SM, ⌈outputs / min_block_outputs⌉)`` blocks
   (and never fewer than Roller's own tile had, when that was already below the floor). Filling the SMs
   matters more than bytes, but not at any price: shrinking a block below ``min_block_outputs`` outputs
   (4096 = a 64×64 tile by default) to create parallelism re-reads operands more than it gains. Without
   this floor the byte-optimal tile of a big matmul is a single block.

Only f32 (and wider) anchors are re-tiled: f16/bf16 matmuls take the tensor-core path, whose tile must stay
mma-aligned, and Roller already aligns those.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..analysis.latency import candidate_estimate
from ..backend.lower import choose_kind, tiled
from ..ir.texpr import axes_in
from ..ir.types import itemsize

MAX_THREADS = 256      # threads per block the re-chosen tile aims at (a warp multiple when it can)
MAX_ACC = 32           # accumulators per thread: with the operand fragments this stays well under 255 regs
MAX_PER_AXIS = 8       # per-thread extent of one axis (the tiled kernel unrolls it)
MIN_BLOCK_OUTPUTS = 4096
# A thread-block cluster must save at least this share of the bytes of the best tile without one: its
# barriers and distributed-shared-memory copies are not in the byte score, and Rammer can pack a cluster
# kernel only as a twin that re-reads what the cluster shared (the small zoo's rammer builds lost their
# packing to clusters saving ~1%).
MIN_CLUSTER_SAVING = 0.10
REJECTED_SHOWN = 4


def waves_and_score(spec, blocks: int, threads: int, smem: int, nbytes: int) -> tuple:
    """``(waves, score)`` of a kernel config (DESIGN §4): how many rounds of ``blocks`` the GPU runs when an
    SM holds as many blocks as its block, thread and shared-memory limits allow, and Welder's score,
    (global bytes rounded up to whole sectors + 1) × waves."""
    per_sm = max(1, min(spec.max_blocks_per_sm, spec.max_threads_per_sm // threads,
                        spec.smem_per_sm_bytes // max(smem, 1)))
    waves = -(-blocks // (per_sm * spec.num_sms))
    sector = spec.sector_bytes
    return waves, (-(-nbytes // sector) * sector + 1) * waves


@dataclass
class TileChoice:
    """The chosen config (``rtile`` dict), its group bytes, and the candidates it beat."""

    config: dict
    bytes: int
    blocks: int
    score: int            # DESIGN §4's byte score, (bytes rounded to sectors + 1) x waves (mlp compares it)
    roller_bytes: int
    floor: int
    source: str
    rejected: list = field(default_factory=list)   # [(modelled us, bytes, blocks, block dict)]
    modelled_us: float = 0.0   # what ranked it (the latency model)
    roller_us: float = 0.0     # the same model's time for Roller's own tile

    def as_attr(self) -> dict:
        return {"source": self.source, "bytes": self.bytes, "roller_bytes": self.roller_bytes,
                "blocks": self.blocks, "min_blocks": self.floor, "score": self.score,
                "modelled_us": self.modelled_us, "roller_us": self.roller_us,
                "rejected": [{"block": dict(b), "bytes": q, "blocks": n, "modelled_us": us}
                             for us, q, n, b in self.rejected[:REJECTED_SHOWN]]}


def unique_bytes(ctx) -> int:
    """Bytes of the kernel's operands and results, each once (a fused group's: its ``tile.kernel``'s)."""
    op = getattr(ctx, "kernel", None) or ctx.op
    values = list(op.operands) + list(op.results)
    return sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in values)


def retileable(ctx) -> bool:
    """The anchor is lowered by the generic tiled kernel and is not a tensor-core candidate (f16/bf16, or an f32
    product the precision pass marked tf32: Roller's tile for it is on the mma grid, and a re-chosen one may not
    be)."""
    low = ("f16", "bf16")
    return choose_kind(ctx) == "tiled" and not any(d in low for d in ctx.dtypes + [ctx.out_dtype]) \
        and ctx.op.attributes.get("precision") != "tf32"


def thread_tile(block: dict, axes: list) -> dict | None:
    """Per-thread tile: grow the axis with the most threads along it (innermost on ties) by factors of two
    until the block has at most ``MAX_THREADS`` threads; None when the accumulator cap stops it first."""
    thread = {a: 1 for a in axes}
    while math.prod(block[a] // thread[a] for a in axes) > MAX_THREADS:
        grow = [a for a in axes if thread[a] * 2 <= MAX_PER_AXIS and block[a] % (thread[a] * 2) == 0]
        if not grow or math.prod(thread.values()) * 2 > MAX_ACC:
            return None
        a = max(grow, key=lambda x: (block[x] // thread[x], axes.index(x)))
        thread[a] *= 2
    return thread


def clear_saving(with_cluster: int, without: int) -> bool:
    """Whether a cluster's bytes beat the best without one by ``MIN_CLUSTER_SAVING``."""
    return with_cluster <= (1 - MIN_CLUSTER_SAVING) * without


def cluster_blocks(spec, blocks: int) -> int:
    """Blocks per thread-block cluster over ``blocks`` neighbours: the largest power of two up to the arch's
    ``max_cluster_blocks`` (the portable size on sm_90) that divides ``blocks``; 1 where the arch has none."""
    c = spec.max_cluster_blocks
    while c > 1 and blocks % c:
        c //= 2
    return max(c, 1)


def best_cluster(ctx, spec, cfg: dict, nbytes, nbytes_many=None) -> tuple:
    """``(config, bytes, bytes without a cluster)``: ``cfg`` with the thread-block cluster that saves the most global bytes
    (``nbytes(config)`` counts them; ``nbytes_many(cfg, clusters)``, when given, counts every option at
    once), or ``cfg`` itself when none saves any. On sm_90 up to the spec's ``max_cluster_blocks``
    neighbours along one output axis load a box that does not move along it once and share it through
    distributed shared memory (``tiled.py``); the cluster must divide that axis' blocks."""
    trials = [None]
    for a in ctx.out_axes:
        c = cluster_blocks(spec, -(-ctx.extents[a] // cfg["block"][a]))
        if c > 1 and tiled.shares_along(ctx, a, cfg):
            trials.append({a: c})
    if nbytes_many is not None:
        qs = nbytes_many(cfg, trials)
    else:
        qs = [nbytes(dict(cfg, cluster=t) if t else cfg) for t in trials]
    i = min(range(len(trials)), key=lambda j: (qs[j], j))   # ties: no cluster
    return (dict(cfg, cluster=trials[i]) if trials[i] else cfg), qs[i], qs[0]


class Retiler:
    """Chooses the block tile of one anchor (``ctx``: its ComputeContext, or the FusedContext of its
    group) on ``spec``. ``extra_bytes`` is what the group's epilogue adds: a number, or a function of the
    tile config (staged broadcast operands cost one box per block)."""

    def __init__(self, ctx, spec, extra_bytes: int = 0, min_block_outputs: int = MIN_BLOCK_OUTPUTS,
                 clusters: bool = True):
        self.ctx, self.spec, self.extra = ctx, spec, extra_bytes
        self.tiled = tiled
        self.axes = list(ctx.out_axes)
        self.smem_limit = spec.smem_per_block_bytes
        self.outputs = math.prod(ctx.extents[a] for a in self.axes)
        self.floor = min(spec.num_sms, -(-self.outputs // max(1, min_block_outputs)))
        self.min_block_outputs, self.clusters = min_block_outputs, clusters
        self.seen: dict = {}
        self.flops = ctx.flops()
        self.unique = unique_bytes(ctx)

    def blocks(self, block: dict) -> int:
        return math.prod(-(-self.ctx.extents[a] // block[a]) for a in self.axes)

    def evaluate(self, block: dict, step: dict, thread: dict | None = None):
        """``(modelled us, bytes, blocks, config, byte score)`` of a block tile, or None when it does not
        fit. ``thread`` keeps a given per-thread tile (Roller's own configs); else :func:`thread_tile` picks
        one."""
        key = (tuple(block[a] for a in self.axes), tuple(sorted(step.items())))
        if key in self.seen:
            return self.seen[key]
        self.seen[key] = None
        thread = thread or thread_tile(block, self.axes)
        if thread is None or math.prod(block[a] // thread[a] for a in self.axes) > self.spec.max_threads_per_block:
            return None
        step = dict(step)
        cfg = {"block": dict(block), "thread": thread, "step": step}
        while self.tiled.staged_bytes(self.ctx, cfg) > self.smem_limit:
            big = max(step, key=lambda r: (step[r], r), default=None)
            if big is None or step[big] == 1:
                return None
            step[big] = -(-step[big] // 2)
        threads = math.prod(block[a] // thread[a] for a in self.axes)
        smem = self.tiled.staged_bytes(self.ctx, cfg)
        blocks = self.blocks(block)
        if self.clusters:
            cfg, q, _ = best_cluster(self.ctx, self.spec, cfg, lambda c: self.tiled.modelled_bytes(self.ctx, c))
        else:
            q = self.tiled.modelled_bytes(self.ctx, cfg)
        q += self.extra(cfg) if callable(self.extra) else self.extra
        score = waves_and_score(self.spec, blocks, threads, smem, q)[1]
        self.seen[key] = (self.modelled_us(cfg, blocks, threads, smem, q), q, blocks, cfg, score)
        return self.seen[key]

    def modelled_us(self, cfg: dict, blocks: int, threads: int, smem: int, nbytes: int) -> float:
        """The latency model's microseconds for one launch of ``cfg`` (``blocks`` blocks of ``threads``,
        ``smem`` staged bytes, ``nbytes`` global bytes), rounded so that ties fall to the bytes."""
        ctx = self.ctx
        steps = math.prod(-(-ctx.extents[r] // cfg["step"][r]) for r in ctx.reduce_axes)
        points = math.prod(ctx.extents[r] for r in ctx.reduce_axes)
        acc = math.prod(cfg["thread"].values())
        frags = 0
        for a in ctx.distinct_accesses():   # per reduce point, each thread reads its fragment of each box
            used = set().union(*(set(axes_in(i)) for i in a.indices)) if a.indices else set()
            frags += math.prod(cfg["thread"][x] for x in self.axes if x in used)
        elem = max(1, itemsize(ctx.out_dtype))
        accesses = threads * points * frags + steps * smem / elem
        regs = acc + min(acc, 8) * len(ctx.distinct_accesses()) + 24   # cost_model.regs_per_thread's rule
        est = candidate_estimate(self.spec, blocks=blocks, threads=threads, smem=smem, regs=regs,
                                 flops=self.flops, global_bytes=nbytes, unique_bytes=self.unique,
                                 barriers=2 * steps if ctx.reduce_axes else 0, smem_accesses=accesses)
        return round(est.seconds * 1e6, 4)

    def choose(self, rtile: dict, alternatives: list) -> TileChoice | None:
        """The best tile from Roller's pick, its alternatives and the tiles grown from them."""
        cfg0 = self.tiled.resolve_config(self.ctx, rtile)
        first = self.evaluate(cfg0["block"], cfg0["step"], cfg0["thread"])
        if first is None:
            return None
        floor = min(self.floor, first[2])
        seeds = [first]
        for alt in alternatives or []:
            try:
                c = self.tiled.resolve_config(self.ctx, alt)
            except Exception:   # an alternative the tiled kernel cannot take is simply not a candidate
                continue
            e = self.evaluate(c["block"], c["step"], c["thread"])
            if e is not None:
                seeds.append(e)
        ok = [s for s in seeds if s[2] >= floor]
        best = min(ok, key=self._key)
        step = best[3]["step"]
        while True:   # hill-climb: the best legal neighbour (one axis ×2, ÷2 or to full extent; or one
            nbrs = []   # axis ×2 and another ÷2, the same block count in another shape: at the floor the
            for block in self._neighbours(best[3]["block"]):   # single-axis moves all cross it)
                e = self.evaluate(block, step)
                if e is not None and e[2] >= floor:
                    nbrs.append(e)
            nxt = min(nbrs, key=self._key, default=None)
            if nxt is None or self._key(nxt) >= self._key(best):
                break
            best = nxt
        cands = sorted((e for e in self.seen.values() if e is not None), key=self._key)
        rejected = [(us, q, n, tuple(c["block"].items())) for us, q, n, c, _ in cands
                    if c is not best[3] and n >= floor]
        source = "roller" if best is first else ("alternative" if any(best is s for s in seeds) else "grown")
        choice = TileChoice(best[3], best[1], best[2], best[4], first[1], floor, source, rejected, best[0],
                            first[0])
        if "cluster" in choice.config:   # worth it only by a clear margin over the best tile without one
            plain = Retiler(self.ctx, self.spec, self.extra, self.min_block_outputs, clusters=False)
            alt = plain.choose(rtile, alternatives)
            if alt is not None and not clear_saving(choice.bytes, alt.bytes):
                return alt
        return choice

    def _neighbours(self, block: dict) -> list:
        out = []
        for a in self.axes:
            cur, ext = block[a], self.ctx.extents[a]
            out += [dict(block, **{a: size}) for size in sorted({min(cur * 2, ext), max(1, cur // 2), ext})
                    if size != cur]
            for b in self.axes:
                if b != a and cur < ext and block[b] > 1:
                    out.append(dict(block, **{a: min(cur * 2, ext), b: block[b] // 2}))
        return out

    def _key(self, e):
        us, q, blocks, cfg, _ = e
        # At equal bytes a tile without a cluster wins over one whose cluster only adds blocks: its
        # blocks are independent, so Rammer can pack it beside other kernels as it is.
        return (us, q, "cluster" in cfg, -blocks, tuple(cfg["block"][a] for a in self.axes))
