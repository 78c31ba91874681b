"""Back-to-back GEMMs: ``H = e1(X · W1)`` then ``Y = e2(H · W2)`` fused with a row tile of ``H`` in shared
memory (DESIGN §4, "shared"; issue #5: the FFN of a transformer layer, matmul → bias → GELU → matmul →
bias → residual).

A group ``[G1, e1..., G2, e2...]`` matches when
- G1 and G2 are the group's only reductions, each ``Y[1.., m, n] += A[0.., m, k] * B[k, n]`` exactly (a sum
  of the product of the two accesses, every axis before ``m`` of size 1, ``B`` a rank-2 outside tensor);
- each side's other members form a legal register epilogue of that side
  (:func:`tilec.fusion.epilogue.match.epilogue_group`);
- G2's ``A`` is side 1's last value, nothing else of side 1 is read by side 2 or leaves the group;
- optionally a row tail: a legal row group (:func:`tilec.fusion.row.match.row_group`) over side 2's last value, reading nothing
  else of the group (layernorm, softmax). With a tail, side 1 may be absent: one GEMM whose output rows
  stay on chip for the row group (``split = 0``; the output projection → LN1 of a transformer layer).

The lowering (:mod:`.kernel`) gives each block ``rows`` rows of ``H`` in shared memory and
reads ``W1`` and ``W2`` once per block. The config ``{rows, threads}`` is chosen here: the one the latency
model times fastest (:func:`modelled_us`, issue #18; a transformer layer's 32 tokens go one row per block on
32 SMs, the weights re-read from L2, rather than all on one SM) within the arch's static shared memory,
≤ 32 accumulators per thread and the retile parallelism floor (≥ min(#SM, ⌈outputs / 4096⌉) blocks). The
search, which ranks groups by bytes, sees the group's fewest-bytes config: the group is taken only when
that score beats the parts apart, and the welder pass' latency check then times the chosen kernel against
its parts (``passes/welder.py``). With ``W1``, ``W2`` re-read per block this wins on small rows counts, not
on BERT-base's FFN, whose floor needs ≥ 24 blocks.

Every member is f32 (:func:`~tilec.analysis.welder.graph.plain_f32`), or, on sm_90, both GEMMs are f16/bf16
without a row tail (:func:`.wgmma.eligible`): that group is the wgmma kernel's (:func:`_wgmma_group`), its shape
chosen by the latency model, its score its bytes as emitted, and the welder pass times it against its two
sides' own kernels (the wgmma engine GEMMs with their epilogues)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.latency import candidate_estimate
from ...analysis.welder.graph import outside_values, plain_f32
from ..retile import MAX_ACC, MIN_BLOCK_OUTPUTS, Retiler, retileable, waves_and_score
from ...analysis.welder.search import Group, group_outputs
from ...ir.texpr.nodes import Access, AxisRef, Binary, Num
from ...ir.types import itemsize
from ..epilogue.match import epilogue_group
from ..row.match import row_group
from . import wgmma
from .kernel import MlpContext, MlpSide

ROWS = (1, 2, 4, 8, 16, 32, 64)
THREADS = (64, 128, 256)


def _gemm(node, graph, internal_a: set | None) -> bool:
    """``node`` is ``Y[1.., m, n] += A[0.., m, k] * B[k, n]`` with B an outside rank-2 tensor."""
    e = node.expr
    if e.combiner != "sum" or len(e.reduce_axes) != 1 or len(node.op.operands) != 2:
        return False
    body = e.body
    if not (isinstance(body, Binary) and body.op == "*" and isinstance(body.lhs, Access)
            and isinstance(body.rhs, Access) and body.lhs.tensor != body.rhs.tensor):
        return False
    k, out = e.reduce_axes[0], list(e.out_axes)
    if len(out) < 2 or any(n != 1 for n in node.shape[:-2]):
        return False
    m, n = out[-2], out[-1]
    a, b = body.lhs, body.rhs
    names = lambda acc: [ix.name if isinstance(ix, AxisRef) else None for ix in acc.indices]
    if names(b) != [k, n]:
        return False
    ia = names(a)
    if len(ia) != len(out) or ia[-2:] != [m, k] or not all(
            isinstance(ix, Num) and ix.value == 0 for ix in a.indices[:-2]):
        return False
    ai, bi = e.inputs.index(a.tensor), e.inputs.index(b.tensor)
    ashape = tuple(node.op.operands[ai].type.shape)
    if any(d != 1 for d in ashape[:-2]) or ashape[-2] != node.shape[-2]:
        return False
    if node.producers.get(bi) is not None and internal_a is not None and node.producers[bi] in internal_a:
        return False
    if internal_a is not None and node.producers.get(ai) not in internal_a:
        return False
    return len(node.op.operands[bi].type.shape) == 2


def split(graph, members: list, spec) -> tuple | None:
    """``(cut, tail)``: where side 2 (G2) and the row tail (its first reduction; ``len(members)`` when
    there is none) start in ``members`` when they are back-to-back GEMMs, else None. ``cut = 0``: one GEMM
    with its epilogue and a row tail (the GEMM's A rows then stand where the hidden would)."""
    red = [m for m in members if not graph.nodes[m].elementwise]
    if len(red) < 2 or red[0] != members[0] or not _gemm(graph.nodes[red[0]], graph, None):
        return None
    cut = members.index(red[1])
    if _gemm(graph.nodes[red[1]], graph, {members[cut - 1]}):
        tail = members.index(red[2]) if len(red) > 2 else len(members)
    else:   # one GEMM: the next reduction starts the row tail, which is then required
        cut, tail = 0, cut
    side1, side2, rest = members[:cut], members[cut:tail], members[tail:]
    if rest:   # a row group over side 2's last value (layernorm, softmax): tail.py
        reads = {p for m in rest for p in graph.nodes[m].producers.values()}
        if row_group(graph, rest, spec) is None or reads & set(side1) or reads & set(side2[:-1]):
            return None
        if graph.nodes[side2[-1]].shape[:-1] != graph.nodes[rest[-1]].shape[:-1]:
            return None
    if not plain_f32([graph.nodes[m] for m in members]) and wgmma.eligible(graph, members, cut, tail, spec) is None:
        return None   # f16/bf16 chains off sm_90 split into tensor-core engine GEMMs (why: fusion/mlp/__init__.py)
    if side1:
        if set(group_outputs(graph, members)) & set(side1):
            return None
        g2 = graph.nodes[side2[0]]
        if [p for p in g2.producers.values() if p in side1] != [side1[-1]]:
            return None
        if any(p in side1 for m in side2[1:] for p in graph.nodes[m].producers.values()):
            return None
        if graph.nodes[side1[0]].shape[-2] != g2.shape[-2]:
            return None
    for side in (side1, side2):
        if len(side) > 1 and epilogue_group(graph, side, spec) is None:
            return None
    return cut, tail


def modelled_us(ctx, cfg: dict, spec, blocks: int, smem: int, nbytes: int) -> float:
    """The latency model's microseconds for one launch of ``cfg`` (``analysis/latency.candidate_estimate``,
    the model of report.json's ``modelled_us``, issue #18), counting per block what :mod:`.kernel` emits
    as ``analysis/kernel_work`` counts it: the staged rows; per GEMM, every thread (idle columns past ``N``
    too) reads its rows of the staged A once per reduce point; the hidden's (and a row tail's) writes; the
    tail's passes over its rows. Rounded so that ties fall to the bytes."""
    rows, T = cfg["rows"], cfg["threads"]
    s1, s2 = ctx.s1, ctx.s2
    J1, J2 = (-(-ctx.N1 // T) if s1 is not None else 0), -(-ctx.N2 // T)
    accesses = rows * (ctx.K1 if s1 is not None else ctx.N1) + T * rows * (ctx.K1 + ctx.N1 + J1)
    barriers = 2 + (2 if s1 is not None else 0)
    if ctx.tail is not None:
        accesses += T * J2 * rows + 2 * len(ctx.tail.members) * rows * ctx.N2
        barriers += 1 + len(ctx.tail.members)
    flops = (s1.flops() if s1 is not None else 0) + s2.flops()
    unique = sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in list(ctx.args) + list(ctx.outs))
    est = candidate_estimate(spec, blocks=blocks, threads=T, smem=smem, regs=ctx.accumulators(cfg) + 36,
                             flops=flops, global_bytes=nbytes, unique_bytes=unique, barriers=barriers,
                             smem_accesses=accesses)
    return round(est.seconds * 1e6, 4)


def choose(ctx, spec) -> dict | None:
    """The ``{rows, threads}`` the latency model times fastest (:func:`modelled_us`; ties: fewer bytes, more
    blocks) with its bytes, smem, blocks, waves, byte score and ``modelled_us``, or None."""
    limit = spec.smem_per_block_bytes
    outputs = ctx.R * ctx.N2
    floor = min(spec.num_sms, -(-outputs // MIN_BLOCK_OUTPUTS))
    best = fewest = None
    for rows in ROWS:
        if rows > 1 and rows // 2 >= ctx.R:
            break
        for threads in THREADS:
            cfg = {"rows": rows, "threads": threads}
            blocks = ctx.blocks(cfg)
            if blocks < floor or ctx.accumulators(cfg) > MAX_ACC or threads > spec.max_threads_per_block:
                continue
            smem = ctx.smem_bytes(cfg)
            if smem > limit:
                continue
            q = ctx.bytes(cfg)
            waves, score = waves_and_score(spec, blocks, threads, smem, q)
            us = modelled_us(ctx, cfg, spec, blocks, smem, q)
            key = (us, q, -blocks, rows, -threads)   # ties: fewer bytes, then more blocks
            if best is None or key < best[0]:
                best = (key, dict(cfg, bytes=q, smem=smem, blocks=blocks, waves=waves, score=score, floor=floor,
                                  modelled_us=us))
            if fewest is None or (score, q) < fewest[:2]:
                fewest = (score, q, waves)
    if best is None:
        return None
    # The search ranks groups by bytes (DESIGN §4): it sees what the fusion can save at best, the kernel
    # takes the fastest config, and the welder pass' latency check decides whether it beats the parts.
    return dict(best[1], least_score=fewest[0], least_bytes=fewest[1], least_waves=fewest[2])


def _retiled_score(graph, side: list, spec) -> int | None:
    """The score of one side as its own group with the tile the welder pass would re-choose for it."""
    ops = [graph.nodes[m].op for m in side]
    ctx = MlpSide(ops, outside_values(ops), [graph.nodes[m].op.result for m in group_outputs(graph, side)])
    rtile = ops[0].attributes.get("rtile")
    if not rtile or not retileable(ctx):
        return None
    retiler = Retiler(ctx, spec, ctx.epilogue_bytes, MIN_BLOCK_OUTPUTS)
    choice = retiler.choose(rtile, ops[0].attributes.get("alternatives"))
    return None if choice is None else choice.score


@dataclass(frozen=True)
class MlpPlan:
    """The kernel's ``rows`` per block and ``threads``; ``split`` and ``tail``, where G2 and the row tail
    start among the members; ``apart``, the score of the sides re-tiled apart."""

    rows: int
    threads: int
    split: int
    tail: int
    apart: int
    engine: str = ""   # "wgmma": the sm_90 f16/bf16 kernel (fusion/mlp/wgmma.py), with its bn and stages
    bn: int = 0
    stages: int = 0
    cluster: int = 1

    def tile_attr(self) -> dict:
        """The ``tile`` attribute of the mlp kernel."""
        tile = {"rows": self.rows, "threads": self.threads, "split": self.split, "tail": self.tail}
        if self.engine:
            tile.update(engine=self.engine, bn=self.bn, stages=self.stages, cluster=self.cluster)
        return tile

    def edge_levels(self, edges: list) -> list:
        """Epilogue edges in registers; side 1 → G2 (the hidden) and the row tail in shared memory (the wgmma
        kernel's hidden: registers, packed into the second product's A fragments)."""
        hidden = "register" if self.engine else "shared"
        return [[p, c, hidden if c == self.split else "shared" if c >= self.tail else "register"] for p, c in edges]


def mlp_group(graph, members: list, spec) -> Group | None:
    """The best back-to-back GEMM kernel over ``members`` as a scored group with its :class:`MlpPlan`, or None."""
    parts = split(graph, members, spec)
    if parts is None:
        return None
    cut, tail = parts
    ops = [graph.nodes[m].op for m in members]
    ctx = MlpContext(ops, outside_values(ops), [graph.nodes[m].op.result for m in group_outputs(graph, members)], cut,
                     tail=tail)
    if not plain_f32([graph.nodes[m] for m in members]):
        return _wgmma_group(graph, members, spec, ctx, cut, tail)
    if ctx.N1 != ctx.s2.extents[ctx.s2.reduce_axes[0]] or not ctx.fits():
        return None
    cfg = choose(ctx, spec)
    if cfg is None:
        return None
    # The sides apart are re-tiled by the welder pass afterwards (retile.py): compare with that, not with
    # Roller's estimates, or a kernel re-reading both weights per block would beat a worse model of them.
    apart = [_retiled_score(graph, side, spec) for side in (members[:cut], members[cut:tail]) if side]
    if tail < len(members):
        apart.append(row_group(graph, members[tail:], spec).score)
    if None in apart or cfg["least_score"] >= sum(apart):
        return None
    plan = MlpPlan(cfg["rows"], cfg["threads"], cut, tail, sum(apart))
    return Group(list(members), "mlp", cfg["least_bytes"], cfg["least_waves"], cfg["smem"], plan)


def _wgmma_group(graph, members: list, spec, ctx, cut: int, tail: int) -> Group | None:
    """The f16/bf16 group on sm_90 (:mod:`.wgmma`), scored by its bytes as emitted. The search keeps it where
    its score beats the first side's group and the second GEMM apart; the welder pass' latency check then
    times it against the two sides as their own (wgmma engine) kernels (``MlpPattern.apart_parts``)."""
    dtype = wgmma.eligible(graph, members, cut, tail, spec)
    if ctx.N1 != ctx.s2.extents[ctx.s2.reduce_axes[0]]:
        return None
    cfg = wgmma.choose(ctx, spec, dtype)
    if cfg is None:
        return None
    shape = cfg["shape"]
    plan = MlpPlan(shape.rows, shape.threads, cut, tail, 0, engine=wgmma.ENGINE, bn=shape.bn, stages=shape.stages,
                   cluster=shape.cluster)
    return Group(list(members), "mlp", cfg["bytes"], cfg["waves"], cfg["smem"], plan)
