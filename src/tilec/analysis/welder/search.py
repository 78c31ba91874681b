"""Welder's group search (DESIGN §4): walk the computes in topological order and grow a group consumer by
consumer while the grown group is legal at some memory level and its score beats the parts apart.

- **register** (``kind = "epilogue"``): an anchor op (any compute: contraction, conv, reduction,
  elementwise) plus elementwise members of the anchor's output shape that read every internal producer at
  their own coordinates. They run in the anchor's store epilogue; intermediates never leave registers.
  A pure layout member (a transpose, :func:`.graph.layout_map`) may end such a chain: the element is
  stored at its permuted address instead, so the permuted copy costs no kernel and no extra bytes.
- **shared** (``kind = "row"``): ops over the same leading "row" dims whose last dim is either the row
  length or 1, with reductions over exactly that last dim, of the row length (softmax, layernorm). One block per row;
  full-row intermediates and row scalars are staged in shared memory (planned by :mod:`.smem`).

- **shared** (``kind = "conv_chain"``): a producer conv with its epilogue, its tile (halo included)
  recomputed per block into shared memory for a consumer conv or pooling (:mod:`.conv_chain`).

- **shared** (``kind = "mlp"``): two GEMMs back to back, each with its register epilogue, a row tile of the
  hidden in shared memory (:mod:`.mlp_chain`).

Score of a group = (global traffic rounded to 32-B sectors + 1) × waves; a lone op takes Roller's
``estimate`` where it has one. Decisions are cached by a hash of the subgraph."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ...ir.types import itemsize
from .graph import TileGraph, is_identity, permuting_layout
from .propagate import propagate
from . import conv_chain, mlp_chain, smem

LEVELS = ("global", "shared", "register")
SECTOR = 32
ROW_THREADS = 256


@dataclass
class Group:
    """A candidate fused kernel: member node indices (function order), its kind and score."""

    members: list
    kind: str = "single"            # single | epilogue | row | attention | conv_chain | conv_pool | mlp
    traffic: int = 0
    waves: int = 1
    smem: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def score(self) -> int:
        return (-(-self.traffic // SECTOR) * SECTOR + 1) * self.waves


def _access_bytes(node, acc, points: int) -> int:
    operand = list(node.expr.inputs).index(acc.tensor)
    return points * itemsize(node.op.operands[operand].type.dtype)


def group_outputs(graph: TileGraph, members: list) -> list:
    """Members whose result is read outside the group (or by a non-compute op / the return)."""
    inside = set(members)
    return [m for m in members
            if graph.nodes[m].external_use or any(c not in inside for c in graph.nodes[m].consumers)]


def _internal(node, operand: int, inside: set) -> bool:
    return node.producers.get(operand) in inside


def single_group(graph: TileGraph, idx: int, spec) -> Group:
    node = graph.nodes[idx]
    est = node.op.attributes.get("estimate") or {}
    # An elementwise op apart is counted like a group member (every access once per output element, as its
    # emitted kernel loads it), not by Roller's cache-aware estimate: comparing a group with its parts under
    # two different models kept broadcast-heavy ops (layernorm's scale-and-shift) out of row groups.
    if "traffic_bytes" in est and not node.elementwise:
        return Group([idx], "single", int(est["traffic_bytes"]), int(est.get("waves", 1)))
    points = math.prod(node.extents.values())
    traffic = sum(_access_bytes(node, a, points) for a in set(node.expr.accesses)) + node.out_bytes
    blocks = max(1, math.prod(node.shape) // ROW_THREADS)
    return Group([idx], "single", traffic, -(-blocks // (8 * spec.num_sms)))


def epilogue_group(graph: TileGraph, members: list, spec) -> Group | None:
    anchor = graph.nodes[members[0]]
    inside, outs = set(members), group_outputs(graph, members)
    traffic = single_group(graph, members[0], spec)
    total, waves = traffic.traffic, traffic.waves
    if members[0] not in outs:
        total -= anchor.out_bytes
    points = math.prod(anchor.shape)
    layouts = set()
    for m in members[1:]:
        node = graph.nodes[m]
        if any(p in layouts for p in node.producers.values()):
            return None   # a layout member's output is in other coordinates: it can only be stored
        if node.producers.get(0) in inside and permuting_layout(node) is not None:
            layouts.add(m)   # a transpose: the producer's element is stored at the permuted address
            if m in outs:
                total += node.out_bytes
            continue
        if not node.elementwise or node.shape != anchor.shape or not any(p in inside for p in node.producers.values()):
            return None
        seen = set()
        for operand in range(len(node.op.operands)):
            for acc in node.accesses_of(operand):
                if _internal(node, operand, inside):
                    if not is_identity(node, acc):
                        return None
                elif (acc.tensor, repr(acc.indices)) not in seen:
                    seen.add((acc.tensor, repr(acc.indices)))
                    total += _access_bytes(node, acc, points)
        if m in outs:
            total += node.out_bytes
    return Group(list(members), "epilogue", total, waves)


def _row_shape(graph: TileGraph, members: list) -> tuple | None:
    """``(row dims, row length)`` shared by all members, or None."""
    shapes = [graph.nodes[m].shape for m in members]
    if len({len(s) for s in shapes}) != 1 or len(shapes[0]) < 2 or len({s[:-1] for s in shapes}) != 1:
        return None
    lengths = {s[-1] for s in shapes} | {graph.nodes[m].extents[r] for m in members
                                         for r in graph.nodes[m].expr.reduce_axes}
    lengths.discard(1)
    if len(lengths) != 1:
        return None
    return shapes[0][:-1], lengths.pop()


def row_group(graph: TileGraph, members: list, spec) -> Group | None:
    shape = _row_shape(graph, members)
    if shape is None or not any(not graph.nodes[m].elementwise for m in members):
        return None
    rows_dims, length = shape
    rows = math.prod(rows_dims)
    inside, outs = set(members), group_outputs(graph, members)
    traffic, staged, buffers, lastuse = 0, {}, [], {}
    for step, m in enumerate(members):
        node = graph.nodes[m]
        if any(d != "f32" for d in [v.type.dtype for v in node.op.operands] + [node.op.result.type.dtype]):
            return None
        full = node.shape[-1] == length
        if not node.elementwise:
            if len(node.expr.reduce_axes) != 1 or node.shape[-1] != 1 or node.expr.combiner not in ("sum", "max", "min"):
                return None
            # The lowering folds every reduction over the whole row (``length`` columns): one over a shorter
            # axis (a reduction of a row scalar, extent 1) would be folded ``length`` times.
            if node.extents[node.expr.reduce_axes[0]] != length:
                return None
        elif not full and any(_internal(node, o, inside) and graph.nodes[node.producers[o]].shape[-1] == length
                              for o in range(len(node.op.operands))):
            return None   # a row scalar cannot read a whole row without reducing it
        lead = node.expr.out_axes[:-1]
        last = node.expr.reduce_axes[0] if not node.elementwise else node.expr.out_axes[-1]
        for operand in range(len(node.op.operands)):
            for acc in node.accesses_of(operand):
                ok_lead = all((getattr(ix, "name", None) == ax) or (getattr(ix, "value", None) == 0
                                                                    and node.extents[ax] == 1)
                              for ix, ax in zip(acc.indices[:-1], lead)) and len(acc.indices) == len(lead) + 1
                if _internal(node, operand, inside):
                    p = node.producers[operand]
                    pfull = graph.nodes[p].shape[-1] == length
                    ix = acc.indices[-1]
                    ok_last = (getattr(ix, "name", None) == last) if pfull else (
                        getattr(ix, "value", None) == 0 or node.extents.get(getattr(ix, "name", None)) == 1)
                    if not (ok_lead and ok_last):
                        return None
                    lastuse[p] = step
                else:
                    row_access = ok_lead and getattr(acc.indices[-1], "name", None) == last and (
                        full or not node.elementwise)
                    value = node.op.operands[operand]
                    key = (id(value), "row") if row_access else (id(value), repr(acc.indices))
                    if key in staged:
                        staged[key]["uses"] += 1
                        staged[key]["end"] = step
                        continue
                    staged[key] = {"uses": 1, "start": step, "end": step, "row": row_access}
                    per = length if (full or not node.elementwise) else 1
                    traffic += rows * per * 4
        if m in outs:
            traffic += node.out_bytes
    # Reductions must see a whole row inside one tile: propagate a one-row tile and check it stays one row.
    last_node = graph.nodes[members[-1]]
    tile = {a: (0, 1) for a in last_node.expr.out_axes[:-1]}
    for idx, t in propagate(graph, members, tile).items():
        if any(hi - lo > 1 for lo, hi in list(t.values())[:-1]):
            return None
    for step, m in enumerate(members):
        if m in lastuse:
            size = length * 4 if graph.nodes[m].shape[-1] == length else 4
            buffers.append(smem.Buffer(("m", m), size, step, lastuse[m]))
    for key, s in staged.items():
        if s["uses"] > 1 and s["row"]:
            buffers.append(smem.Buffer(("x", key[0]), length * 4, 0, s["end"]))
    offsets, arena = smem.plan(buffers)
    threads = min(ROW_THREADS, max(32, -(-length // 32) * 32))
    arena += 4 * (threads // 32)
    if arena > spec.smem_per_block_bytes:
        return None
    per_sm = max(1, min(spec.max_blocks_per_sm, spec.max_threads_per_sm // threads,
                        spec.smem_per_sm_bytes // max(arena, 1)))
    waves = -(-rows // (per_sm * spec.num_sms))
    return Group(list(members), "row", traffic, waves, arena,
                 {"rows": rows, "rows_dims": rows_dims, "length": length, "threads": threads,
                  "offsets": offsets})


def classify_group(graph: TileGraph, members: list, spec) -> Group | None:
    """The best legal group over ``members`` (register level preferred), or None."""
    if len(members) == 1:
        return single_group(graph, members[0], spec)
    found = [g for g in (epilogue_group(graph, members, spec), row_group(graph, members, spec)) if g is not None]
    chain = conv_chain.chain_group(graph, members, spec) if not found else None
    if chain is not None:   # producer conv's tile recomputed into shared memory (conv_chain.py)
        found.append(Group(list(members), "conv_chain", chain[0], chain[1], chain[2], chain[3]))
    mlp = mlp_chain.mlp_group(graph, members, spec) if not found else None
    if mlp is not None:   # back-to-back GEMMs, a row tile of the hidden in shared memory (mlp_chain.py)
        found.append(Group(list(members), "mlp", *mlp))
    return min(found, key=lambda g: g.score) if found else None


def is_convex(graph: TileGraph, members: list) -> bool:
    """The fused kernel sits where its last member was: every outside use of a member must come later."""
    end = graph.pos(graph.nodes[members[-1]])
    inside = {id(graph.nodes[m].op) for m in members}
    for m in members:
        users = [u for u, _ in graph.nodes[m].op.result.uses if id(u) not in inside]
        if any(p <= end for p in graph.positions_of(users)):
            return False
    return True


def group_signature(graph: TileGraph, members: list) -> str:
    """A hash key of the subgraph: member expressions, shapes, internal edges and outside uses."""
    pos = {m: i for i, m in enumerate(members)}
    parts = []
    for m in members:
        n = graph.nodes[m]
        edges = sorted((o, pos[p]) for o, p in n.producers.items() if p in pos)
        shapes = [tuple(v.type.shape) for v in n.op.operands]
        outside = n.external_use or any(c not in pos for c in n.consumers)
        parts.append(f"{n.op.attributes['expr']}|{shapes}|{n.shape}|{edges}|{outside}|"
                     f"{n.op.attributes.get('estimate', {}).get('traffic_bytes')}")
    return "\n".join(parts)


def _apart(graph: TileGraph, members: list, best) -> int:
    """Score of ``members`` as one group if legal, else of each op alone."""
    g = best(list(members))
    return g.score if g is not None else sum(best([m]).score for m in members)


def search(graph: TileGraph, spec, max_level: str = "register", cache: dict | None = None) -> list:
    """Partition the graph's nodes into groups (lists of node indices, each sorted). ``max_level`` caps the
    memory level of an internal edge: ``global`` fuses nothing, ``shared`` allows row groups only,
    ``register`` allows both."""
    cache = {} if cache is None else cache
    allowed = {"global": (), "shared": ("row", "conv_chain"),
               "register": ("row", "epilogue", "conv_chain", "mlp")}[max_level]

    def best(members):
        key = group_signature(graph, members)
        if key not in cache:
            cache[key] = classify_group(graph, members, spec)
        g = cache[key]
        if g is None or (g.kind != "single" and g.kind not in allowed):
            return None
        return dataclasses.replace(g, members=list(members))   # same subgraph shape, other nodes

    taken, groups = set(), []
    for node in graph.nodes:
        if node.index in taken:
            continue
        if "epilogue" in allowed:   # attention's chain (scores in shared, its scale/mask in registers)
            from .attention import fused_group
            g = fused_group(graph, node.index, spec, lambda seg: _apart(graph, seg, best), cache)
            if g is not None and not taken & set(g.members):
                taken.update(g.members)
                groups.append(g)
                continue
        group = best([node.index])
        while allowed:
            cands = sorted({c for m in group.members for c in graph.nodes[m].consumers} - taken - set(group.members))
            for c in cands:
                members = sorted(group.members + [c])
                if not is_convex(graph, members):
                    continue
                g = best(members)
                if g is not None and g.score < group.score + best([c]).score:
                    group = g
                    break
            else:
                break
        taken.update(group.members)
        groups.append(group)
    return groups
