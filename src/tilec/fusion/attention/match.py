"""Attention kept on chip (DESIGN §4, issue #5): recognise the chain S = Q·Kᵀ → elementwise ops on S (scale,
additive mask) → a row-softmax-like section over the key axis → O = P·V (→ an optional transpose of O) in the
tile-graph, and model the one fused kernel that runs it per (batch·head, query tile).

The match reads only expression structure, never op names:
- **QKᵀ**: a ``+=`` contraction ``A * B`` with one reduce axis ``d``; its last two output axes are the query
  ``i`` and key ``j`` axes. One access uses ``i`` and ``d`` (Q), the other ``j`` and ``d`` (K).
- **pre**: elementwise ops of S's shape, each the only reader of the value before it, at its own coordinates.
- **row section**: every op downstream of that value up to the ·V contraction. It must be a legal shared-level
  row group (:func:`tilec.fusion.row.match.row_group`: reductions over the last axis only, rows read at their own coordinates), and
  each full-row op may read only the latest full-row value, so the kernel keeps one score tile in shared
  memory and updates it in place. Row scalars live in registers of the warp that owns the row.
- **·V**: a contraction whose A operand is the section's last full-row value with its reduce axis on the key
  axis; a permuting layout op (the head merge) may follow and is stored through (as in epilogue groups).
- **types**: an all-f32 chain takes the CUDA-core kernel (:mod:`.kernel`); an f16/bf16 chain (Q, K, V in one
  half type) takes the tensor-core kernel (:mod:`.mma`, ``engine = "mma_sync"``) where it is eligible (sm_80+,
  a softmax row section, head dims multiples of 16), on sm_90 with head dims 64 or 128 the wgmma kernel
  (:mod:`.wgmma`, ``engine = "wgmma"``), and is not matched otherwise.

Group tile: ``Tq`` query rows per block (a divisor of the query length) and ``Bk`` keys per staged K/V chunk.
Shared memory holds the Q tile, the ``Tq × Sk`` score tile, one K/V chunk and the staged mask vectors, within
the arch's per-block static limit; each thread keeps ``Tq·Dv / threads`` output accumulators (≤ 32).
Modelled bytes are what the emitted kernel (:mod:`.kernel`) loads and stores: Q once, K
and V once per query tile (once per cluster of query tiles on sm_90, :func:`~tilec.fusion.retile.cluster_blocks`), S-side operands per
element, per key (staged per block) or once per block by which of ``i``/``j`` their index uses, O once."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.hardware import target_spec
from ...analysis.welder.graph import TileGraph, is_identity, permuting_layout
from ..retile import MAX_ACC, MIN_BLOCK_OUTPUTS, clear_saving, cluster_blocks
from ...analysis.welder.search import Group, group_signature, is_convex
from ...ir.texpr.nodes import Access, AxisRef, Binary, Num, axes_in
from ...ir.types import itemsize
from ..row.match import row_group
from . import mma, wgmma

# Each tensor-core engine's module (its ``choose`` and ``lower``), by the ``engine`` a matched chain carries.
ENGINES = {mma.ENGINE: mma, wgmma.ENGINE: wgmma}

THREADS = 256      # most threads per attention block (8 warps share the softmax rows); fewer for small tiles
MAX_CHUNK = 64     # keys per staged K/V chunk


@dataclass
class Attention:
    """A matched attention chain: node indices by role, and the axes/extents the kernel needs."""

    qk: int
    pre: list
    rows: list
    pv: int
    post: list
    batch: tuple          # S's leading (batch·head) dims
    sq: int               # query length
    sk: int               # key length
    d: int                # head dim of Q/K
    dv: int               # head dim of V
    q_acc: object = None
    k_acc: object = None
    v_acc: object = None
    engine: str = ""      # "mma_sync" / "wgmma": the tensor-core kernels (:mod:`.mma`, :mod:`.wgmma`); "": f32 CUDA cores

    @property
    def members(self) -> list:
        return sorted([self.qk, *self.pre, *self.rows, self.pv, *self.post])


def _names(acc) -> set:
    """The axes an access's indices read."""
    return {a for ix in acc.indices for a in axes_in(ix)}


def _contraction(node):
    """``(a, b)`` accesses of a ``Y += A * B`` contraction over one axis (f32, or f16/bf16 for the
    tensor-core kernel, :mod:`.mma`), else None."""
    e = node.expr
    body = e.body
    floats = ("f32", *mma.DTYPES)
    if (e.combiner != "sum" or len(e.reduce_axes) != 1 or len(e.out_axes) < 2 or not isinstance(body, Binary)
            or body.op != "*" or not isinstance(body.lhs, Access) or not isinstance(body.rhs, Access)
            or any(v.type.dtype not in floats for v in node.op.operands) or node.op.result.type.dtype not in floats):
        return None
    return body.lhs, body.rhs


def _own_row(node, acc, axes: list) -> bool:
    """``acc`` reads at ``axes`` position by position (size-1 dims may read 0)."""
    if len(acc.indices) != len(axes):
        return False
    for ix, ax in zip(acc.indices, axes):
        if isinstance(ix, AxisRef) and ix.name == ax:
            continue
        if isinstance(ix, Num) and ix.value == 0 and node.extents.get(ax, 1) == 1:
            continue
        return False
    return True


def _only_inside(graph: TileGraph, idx: int, inside: set) -> bool:
    n = graph.nodes[idx]
    return not n.external_use and all(c in inside for c in n.consumers)


def match(graph: TileGraph, idx: int) -> Attention | None:
    """The attention chain whose QKᵀ contraction is node ``idx``, or None."""
    qk = graph.nodes[idx]
    pair = _contraction(qk)
    if pair is None:
        return None
    i_ax, j_ax, d_ax = qk.expr.out_axes[-2], qk.expr.out_axes[-1], qk.expr.reduce_axes[0]
    roles = {}
    for acc in pair:
        used = _names(acc)
        if d_ax in used and i_ax in used and j_ax not in used:
            roles["q"] = acc
        elif d_ax in used and j_ax in used and i_ax not in used:
            roles["k"] = acc
    if len(roles) != 2:
        return None
    s_shape = qk.shape
    cur, pre = idx, []
    while len(graph.nodes[cur].consumers) == 1 and not graph.nodes[cur].external_use:
        c = graph.nodes[graph.nodes[cur].consumers[0]]
        ops = [o for o, p in c.producers.items() if p == cur]
        if (not c.elementwise or c.shape != s_shape or c.op.result.type.dtype not in ("f32", *mma.DTYPES)
                or not all(is_identity(c, a) for o in ops for a in c.accesses_of(o))):
            break
        pre.append(c.index)
        cur = c.index
    # The row section: everything downstream of the score value up to the first contraction.
    rows, frontier, pv = [], list(graph.nodes[cur].consumers), None
    while frontier:
        n = graph.nodes[frontier.pop(0)]
        if n.index in rows or n.index == pv:
            continue
        if _contraction(n) is not None:
            if pv is not None and pv != n.index:
                return None
            pv = n.index
            continue
        rows.append(n.index)
        frontier += n.consumers
    rows.sort()
    if pv is None or not rows or any(r > pv for r in rows):
        return None
    spec = target_spec(graph.nodes[idx].op)
    whole = set([idx, *pre, *rows])
    f32 = all(v.type.dtype == "f32" for m in whole for v in [*graph.nodes[m].op.operands, graph.nodes[m].op.result])
    if f32 and row_group(graph, rows, spec) is None:
        return None
    sk = s_shape[-1]
    if any(graph.nodes[r].shape not in (s_shape, s_shape[:-1] + (1,)) for r in rows):
        return None
    # In place: each full-row op reads only the latest full-row value; row-scalar ops load nothing outside.
    live, inside = cur, set(rows)
    for r in rows:
        n = graph.nodes[r]
        for o in range(len(n.op.operands)):
            p = n.producers.get(o)
            internal = p == cur or p in inside
            if internal and graph.nodes[p].shape == s_shape and p != live:
                return None
            if not internal and n.shape != s_shape and n.elementwise:
                return None
        if n.elementwise and n.shape == s_shape:
            live = r
    if live == cur:
        return None
    pvn = graph.nodes[pv]
    pair = _contraction(pvn)
    ops = [o for o, p in pvn.producers.items() if p == live]
    if len(ops) != 1 or len(pvn.producers) > 1 and any(p in inside for o, p in pvn.producers.items() if o != ops[0]):
        return None
    p_acc = pvn.accesses_of(ops[0])
    v_acc = [a for a in pair if a.tensor != pvn.expr.inputs[ops[0]]]
    r_ax = pvn.expr.reduce_axes[0]
    if (len(p_acc) != 1 or len(v_acc) != 1 or pvn.shape[:-1] != s_shape[:-1]
            or not _own_row(pvn, p_acc[0], list(pvn.expr.out_axes[:-1]) + [r_ax])
            or pvn.expr.out_axes[-2] in _names(v_acc[0])):
        return None
    post, last = [], pv
    half = all(v.type.dtype in mma.DTYPES for v in pvn.op.operands)
    if half and mma.output_cast(graph, pv) is not None:   # --precision's cast of O back: stored converted
        post, last = [mma.output_cast(graph, pv)], mma.output_cast(graph, pv)
    if len(graph.nodes[last].consumers) == 1 and not graph.nodes[last].external_use:
        c = graph.nodes[graph.nodes[last].consumers[0]]
        if c.producers.get(0) == last and permuting_layout(c) is not None:
            post.append(c.index)
    whole = set([idx, *pre, *rows, pv, *post])
    f32 = all(v.type.dtype == "f32" for m in whole for v in [*graph.nodes[m].op.operands, graph.nodes[m].op.result])
    for m in [idx, *pre, *rows] + [pv, *post][:len(post)]:
        if not _only_inside(graph, m, whole):
            return None
    d = qk.extents[d_ax]
    att = Attention(idx, pre, rows, pv, post, tuple(s_shape[:-2]), s_shape[-2], sk, d, pvn.shape[-1],
                    roles["q"], roles["k"], v_acc[0])
    if not f32:   # the CUDA-core kernel stages and computes in f32 only; f16/bf16 chains need tensor cores
        if not mma.eligible(graph, att, spec):
            return None
        att.engine = wgmma.ENGINE if wgmma.eligible(graph, att, spec) else mma.ENGINE
    return att


# ---- the group's tile and modelled bytes ---------------------------------------------------------------

def _divisors(n: int, cap: int) -> list:
    return [x for x in range(1, min(n, cap) + 1) if n % x == 0]


def scope(acc, node) -> str:
    """Which of the query (``i``) / key (``j``) axes an S-side outside access depends on: ``ij`` (loaded per
    element), ``j`` (staged per key chunk), ``""`` (one value per block)."""
    out = node.expr.out_axes
    names = _names(acc)
    i_ax, j_ax = out[-2], out[-1] if node.elementwise else node.expr.reduce_axes[0]
    dep_i = i_ax in names and node.extents.get(i_ax, 1) > 1
    if dep_i or not node.elementwise:
        return "ij"
    return "j" if j_ax in names and node.extents.get(j_ax, 1) > 1 else ""


def outside_accesses(graph: TileGraph, att: Attention) -> list:
    """``[(node index, access, scope)]`` of the S-side members' reads of kernel operands, each distinct
    (tensor, indices) of a member once, in member order."""
    inside = set(att.members)
    out = []
    for m in att.pre + att.rows:
        n = graph.nodes[m]
        seen = set()
        for acc in n.expr.accesses:
            o = list(n.expr.inputs).index(acc.tensor)
            key = (acc.tensor, repr(acc.indices))
            if n.producers.get(o) in inside or key in seen:
                continue
            seen.add(key)
            where = scope(acc, n) if m in att.pre else "ij"
            out.append((m, acc, where))
    return out


def smem_bytes(att: Attention, tq: int, bk: int, staged_j: int, scalars: int) -> int:
    return 4 * (tq * att.d + tq * att.sk + bk * max(att.d, att.dv) + bk * staged_j + max(1, scalars))


def modelled_bytes(graph: TileGraph, att: Attention, tq: int, cluster: int = 1) -> int:
    """Global bytes of the kernel with ``tq`` query rows per block and K/V chunks shared by ``cluster``
    blocks (what the emulator counts)."""
    bh = math.prod(att.batch)
    blocks = bh * (att.sq // tq)
    total = blocks * 4 * tq * att.d + blocks // cluster * 4 * (att.sk * att.d + att.sk * att.dv)
    for m, acc, where in outside_accesses(graph, att):
        n = graph.nodes[m]
        size = itemsize(n.op.operands[list(n.expr.inputs).index(acc.tensor)].type.dtype)
        total += size * blocks * {"ij": tq * att.sk, "j": att.sk, "": 1}[where]
    last = graph.nodes[att.post[-1] if att.post else att.pv]
    return total + last.out_bytes


def choose(graph: TileGraph, att: Attention, spec, min_block_outputs: int) -> dict | None:
    """The best ``{tq, bk, threads, blocks, bytes, waves, smem}`` by (bytes rounded to sectors + 1) × waves,
    at least min(#SM, outputs / ``min_block_outputs``) blocks where some tile reaches it; None if none fits."""
    access = outside_accesses(graph, att)
    staged_j = sum(1 for _, _, w in access if w == "j")
    scalars = sum(1 for _, _, w in access if w == "")
    limit = spec.smem_per_block_bytes
    bk = max(_divisors(att.sk, MAX_CHUNK))
    bh = math.prod(att.batch)
    cands = []
    for tq, threads in ((tq, t) for tq in _divisors(att.sq, 128) for t in (THREADS, THREADS // 2, 64, 32)):
        if tq * att.dv % threads or tq * att.dv // threads > MAX_ACC:
            continue   # every thread owns the same number of outputs, in registers
        smem = smem_bytes(att, tq, bk, staged_j, scalars)
        if smem > limit:
            continue
        blocks = bh * (att.sq // tq)
        per_sm = max(1, min(spec.max_threads_per_sm // threads, spec.smem_per_sm_bytes // smem))
        waves = -(-blocks // (per_sm * spec.num_sms))
        # The query tiles of one head read the same K and V chunks: a cluster of them loads each once.
        cluster = cluster_blocks(spec, att.sq // tq)
        nbytes = modelled_bytes(graph, att, tq, cluster)
        plain = modelled_bytes(graph, att, tq)
        if cluster > 1 and not clear_saving(nbytes, plain):   # a cluster only for a clear saving
            cluster, nbytes = 1, plain
        cands.append({"tq": tq, "bk": bk, "threads": threads, "blocks": blocks, "bytes": nbytes, "cluster": cluster,
                      "waves": waves, "smem": smem, "score": (-(-nbytes // 32) * 32 + 1) * waves})
    if not cands:
        return None
    outputs = bh * att.sq * att.dv
    floor = min(spec.num_sms, -(-outputs // min_block_outputs))
    enough = [c for c in cands if c["blocks"] >= floor] or [max(cands, key=lambda c: c["blocks"])]
    return min(enough, key=lambda c: (c["score"], -c["tq"], -c["threads"]))


def segments(att: Attention) -> list:
    """The groups the chain falls into without this fusion: QKᵀ with its elementwise ops, the row section,
    ·V with its layout op (what the search scores as the unfused alternative)."""
    return [[att.qk, *att.pre], list(att.rows), [att.pv, *att.post]]


@dataclass(frozen=True)
class AttentionPlan:
    """The kernel's tile (``tq`` query rows per block, ``bk`` keys per chunk, ``threads``, ``blocks``, and the
    ``cluster`` of query tiles sharing K/V chunks, 1 for none) and the unfused alternative's score."""

    tq: int
    bk: int
    threads: int
    blocks: int
    cluster: int
    apart: int
    engine: str = ""   # "mma_sync" / "wgmma" for the tensor-core kernels

    def tile_attr(self) -> dict:
        """The ``tile`` attribute (``cluster`` and ``engine`` only when there is one)."""
        tile = {"tq": self.tq, "bk": self.bk, "threads": self.threads, "blocks": self.blocks}
        if self.cluster > 1:
            tile["cluster"] = self.cluster
        if self.engine:
            tile["engine"] = self.engine
        return tile


def fused_group(graph: TileGraph, idx: int, spec, apart, cache: dict):
    """The ``kind = "attention"`` :class:`~tilec.analysis.welder.search.Group` starting at node ``idx`` when
    the chain matches, fits and scores below ``apart(segment)`` summed over :func:`segments` (the unfused
    alternative), else None. The choice is cached by the subgraph's hash, like every other group decision."""
    att = match(graph, idx)
    if att is None or not is_convex(graph, att.members):
        return None
    key = ("attention", group_signature(graph, att.members))
    if key not in cache:
        if att.engine:
            tile = ENGINES[att.engine].choose(graph, att, spec, outside_accesses(graph, att))
        else:
            tile = choose(graph, att, spec, MIN_BLOCK_OUTPUTS)
        alt = sum(apart(seg) for seg in segments(att))
        group = None
        if tile is not None:
            plan = AttentionPlan(tile["tq"], tile["bk"], tile["threads"], tile["blocks"], tile["cluster"], alt,
                                 tile.get("engine", ""))
            group = Group(att.members, "attention", tile["bytes"], tile["waves"], tile["smem"], plan)
            if group.score >= alt:
                group = None
        cache[key] = group
    g = cache[key]
    return None if g is None else Group(att.members, g.kind, g.traffic, g.waves, g.smem, g.plan)
