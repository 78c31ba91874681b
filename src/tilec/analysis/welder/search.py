"""Welder's group search (DESIGN §4): walk the computes in topological order and grow a group consumer by
consumer while the grown group is legal at some memory level and its score beats the parts apart.

Which groups are legal, and how each is planned, is not decided here: the fusion patterns of
``tilec.fusion`` (epilogue, row, attention, conv chain, conv pool, mlp) are passed in by the welder pass,
each a :class:`~tilec.fusion.registry.FusionPattern` whose ``match`` returns a scored :class:`Group`
carrying its typed plan. This module is only the generic loop over them: a candidate is classified by the
``grow`` patterns in priority order (those of one priority compete by score), a ``seed`` pattern may take a
whole chain before a group grows from a node, and a pattern is chosen only where ``max_level`` allows it.

Score of a group = (global traffic rounded to 32-B sectors + 1) × waves; a lone op takes Roller's
``estimate`` where it has one. Decisions are cached by a hash of the subgraph."""
from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass

from ...ir.types import itemsize
from ..hardware import available_archs, get_arch
from .graph import TileGraph

LEVELS = ("global", "shared", "register")


def _common_sector() -> int:
    """The DRAM/L2 sector size a score rounds traffic to: the specs' ``transaction_bytes.sector``. A group's
    score has no target, so every spec must agree (they do: 32 B); one that differs makes the score need its
    target, and this refuses to guess."""
    sizes = {get_arch(a).transaction_bytes["sector"] for a in available_archs()}
    if len(sizes) != 1:
        raise RuntimeError(f"the GPU specs disagree on the sector size ({sorted(sizes)}): Welder's group score "
                           "needs the target's")
    return sizes.pop()


SECTOR = _common_sector()
ROW_THREADS = 256


@dataclass
class Group:
    """A candidate fused kernel: member node indices (function order), its kind (``single`` or a fusion
    pattern's name), its score's parts, and the pattern's typed plan (a frozen dataclass)."""

    members: list
    kind: str = "single"
    traffic: int = 0
    waves: int = 1
    smem: int = 0
    plan: object = None

    @property
    def score(self) -> int:
        return (-(-self.traffic // SECTOR) * SECTOR + 1) * self.waves


def access_bytes(node, acc, points: int) -> int:
    """Bytes of ``points`` reads through ``acc`` (one element of its operand's dtype each)."""
    operand = list(node.expr.inputs).index(acc.tensor)
    return points * itemsize(node.op.operands[operand].type.dtype)


def group_outputs(graph: TileGraph, members: list) -> list:
    """Members whose result is read outside the group (or by a non-compute op / the return)."""
    inside = set(members)
    return [m for m in members
            if graph.nodes[m].external_use or any(c not in inside for c in graph.nodes[m].consumers)]


def reads_inside(node, operand: int, inside: set) -> bool:
    """Operand ``operand`` of ``node`` is produced by a member of ``inside``."""
    return node.producers.get(operand) in inside


def single_group(graph: TileGraph, idx: int, spec) -> Group:
    """Node ``idx`` as a kernel of its own, scored as Welder compares it with the groups it could join."""
    node = graph.nodes[idx]
    est = node.op.attributes.get("estimate") or {}
    # An elementwise op apart is counted like a group member (every access once per output element, as its
    # emitted kernel loads it), not by Roller's cache-aware estimate: comparing a group with its parts under
    # two different models kept broadcast-heavy ops (layernorm's scale-and-shift) out of row groups.
    if "traffic_bytes" in est and not node.elementwise:
        return Group([idx], "single", int(est["traffic_bytes"]), int(est.get("waves", 1)))
    points = math.prod(node.extents.values())
    traffic = sum(access_bytes(node, a, points) for a in set(node.expr.accesses)) + node.out_bytes
    blocks = max(1, math.prod(node.shape) // ROW_THREADS)
    return Group([idx], "single", traffic, -(-blocks // (8 * spec.num_sms)))


def classify_group(graph: TileGraph, members: list, spec, patterns: list) -> Group | None:
    """The best legal group over ``members``, or None: the ``grow`` patterns of the lowest priority that
    match compete by score (ties: the first, by name); a higher priority is asked only when none matched."""
    if len(members) == 1:
        return single_group(graph, members[0], spec)
    grow = [p for p in patterns if p.stage == "grow"]
    for _, tier in itertools.groupby(grow, key=lambda p: p.priority):
        found = [g for g in (p.match(graph, members, spec) for p in tier) if g is not None]
        if found:
            return min(found, key=lambda g: g.score)
    return None


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
    """A hash key of the subgraph: member expressions, operand shapes and element types (an f16 and an f32
    group of one shape choose different kernels: tensor cores or not), internal edges and outside uses."""
    pos = {m: i for i, m in enumerate(members)}
    parts = []
    for m in members:
        n = graph.nodes[m]
        edges = sorted((o, pos[p]) for o, p in n.producers.items() if p in pos)
        shapes = [(tuple(v.type.shape), v.type.dtype) for v in n.op.operands]
        outside = n.external_use or any(c not in pos for c in n.consumers)
        parts.append(f"{n.op.attributes['expr']}|{shapes}|{n.shape}|{edges}|{outside}|"
                     f"{n.op.attributes.get('estimate', {}).get('traffic_bytes')}")
    return "\n".join(parts)


def _apart(graph: TileGraph, members: list, best) -> int:
    """Score of ``members`` as one group if legal, else of each op alone."""
    g = best(list(members))
    return g.score if g is not None else sum(best([m]).score for m in members)


def search(graph: TileGraph, spec, patterns: list, max_level: str = "register", cache: dict | None = None,
           banned: frozenset = frozenset()) -> list:
    """Partition the graph's nodes into groups (lists of node indices, each sorted) with the fusion
    ``patterns`` (in the order to ask them). ``max_level`` caps the memory level of an internal edge: a
    pattern is chosen only where its ``allowed(max_level)``; ``global`` fuses nothing. ``banned`` holds
    subgraph hashes (:func:`group_signature`) never to take as one group (the welder pass's latency check
    found the fused kernel slower than its members apart)."""
    cache = {} if cache is None else cache
    allowed = {p.name for p in patterns if p.allowed(max_level)}
    seeds = [p for p in patterns if p.stage == "seed" and p.name in allowed]
    grows = any(p.stage == "grow" and p.name in allowed for p in patterns)

    def best(members):
        key = group_signature(graph, members)
        if len(members) > 1 and key in banned:
            return None
        if key not in cache:   # classified over every pattern, then filtered: the cache holds the best
            cache[key] = classify_group(graph, members, spec, patterns)
        g = cache[key]
        if g is None or (g.kind != "single" and g.kind not in allowed):
            return None
        return dataclasses.replace(g, members=list(members))   # same subgraph shape, other nodes

    def seeded(idx):
        for p in seeds:   # a whole chain at once (attention: scores in shared, its scale/mask in registers)
            g = p.seed(graph, idx, spec, lambda seg: _apart(graph, seg, best), cache)
            if g is not None and not taken & set(g.members) and group_signature(graph, g.members) not in banned:
                return g
        return None

    taken, groups = set(), []
    for node in graph.nodes:
        if node.index in taken:
            continue
        group = seeded(node.index)
        if group is not None:
            taken.update(group.members)
            groups.append(group)
            continue
        group = best([node.index])
        while grows:
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
