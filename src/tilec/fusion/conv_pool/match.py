"""Pooling tails: a conv chain whose result is only summed over some dims (a global average pool) keeps
that result on chip, as per-block partial sums (DESIGN §4, "shared"; issue #5).

A chain group (:mod:`tilec.fusion.conv_chain`) whose one output ``X`` has one reader ``R``, a sum that reads ``X`` at
plain axes (``S[n, c, 0, 0] += X[n, c, r0, r1]``: each X dim either kept, read at an output axis of ``R``,
or pooled, read at a reduce axis), would write ``X`` whole and have it read back whole. Instead the welder
pass inserts the partial-sum op::

    P[n, c, pb2, pb3] += X[n, c, pb2 * B2 + pi2, pb3 * B3 + pi3]      (pad 0, pi extents = B)

with ``B`` the chain's block tile along the pooled dims, fuses it into the chain (``kind = "conv_pool"``,
:mod:`.kernel`: every block reduces its own tile in shared memory, in a fixed order, and
stores its ``P`` elements) and points ``R`` at ``P`` (same expression, the pooled extents now the block
counts). The cross-block sum is thus a second, ordinary reduction kernel: deterministic, no atomics, and
both ops are plain tensor expressions, so the reference interpreter checks the rewrite.

The chain's tile is chosen again with the tail (:func:`tilec.fusion.conv_chain.match.choose` over a
:class:`.kernel.PoolChainContext`: X's store replaced by P's, the reduction tile
added to shared memory, the same parallelism floor over the chain's outputs), and the tail is taken only
when (chain bytes + R's read of its input) scores lower than before."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.roller import construct_rtiles
from ...analysis.tile_problem import TileProblem
from ...analysis.welder.graph import TileGraph
from ...analysis.welder.search import SECTOR, Group, group_outputs
from ...ir.core import Operation
from ...ir.texpr.nodes import AxisRef
from ...ir.types import TensorType
from ..conv_chain.kernel import chain_attr
from ..conv_chain.match import ChainPlan, chain_context, choose
from .kernel import PoolChainContext


@dataclass(frozen=True)
class PoolPlan(ChainPlan):
    """A conv chain's plan (its tile chosen again with the tail) and the score of chain and pool apart."""

    apart: int = 0


def _reader(graph, group):
    """``(R node, pooled dims of X)`` when the chain's only output is summed by one plain-axis reduction."""
    if group.kind != "conv_chain":
        return None
    outs = group_outputs(graph, group.members)
    if outs != [group.members[-1]]:
        return None
    x = graph.nodes[outs[0]]
    if x.external_use or len(x.consumers) != 1 or x.op.result.type.dtype != "f32":
        return None
    r = graph.nodes[x.consumers[0]]
    if r.expr.combiner != "sum" or len(r.op.operands) != 1 or len(r.expr.accesses) != 1:
        return None
    if r.op.result.type.dtype != "f32":
        return None
    (acc,) = r.expr.accesses
    names = [ix.name if isinstance(ix, AxisRef) else None for ix in acc.indices]
    if None in names or len(set(names)) != len(names) or set(r.expr.reduce_axes) - set(names):
        return None
    if any(r.extents[a] != n for a, n in zip(names, x.shape)):
        return None
    pooled = [d for d, a in enumerate(names) if a in r.expr.reduce_axes]
    return (r, pooled) if pooled else None


def _context(graph, members, pooled):
    base = chain_context(graph, members)
    ops = [graph.nodes[m].op for m in members]
    return PoolChainContext(ops, base.args, ops[-1].result, pooled)


def _score(nbytes: int, waves: int) -> int:
    return (-(-nbytes // SECTOR) * SECTOR + 1) * waves


def _roll(op, spec) -> None:
    """Roller's attributes for an op the pass created or changed (as the ``roller`` pass sets them)."""
    cands = construct_rtiles(TileProblem.of(op), spec, 8)
    if cands:
        op.attributes["rtile"] = cands[0].rtile.as_attr()
        op.attributes["estimate"] = dict(cands[0].est.as_attr(), arch=spec.arch)
        op.attributes["alternatives"] = [dict(c.rtile.as_attr(), seconds=float(f"{c.est.seconds:.6g}"))
                                         for c in cands[1:]]


def _fresh(base: str, used: set) -> str:
    name = base
    while name in used:
        name += "_"
    used.add(name)
    return name


def attach(block, graph, groups: list, spec, classify) -> tuple:
    """Give every conv chain with a summing reader its pooling tail where that scores better. Returns the
    tile-graph and the groups (node indices) of the rewritten function body; ``classify(graph, members)``
    scores the reader's group again over the partial sums."""
    plans = []
    for g in groups:
        found = _reader(graph, g)
        if found is None:
            continue
        r, pooled = found
        ctx = _context(graph, g.members, pooled)
        cfg = choose(ctx, spec)
        if cfg is None:
            continue
        xbytes = graph.nodes[g.members[-1]].out_bytes
        pbytes = 4 * math.prod(ctx.partial_shape(cfg))
        # g.score and least_score are both the chain's fewest-bytes config's (conv_chain.match.choose); the
        # kernel takes the fastest config.
        if cfg["least_score"] + pbytes >= g.score + xbytes:
            continue
        plans.append((g, r, pooled, ctx, cfg, g.score + _score(xbytes + pbytes, 1)))
    if not plans:
        return graph, groups
    tails = {}
    for g, r, pooled, ctx, cfg, apart in plans:
        used = set(r.expr.axes)
        (acc,) = r.expr.accesses
        outs, ins, hints = [], [], {}
        for d, ix in enumerate(acc.indices):
            if d in pooled:
                b, i = _fresh(f"pb{d}", used), _fresh(f"pi{d}", used)
                size = cfg["block"][ctx.out_axes[d]]
                outs.append(b)
                ins.append(f"{b} * {size} + {i}")
                hints[i] = size
            else:
                outs.append(ix.name)
                ins.append(ix.name)
        xval = graph.nodes[g.members[-1]].op.result
        tail = Operation("tile.compute", [xval], [TensorType(tuple(ctx.partial_shape(cfg)), "f32")],
                         {"expr": f"P[{', '.join(outs)}] += X[{', '.join(ins)}]", "pad": 0.0, "axes": hints,
                          "origin": "welder.pool_partial"}, loc=r.op.loc)
        block.insert_before(r.op, tail)
        r.op.set_operand(0, tail.result)
        _roll(tail, spec)
        _roll(r.op, spec)   # R now sums the partials: its own tile and estimate for the smaller input
        tails[id(g)] = (tail, cfg, apart)
    new = TileGraph(block)
    index = {id(n.op): n.index for n in new.nodes}
    out = []
    for g in groups:
        members = sorted(index[id(graph.nodes[m].op)] for m in g.members)
        if id(g) in tails:
            tail, cfg, apart = tails[id(g)]
            members.append(index[id(tail)])
            plan = PoolPlan(chain_attr(cfg), g.plan.split, apart)
            out.append(Group(members, "conv_pool", cfg["bytes"], cfg["waves"], cfg["smem"], plan))
        elif any(graph.nodes[m].op is r.op for _, r, *_ in plans for m in g.members):
            # The reader's group: scored again over the partial sums it now reads.
            out.append(classify(new, members) or g)
            out[-1] = Group(members, out[-1].kind, out[-1].traffic, out[-1].waves, out[-1].smem, out[-1].plan)
        else:
            out.append(Group(members, g.kind, g.traffic, g.waves, g.smem, g.plan))
    return new, out

