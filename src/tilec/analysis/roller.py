"""Roller's rTile construction (OSDI'22, DESIGN §3): build tiles from the memory hierarchy, don't search.

1. Candidate sizes per axis are aligned (powers of two, warp/transaction multiples on the innermost axis,
   the full extent; on tensor cores whole mma tiles only, batch axes 1, and the wmma kernel's staging must
   fit) and waste at most ε of the axis to padding; ε rises 0, 0.2, … 1.0 when no tile fits,
   and past the first ε that fits while a higher ε still improves the estimate (an odd extent such as ViT's
   197 tokens has only 1 and 197 at ε = 0, and its best tile pads 197 to 224).
2. Level 0 (global → shared): start from the smallest aligned tile, grow the axis with the best data-reuse
   score S_i = (Q(T) − Q(T'_i)) / (F(T'_i) − F(T)) while it fits, until the tile is compute-saturated.
3. Level 1 (shared → registers): choose the thread tile so threads per block are a multiple of the warp,
   growing the per-thread tile by register reuse while registers fit.
4. Scale out: shrink along the least-reuse axis until the grid has at least one block per SM.
5. Keep the top-k by the micro model's estimate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..ir.types import itemsize
from .cost_model import Estimate, RTile, estimate, smem_bytes, traffic_bytes
from .hardware import GPUSpec
from .tile_problem import TileProblem

EPSILONS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
IMPROVEMENT = 0.01   # a higher ε is kept only if its best estimate is at least 1% faster


@dataclass(frozen=True)
class Candidate:
    rtile: RTile
    est: Estimate


def padding_waste(extent: int, size: int) -> float:
    return -(-extent // size) * size / extent - 1.0


def axis_sizes(extent: int, eps: float, minimum: int = 1) -> list:
    """Aligned sizes for an axis: powers of two below the extent, and the extent itself."""
    sizes, s = [], 1
    while s < extent:
        sizes.append(s)
        s *= 2
    sizes.append(extent)
    ok = [x for x in sizes if x >= min(minimum, extent) and padding_waste(extent, x) <= eps + 1e-9]
    return ok or [extent]


def thread_tiles(problem: TileProblem, block: dict, spec: GPUSpec) -> list:
    """Level-1 candidates: per-thread tiles dividing the block tile with a warp-multiple thread count."""
    axes = list(block)
    options = []

    def rec(i, cur):
        if i == len(axes):
            threads = math.prod(block[a] // cur[a] for a in axes) if axes else 1
            if threads <= spec.max_threads_per_block and (threads % spec.warp_size == 0 or threads ==
                                                           math.prod(block.values())):
                options.append(dict(cur))
            return
        a = axes[i]
        t = 1
        while t <= min(block[a], 8):
            if block[a] % t == 0:
                cur[a] = t
                rec(i + 1, cur)
            t *= 2
    rec(0, {})
    return options


class Roller:
    """Constructs rTiles for one TileProblem on one GPU spec."""

    def __init__(self, problem: TileProblem, spec: GPUSpec, topk: int = 8):
        self.p = problem
        self.spec = spec
        self.topk = topk

    # --- level 1 -----------------------------------------------------------------------------------
    def best_thread_tile(self, block: dict, step: dict) -> Candidate | None:
        if not self.mma_fits(block, step):
            return None
        best = None
        for thread in thread_tiles(self.p, block, self.spec):
            rt = RTile(tuple(block.items()), tuple(thread.items()), tuple(step.items()))
            est = estimate(self.p, rt, self.spec)
            if est is None:
                continue
            # Among equal estimates prefer more work per thread (register reuse) up to 8x8, then fewer threads.
            key = (est.seconds, -math.prod(thread.values()), est.threads)
            if best is None or key < best[0]:
                best = (key, Candidate(rt, est))
        return best[1] if best else None

    # --- level 0 -----------------------------------------------------------------------------------
    def construct(self) -> list:
        wgmma = self.wgmma_candidates()
        if wgmma:   # sm_90 tensor cores: the wgmma engine's own tiles, priced as the kernel each one gets
            return wgmma
        best: list = []
        last_sizes = None
        for eps in EPSILONS:
            sizes = self.axis_candidates(eps)
            if sizes == last_sizes or not all(sizes.values()):
                continue  # this ε admits no new size (the same construction), or some axis has none
            last_sizes = sizes
            found = self.construct_with(eps)
            if not found:
                continue
            if best and found[0].est.seconds >= best[0].est.seconds * (1 - IMPROVEMENT):
                break  # padding more no longer pays
            best = self._merge(best, found)
        if best:
            return best
        # Nothing fits even at ε = 1: fall back to the smallest tile (one output per block).
        block = {a: 1 for a in self.p.out_axes}
        step = {a: 1 for a in self.p.reduce_axes}
        rt = RTile(tuple(block.items()), tuple(block.items()), tuple(step.items()))
        est = estimate(self.p, rt, self.spec)
        return [Candidate(rt, est)] if est else []

    def wgmma_candidates(self) -> list:
        """Top-k of the wgmma engine's tiles (analysis/wgmma_shape.py) where it runs the problem (an sm_90
        target's tensor-core product): its block tiles are a fixed set, so they are ranked, not grown."""
        if not self.spec.sm_arch.startswith("sm_90") or not self.mma_alignment():
            return []
        from .wgmma_shape import rtiles
        cands = []
        for rt in rtiles(self.p, self.spec):
            est = estimate(self.p, rt, self.spec)
            if est is not None:
                cands.append(Candidate(rt, est))
        return self._merge(cands, [])

    def axis_candidates(self, eps: float) -> dict:
        """Aligned sizes per axis at padding threshold ``eps``."""
        p = self.p
        sizes = {}
        minimum = self.transaction_minimums()
        mma = self.mma_alignment()
        batch = self.mma_batch_axes()
        for a in list(p.out_axes) + list(p.reduce_axes):
            sizes[a] = axis_sizes(p.extents[a], eps, max(minimum.get(a, 1), mma.get(a, 1)))
            # Tensor cores: whole mma tiles only, one batch entry per block (the tensor-core kernels' shape,
            # lower/tiled_mma.py; any other tile would run on CUDA cores while estimated at the tensor-core
            # peak). An ε that admits
            # no multiple of the mma shape has no candidate for the axis, so ε rises (DESIGN §3); at ε = 1
            # the power of two above the extent (≥ the mma size) always qualifies.
            if a in mma:
                sizes[a] = [s for s in sizes[a] if s % mma[a] == 0]
            elif a in batch:
                sizes[a] = [1]
        return sizes

    def _merge(self, a: list, b: list) -> list:
        """Top-k of two candidate lists, best first, without duplicates (deterministic order)."""
        cands = sorted(a + b, key=lambda c: (c.est.seconds, c.est.traffic_bytes, str(c.rtile)))
        unique, keys = [], set()
        for c in cands:
            if c.rtile not in keys:
                keys.add(c.rtile)
                unique.append(c)
        return unique[: self.topk]

    def construct_with(self, eps: float) -> list:
        p, spec = self.p, self.spec
        sizes = self.axis_candidates(eps)
        if not all(sizes.values()):
            return []
        cur = {a: sizes[a][0] for a in sizes}
        seen: dict = {}
        balance = self.machine_balance()

        def evaluate(tile: dict):
            key = tuple(sorted(tile.items()))
            if key not in seen:
                block = {a: tile[a] for a in p.out_axes}
                step = {a: tile[a] for a in p.reduce_axes}
                seen[key] = self.best_thread_tile(block, step)
            return seen[key]

        def q_and_f(tile: dict):
            rt = RTile(tuple((a, tile[a]) for a in p.out_axes), tuple((a, 1) for a in p.out_axes),
                       tuple((a, tile[a]) for a in p.reduce_axes))
            return traffic_bytes(p, rt, spec), smem_bytes(p, rt, spec) + 1, rt

        evaluate(cur)
        while True:
            q0, f0, rt0 = q_and_f(cur)
            if self.intensity(rt0) >= balance:
                break  # compute-saturated: a bigger tile no longer saves time, only occupancy
            best = None
            for a in sizes:
                idx = sizes[a].index(cur[a])
                if idx + 1 >= len(sizes[a]):
                    continue
                nxt = dict(cur)
                nxt[a] = sizes[a][idx + 1]
                q1, f1, rt1 = q_and_f(nxt)
                if f1 > spec.smem_per_block_bytes or math.prod(nxt[x] for x in p.out_axes) > \
                        spec.max_threads_per_block * 64:
                    continue
                score = (q0 - q1) / max(f1 - f0, 1)
                if best is None or score > best[0]:
                    best = (score, nxt)
            if best is None or best[0] <= 0:
                break
            cur = best[1]
            if evaluate(cur) is None:
                break
        cands = [c for c in seen.values() if c is not None]
        cands += self.scale_out(cands)
        return self._merge(cands, [])

    def scale_out(self, cands: list) -> list:
        """Shrink tiles of grids smaller than the SM count along the least-reuse axis (Roller step 4)."""
        out = []
        minimum = self.transaction_minimums()
        mma = self.mma_alignment()
        for c in cands:
            block = dict(c.rtile.block)
            step = dict(c.rtile.step)
            budget = 2 * c.est.traffic_bytes  # filling SMs is not worth more than doubling the traffic
            for _ in range(16):
                if c.est.blocks >= self.spec.num_sms:
                    break
                # never below one transaction of the contiguous axes (alignment beats parallelism)
                axes = [a for a in block if block[a] // 2 >= min(minimum.get(a, 1), self.p.extents[a])
                        and (block[a] // 2) % mma.get(a, 1) == 0]
                if not axes:
                    break
                # least reuse: halving it raises traffic the least
                def cost(a):
                    b = dict(block)
                    b[a] = max(1, b[a] // 2)
                    rt = RTile(tuple(b.items()), tuple((x, 1) for x in b), tuple(step.items()))
                    return traffic_bytes(self.p, rt, self.spec)
                a = min(axes, key=lambda x: (cost(x), x))
                if cost(a) > budget:
                    break
                block[a] = max(1, block[a] // 2)
                nc = self.best_thread_tile(block, step)
                if nc is None:
                    break
                c = nc
                out.append(nc)
        return out

    def transaction_minimums(self) -> dict:
        """Memory-transaction alignment: an axis that is the contiguous (innermost) dim of the output or of
        an input access starts at one 32-B sector of elements, so every row a tile moves fills a sector."""
        from ..ir.texpr import AxisRef
        p, sector = self.p, self.spec.sector_bytes
        mins = {}
        if p.out_axes:
            mins[p.out_axes[-1]] = sector // p.out_itemsize
        for acc in p.expr.accesses:
            last = acc.indices[-1] if acc.indices else None
            if isinstance(last, AxisRef):
                elem = itemsize(p.input_dtypes[p.input_index(acc)])
                mins[last.name] = max(mins.get(last.name, 1), sector // elem)
        return mins

    def _mma(self) -> tuple:
        """(tensor-core match of the expression, {m: M, n: N, k: K}) when the tiles must be mma-aligned: an
        f16/bf16 matmul whose m, n, k are at least one tile of the spec's square mma shape (the one wmma's
        m16n16k16 uses); else (None, {})."""
        if not hasattr(self, "_mma_memo"):
            from .mma_tile import match_problem, tensor_core_dtype
            p = self.p
            square = [s for s in self.spec.mma_shapes if s[0] == s[1]]
            # No tensor cores for this dtype on this GPU (bf16 on V100): plain CUDA-core tiles.
            if not self.spec.tensor_core_flops(tensor_core_dtype(p.input_dtypes[0])):
                square = []
            mt = match_problem(p) if square else None
            out = dict(zip((mt["m"], mt["n"], mt["k"]), square[0])) if mt else {}
            ok = out and all(p.extents[a] >= q for a, q in out.items())
            self._mma_memo = (mt, out) if ok else (None, {})
        return self._mma_memo

    def mma_alignment(self) -> dict:
        """Tensor-core alignment (DESIGN §3): {m: M, n: N, k: K} of the mma shape, or {} (see ``_mma``)."""
        return self._mma()[1]

    def mma_batch_axes(self) -> list:
        """Batch axes of a tensor-core matmul: its kernels take one batch entry per block."""
        mt = self._mma()[0]
        return list(mt["batch"]) if mt else []

    def mma_fits(self, block: dict, step: dict) -> bool:
        """Whether the wmma kernel's staged tiles fit its shared-memory limit (always true off tensor cores).
        The check stays the wmma kernel's, the stricter one: the sm_80 engine (lower/mma_engine.py) chooses its
        own k tile and 2-4 stages from the opt-in shared memory, and falls back to wmma where it cannot."""
        mt = self._mma()[0]
        if mt is None:
            return True
        from .mma_tile import smem_bytes as mma_smem
        limit = self.spec.smem_per_block_bytes
        return mma_smem(block[mt["m"]], block[mt["n"]], step[mt["k"]], self.p.input_dtypes[0]) <= limit

    def intensity(self, rt: RTile) -> float:
        q = traffic_bytes(self.p, rt, self.spec)
        return self.p.flops / max(q, 1)

    def machine_balance(self) -> float:
        from .cost_model import peak_flops
        return peak_flops(self.p, self.spec) / self.spec.dram_bytes_per_s


def construct_rtiles(problem: TileProblem, spec: GPUSpec, topk: int = 8) -> list:
    """Top-k rTile candidates for ``problem`` on ``spec``, best first.

    An empty iteration space (some axis of extent 0: an empty tensor, or a reduction over an empty axis)
    has nothing to tile and no padding ratio to bound, so there are no candidates; lower-cuda's default
    kernel guards every index and runs such an op as an empty loop (a reduction stores its identity)."""
    if any(e == 0 for e in problem.extents.values()):
        return []
    return Roller(problem, spec, topk).construct()

