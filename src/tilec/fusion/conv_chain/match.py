"""Conv chains: a producer convolution fused into a consumer convolution or pooling at the shared level
(DESIGN §4, "connecting at a memory level: shared"; issue #5).

A group ``[P, P's epilogue..., C, C's epilogue...]`` is a conv chain when
- P and C are the group's only reductions, both tiled-kernel material (a combiner, every index affine),
  and at least one of them is a windowed ``conv`` (:func:`~tilec.analysis.index_map.classify`; this keeps
  matmul chains, whose intermediate rows span the whole reduce axis, out);
- each side's other members form a legal register epilogue of that side (elementwise, same shape,
  identity reads of the chain, :func:`tilec.fusion.epilogue.match.epilogue_group`);
- C reads only the last value of P's side, through one access, and nothing of P's side leaves the group.

Per C block tile and reduce step the kernel needs the box of P's result that C's access covers: the tile
propagated backwards with its halo (:func:`.propagate`'s bound analysis, here through the tiled kernel's
box of the access). That P tile is computed into shared memory, halo recomputed per block, and C reads it
there (:mod:`.kernel`).

The tile is chosen here, for the whole chain: C's block tile (every power of two up to 64 per axis, or
the full extent; blocks under 256 outputs are not scored, they only add halo and weight re-reads),
C's reduce step over non-window axes (window axes are stepped whole, so neighbouring steps never
recompute the same P points) and P's reduce step (the largest that fits shared memory).
The kernel takes the config the latency model times fastest (:func:`modelled_us_of`, issue #18: the halo
recompute, the P and C staging, barriers per step, SMs at work), the bytes counted as the emitted kernel
moves them (:meth:`.kernel.ChainContext.chain_bytes`) breaking ties, subject to the static shared-memory
limit and the arch's, ≤ 256 threads, ≤ 32 accumulators per thread on both sides, and the retile
parallelism floor (at least min(#SM, ⌈outputs / 4096⌉) blocks, ``fusion/retile.py``). Ranked by bytes
((bytes rounded to 32-B sectors + 1) × waves) small chains took one block on one SM. The search, which
ranks groups by bytes, sees the fewest-bytes config's score; the welder pass' latency check times the
chosen kernel against the parts.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ...analysis.index_map import classify
from ...analysis.welder.graph import outside_values, plain_f32
from ...analysis.latency import candidate_estimate
from ..retile import (MAX_ACC, MIN_BLOCK_OUTPUTS, best_cluster, clear_saving, waves_and_score,
                                       thread_tile)
from ...analysis.welder.search import Group, group_outputs
from ...backend.lower.tiled import staged_box
from ...ir.texpr import axes_in
from ...ir.texpr.affine import to_affine
from ...ir.types import itemsize
from ..epilogue.match import epilogue_group
from .kernel import ChainContext, chain_attr

MAX_BLOCK_AXIS = 64
MAX_BLOCK_POINTS = 8192
MIN_BLOCK_POINTS = 256
STEP_CHOICES = (16, 8, 4)
# Registers one P point of a thread keeps live across P's reduce loop on AMDGPU (hipcc 5.2, gfx90a): its
# accumulator, its tile coordinates and the two LDS addresses it reads (each point's are hoisted out of the loop).
P_POINT_REGS = 8


@dataclass(frozen=True)
class ChainPlan:
    """A conv chain's ``chain`` config as it prints (C's block/thread/step, P's pstep, the cluster if any;
    :func:`.kernel.chain_attr`) and ``split``, the position of C among the members (P's side before it)."""

    chain: dict
    split: int

    def edge_levels(self, edges: list, last: int = -1) -> list:
        """P's and C's epilogue edges in registers, the edge into C (and into member ``last``) in shared."""
        return [[p, c, "shared" if c in (self.split, last) else "register"] for p, c in edges]


def _tileable(node) -> bool:
    return node.expr.combiner is not None and all(to_affine(ix) is not None
                                                  for a in node.expr.accesses for ix in a.indices)


def split(graph, members: list, spec) -> tuple | None:
    """``(P side, C side)`` node-index lists when ``members`` form a conv chain, else None."""
    red = [m for m in members if not graph.nodes[m].elementwise]
    if len(red) != 2 or red[0] != members[0]:
        return None
    pnode, cnode = graph.nodes[red[0]], graph.nodes[red[1]]
    if not (_tileable(pnode) and _tileable(cnode)) or "conv" not in (classify(pnode.expr), classify(cnode.expr)):
        return None
    cut = members.index(red[1])
    pside, cside = members[:cut], members[cut:]
    if not plain_f32([graph.nodes[m] for m in members]):
        return None
    if set(group_outputs(graph, members)) & set(pside):
        return None
    pin = set(pside)
    if [p for p in cnode.producers.values() if p in pin] != [pside[-1]] or len(
            cnode.accesses_of(next(o for o, p in cnode.producers.items() if p == pside[-1]))) != 1:
        return None
    if any(p in pin for m in cside[1:] for p in graph.nodes[m].producers.values()):
        return None
    for side in (pside, cside):
        if len(side) > 1 and epilogue_group(graph, side, spec) is None:
            return None
    return pside, cside


def chain_context(graph, members: list):
    """The lowering's :class:`ChainContext` over the group's ops (outside values stand for kernel args)."""
    ops = [graph.nodes[m].op for m in members]
    outs = [graph.nodes[m].op.result for m in group_outputs(graph, members)]
    return ChainContext(ops, outside_values(ops), outs)


def _window_axes(expr) -> set:
    """Reduce axes that share an index with another axis (a window's ``k`` in ``o + k``)."""
    out = set()
    for acc in expr.accesses:
        for ix in acc.indices:
            axes = [a for a, c in to_affine(ix).coeffs if c]
            if len(axes) > 1:
                out.update(a for a in axes if a in expr.reduce_axes)
    return out


def _options(extent: int, cap: int) -> list:
    opts = {extent} | {1 << k for k in range(12) if (1 << k) < extent and (1 << k) <= cap}
    return sorted(opts)


def p_points_cap(spec) -> int:
    """P points a thread may fold: MAX_ACC, or on a target with an unrolled-body register budget
    (``unrolled_body_regs``, AMD) that budget over P_POINT_REGS, what one P point keeps live."""
    budget = spec.unrolled_body_regs
    return min(MAX_ACC, budget // P_POINT_REGS) if budget else MAX_ACC


def modelled_us_of(ctx, cfg: dict, spec, blocks: int, threads: int, smem: int, unique: int):
    """The latency model's microseconds for one launch of chain config ``cfg`` as a function of its global
    bytes: the chain search times a config with and without its cluster, which differ only in the bytes, and
    counts the rest once. It is :func:`choose`'s one timing call (tests that let the bytes decide replace
    it; a second, bypassed entry point once made such a patch silently do nothing).

    The model is ``analysis/latency.candidate_estimate`` (report.json's ``modelled_us``, issue #18), counting
    per block what :mod:`.kernel` emits: per C reduce step the P tile (halo included) is recomputed over P's
    reduce steps (P's operand boxes staged, each thread folding its points from them, two barriers a step),
    then C folds its staged boxes as the tiled kernel does (``fusion/retile.Retiler.modelled_us``'s count).
    FLOPs are C's plus every block's P recompute. Rounded so that ties fall to the bytes."""
    p = ctx.p
    fixed = ctx.__dict__.get("_time_fixed")
    if fixed is None:   # what does not depend on the config, once per chain (the search asks ~1000 times)
        used = [set().union(*(set(axes_in(i)) for i in a.indices)) if a.indices else set()
                for a in ctx.distinct_accesses()]
        fixed = ctx.__dict__["_time_fixed"] = (
            math.prod(p.extents[r] for r in p.reduce_axes), len(p.distinct_accesses()),
            math.prod(ctx.extents[r] for r in ctx.reduce_axes), [[x for x in ctx.out_axes if x in u] for u in used],
            ctx.flops())
    pred, paccs, points, frag_axes, c_flops = fixed
    csteps = math.prod(-(-ctx.extents[r] // cfg["step"][r]) for r in ctx.reduce_axes)
    psteps = math.prod(-(-p.extents[r] // cfg["pstep"][r]) for r in p.reduce_axes)
    npts = math.prod(b[2] for b in ctx.p_box(cfg))
    nper = -(-npts // threads)
    sizes = ctx.p_sizes(cfg)
    pstaged = ctx._memo("p_staged", tuple(sorted(sizes.items())), lambda: sum(
        math.prod(b[2] for b in staged_box(p, a, sizes)) for a in p.distinct_accesses()))
    p_smem = psteps * pstaged + threads * nper * pred * paccs + npts
    p_flops = 2.0 * npts * pred * csteps * blocks
    # per reduce point, each thread reads its fragment of each staged box of C
    frags = sum(math.prod(cfg["thread"][x] for x in axes) for axes in frag_axes)
    c_smem = threads * points * frags + csteps * smem / 4
    acc = math.prod(cfg["thread"].values())
    regs = acc + min(acc, 8) * len(frag_axes) + nper + 24
    args = dict(blocks=blocks, threads=threads, smem=smem, regs=regs, flops=c_flops + p_flops, unique_bytes=unique,
                barriers=csteps * (2 + 2 * psteps), smem_accesses=csteps * p_smem + c_smem)
    return lambda nbytes: round(candidate_estimate(spec, global_bytes=nbytes, **args).seconds * 1e6, 4)


def choose(ctx, spec) -> dict | None:
    """The best chain config ``{block, thread, step, pstep, bytes, smem, blocks, waves, score, floor}``."""
    limit = spec.smem_per_block_bytes
    axes, E = ctx.out_axes, ctx.extents
    outputs = math.prod(E[a] for a in axes)
    floor = min(spec.num_sms, -(-outputs // MIN_BLOCK_OUTPUTS))
    cwin, pwin = _window_axes(ctx.expr), _window_axes(ctx.p.expr)
    csteps = [[E[r]] if r in cwin else sorted({E[r]} | {s for s in STEP_CHOICES if s < E[r]}, reverse=True)
              for r in ctx.reduce_axes]
    pext = ctx.p.extents
    best = best_plain = fewest = None
    unique = sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in list(ctx.args) + list(ctx.outs))
    max_points = p_points_cap(spec)
    for sizes in itertools.product(*[_options(E[a], MAX_BLOCK_AXIS) for a in axes]):
        block = dict(zip(axes, sizes))
        points = math.prod(sizes)
        blocks = math.prod(-(-E[a] // block[a]) for a in axes)
        # Blocks under 256 outputs only add halo recompute and weight re-reads: not worth scoring.
        if points > MAX_BLOCK_POINTS or blocks < floor or points < min(MIN_BLOCK_POINTS, outputs // floor):
            continue
        thread = thread_tile(block, axes)
        if thread is None:
            continue
        threads = math.prod(block[a] // thread[a] for a in axes)
        warp = spec.warp_size   # at least a warp of threads when there are that many points
        if threads > spec.max_threads_per_block or (threads < warp and points >= warp):
            continue
        for cstep in itertools.product(*csteps):
            cfg = {"block": block, "thread": thread, "step": dict(zip(ctx.reduce_axes, cstep)),
                   "pstep": {r: pext[r] for r in ctx.p.reduce_axes}}
            if ctx.p_points_per_thread(cfg, threads) > max_points:
                continue
            fixed = ctx.smem_fixed(cfg)   # what P's steps do not change: once per block and C step
            smem = fixed + ctx.smem_p(cfg)
            while smem > limit:   # halve P's largest non-window step until the tile fits
                big = max((r for r in ctx.p.reduce_axes if r not in pwin and cfg["pstep"][r] > 1),
                          key=lambda r: (cfg["pstep"][r], r), default=None)
                if big is None:
                    break
                cfg["pstep"][big] = -(-cfg["pstep"][big] // 2)
                smem = fixed + ctx.smem_p(cfg)
            if smem > limit:
                continue
            plain = cfg
            cfg, q, q0 = best_cluster(ctx, spec, cfg, ctx.chain_bytes, ctx.chain_bytes_many)
            timed = modelled_us_of(ctx, plain, spec, blocks, threads, smem, unique)   # the cluster changes the bytes only
            for c, b in ((cfg, q), (plain, q0)) if cfg is not plain else ((cfg, q),):
                waves, score = waves_and_score(spec, blocks, threads, smem, b)
                us = timed(b)
                key = (us, b, "cluster" in c, -blocks, tuple(sizes), cstep)   # as retile.Retiler._key
                entry = (key, dict(c, bytes=b, smem=smem, blocks=blocks, waves=waves, score=score, floor=floor,
                                   modelled_us=us))
                if "cluster" not in c and (best_plain is None or key < best_plain[0]):
                    best_plain = entry
                if best is None or key < best[0]:
                    best = entry
                if fewest is None or (score, b) < fewest[:2]:
                    fewest = (score, b, waves)
    if best and best_plain and "cluster" in best[1] and not clear_saving(best[1]["bytes"], best_plain[1]["bytes"]):
        best = best_plain   # a cluster only for a clear saving (retile.MIN_CLUSTER_SAVING)
    # The search ranks groups by bytes (DESIGN §4): it sees what the chain can save at best, the kernel
    # takes the fastest config, and the welder pass' latency check decides whether it beats the parts.
    return dict(best[1], least_score=fewest[0], least_bytes=fewest[1], least_waves=fewest[2]) if best else None


def chain_group(graph, members: list, spec) -> Group | None:
    """The best conv-chain kernel over ``members`` as a scored group with its :class:`ChainPlan`, or None."""
    parts = split(graph, members, spec)
    if parts is None:
        return None
    cfg = choose(chain_context(graph, members), spec)
    if cfg is None:
        return None
    plan = ChainPlan(chain_attr(cfg), len(parts[0]))
    return Group(list(members), "conv_chain", cfg["least_bytes"], cfg["least_waves"], cfg["smem"], plan)
