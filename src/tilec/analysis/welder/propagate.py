"""Backward tile propagation (DESIGN §4): given an output tile of a group's last op, the tile every
producer in the group must compute, through the bound analysis of each access's indices
(:func:`~tilec.analysis.index_map.access_box`). Halos (conv windows) widen the producer's tile; reduce axes
always span their full extent, because a reduction fuses only when its reduced axis lies inside one tile."""
from __future__ import annotations

from ..index_map import access_box


def member_ranges(node, out_tile: dict) -> dict:
    """Iteration ranges of every axis of ``node`` for an output tile ``{axis: (lo, hi)}``."""
    ranges = {a: out_tile.get(a, (0, node.extents[a])) for a in node.expr.out_axes}
    for r in node.expr.reduce_axes:
        ranges[r] = (0, node.extents[r])
    return ranges


def propagate(graph, members: list, out_tile: dict) -> dict:
    """``{node index: {out axis: (lo, hi)}}`` for every member, starting from ``out_tile`` (ranges of the
    last member's output axes) and walking producers backwards; a producer read by several members gets
    the union (the bounding box) of what they read, clipped to its shape."""
    last = members[-1]
    tiles = {last: {a: out_tile.get(a, (0, graph.nodes[last].extents[a])) for a in graph.nodes[last].expr.out_axes}}
    inside = set(members)
    for idx in reversed(members):
        node = graph.nodes[idx]
        if idx not in tiles:   # a member no later member reads (a side output): its full extent
            tiles[idx] = {a: (0, node.extents[a]) for a in node.expr.out_axes}
        ranges = member_ranges(node, tiles[idx])
        for operand, prod in node.producers.items():
            if prod not in inside:
                continue
            pnode = graph.nodes[prod]
            for acc in node.accesses_of(operand):
                box = access_box(node.expr, acc, ranges)
                cur = tiles.get(prod)
                new = {}
                for ax, (lo, hi), dim in zip(pnode.expr.out_axes, box, pnode.shape):
                    lo, hi = max(lo, 0), min(hi, dim)
                    if cur is not None:
                        lo, hi = min(lo, cur[ax][0]), max(hi, cur[ax][1])
                    new[ax] = (lo, hi)
                tiles[prod] = new
    return tiles


def halo(graph, members: list, out_tile: dict) -> dict:
    """Per member, how many more elements its propagated tile holds than its share of the output tile
    (0 for elementwise chains; > 0 where a window re-reads a neighbour, i.e. recomputed halos)."""
    import math
    tiles = propagate(graph, members, out_tile)
    last = tiles[members[-1]]
    base = math.prod(hi - lo for lo, hi in last.values())
    return {i: math.prod(hi - lo for lo, hi in t.values()) - base for i, t in tiles.items()}
