"""Register-level groups (``kind = "epilogue"``, DESIGN §4): an anchor op (any compute: contraction,
conv, reduction, elementwise) plus elementwise members of the anchor's output shape that read every
internal producer at their own coordinates. They run in the anchor's store epilogue; intermediates never
leave registers. A pure layout member (a transpose, :func:`~tilec.analysis.welder.graph.layout_map`) may
end such a chain: the element is stored at its permuted address instead, so the permuted copy costs no
kernel and no extra bytes."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.welder.graph import TileGraph, is_identity, permuting_layout
from ...analysis.welder.search import Group, access_bytes, group_outputs, reads_inside, single_group


@dataclass(frozen=True)
class EpiloguePlan:
    """An epilogue group needs no plan of its own: its tile is the anchor's (re-chosen by the welder pass)."""


def epilogue_group(graph: TileGraph, members: list, spec) -> Group | None:
    """The register-level group over ``members`` (anchor first), or None when some member cannot run in
    the anchor's store epilogue."""
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
                if reads_inside(node, operand, inside):
                    if not is_identity(node, acc):
                        return None
                elif (acc.tensor, repr(acc.indices)) not in seen:
                    seen.add((acc.tensor, repr(acc.indices)))
                    total += access_bytes(node, acc, points)
        if m in outs:
            total += node.out_bytes
    return Group(list(members), "epilogue", total, waves, 0, EpiloguePlan())
