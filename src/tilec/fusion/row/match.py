"""Shared-level row groups (``kind = "row"``, DESIGN §4): ops over the same leading "row" dims whose last
dim is either the row length or 1, with reductions over exactly that last dim, of the row length (softmax,
layernorm). One block per row; full-row intermediates and row scalars are staged in shared memory
(planned by :mod:`tilec.analysis.welder.smem`)."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.welder import smem
from ...analysis.welder.graph import TileGraph
from ...analysis.welder.propagate import propagate
from ...analysis.welder.search import ROW_THREADS, Group, group_outputs, reads_inside


@dataclass(frozen=True)
class RowPlan:
    """One block of ``threads`` threads per row: ``rows`` rows (``rows_dims`` before the last dim) of
    ``length`` columns; ``offsets`` places each staged buffer (``("m", member)`` or ``("x", value id)``) in
    the shared arena."""

    rows: int
    rows_dims: tuple
    length: int
    threads: int
    offsets: dict

    def tile_attr(self) -> dict:
        """The ``tile`` attribute of the row kernel: one row per block."""
        return {"rows": 1, "length": self.length, "threads": self.threads}


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
    """The shared-level row group over ``members`` with its :class:`RowPlan`, or None."""
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
        elif not full and any(reads_inside(node, o, inside) and graph.nodes[node.producers[o]].shape[-1] == length
                              for o in range(len(node.op.operands))):
            return None   # a row scalar cannot read a whole row without reducing it
        lead = node.expr.out_axes[:-1]
        last = node.expr.reduce_axes[0] if not node.elementwise else node.expr.out_axes[-1]
        for operand in range(len(node.op.operands)):
            for acc in node.accesses_of(operand):
                ok_lead = all((getattr(ix, "name", None) == ax) or (getattr(ix, "value", None) == 0
                                                                    and node.extents[ax] == 1)
                              for ix, ax in zip(acc.indices[:-1], lead)) and len(acc.indices) == len(lead) + 1
                if reads_inside(node, operand, inside):
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
    warp = spec.warp_size   # threads are whole warps (wavefronts), one partial per warp in shared memory
    threads = min(ROW_THREADS, max(warp, -(-length // warp) * warp))
    arena += 4 * (threads // warp)
    if arena > spec.smem_per_block_bytes:
        return None
    per_sm = max(1, min(spec.max_blocks_per_sm, spec.max_threads_per_sm // threads,
                        spec.smem_per_sm_bytes // max(arena, 1)))
    waves = -(-rows // (per_sm * spec.num_sms))
    return Group(list(members), "row", traffic, waves, arena, RowPlan(rows, rows_dims, length, threads, offsets))
