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
reads ``W1`` and ``W2`` once per block. The config ``{rows, threads}`` is chosen here by the group score
(modelled bytes rounded to sectors + 1) × waves within the arch's static shared memory, ≤ 32 accumulators
per thread and the retile parallelism floor (≥ min(#SM, ⌈outputs / 4096⌉) blocks); the search takes the
group only when that score beats the parts apart. With ``W1``, ``W2`` re-read per block this wins on small
rows counts (a transformer layer's 32 tokens), not on BERT-base's FFN, whose floor needs ≥ 24 blocks."""
from __future__ import annotations

from dataclasses import dataclass

from ...analysis.welder.graph import outside_values, plain_f32
from ..retile import MAX_ACC, MIN_BLOCK_OUTPUTS, Retiler, retileable, waves_and_score
from ...analysis.welder.search import Group, group_outputs
from ...ir.texpr.nodes import Access, AxisRef, Binary, Num
from ..epilogue.match import epilogue_group
from ..row.match import row_group
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
    if not plain_f32([graph.nodes[m] for m in members]):
        return None   # f16/bf16 chains split into tensor-core engine GEMMs (why: fusion/mlp/__init__.py)
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


def choose(ctx, spec) -> dict | None:
    """The best ``{rows, threads}`` with its bytes, smem, blocks, waves and score, or None."""
    limit = spec.smem_per_block_bytes
    outputs = ctx.R * ctx.N2
    floor = min(spec.num_sms, -(-outputs // MIN_BLOCK_OUTPUTS))
    best = None
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
            key = (score, q, -blocks, rows, -threads)   # ties: more threads per block
            if best is None or key < best[0]:
                best = (key, dict(cfg, bytes=q, smem=smem, blocks=blocks, waves=waves, score=score, floor=floor))
    return best[1] if best else None


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

    def tile_attr(self) -> dict:
        """The ``tile`` attribute of the mlp kernel."""
        return {"rows": self.rows, "threads": self.threads, "split": self.split, "tail": self.tail}

    def edge_levels(self, edges: list) -> list:
        """Epilogue edges in registers; side 1 → G2 (the hidden) and the row tail in shared memory."""
        return [[p, c, "shared" if c == self.split or c >= self.tail else "register"] for p, c in edges]


def mlp_group(graph, members: list, spec) -> Group | None:
    """The best back-to-back GEMM kernel over ``members`` as a scored group with its :class:`MlpPlan`, or None."""
    parts = split(graph, members, spec)
    if parts is None:
        return None
    cut, tail = parts
    ops = [graph.nodes[m].op for m in members]
    ctx = MlpContext(ops, outside_values(ops), [graph.nodes[m].op.result for m in group_outputs(graph, members)], cut,
                     tail=tail)
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
    if None in apart or cfg["score"] >= sum(apart):
        return None
    plan = MlpPlan(cfg["rows"], cfg["threads"], cut, tail, sum(apart))
    return Group(list(members), "mlp", cfg["bytes"], cfg["waves"], cfg["smem"], plan)
