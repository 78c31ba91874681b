"""Converters for ONNX ``Loop``, ``If`` and ``Scan``: structured ``cf.loop`` / ``cf.if`` ops (DESIGN §2, §6).

A body becomes a single-block region that reads the enclosing graph's values directly (ONNX's captured
outer values). ``Scan`` is a ``cf.loop`` whose body gathers the iteration's slice of each scan input.
tilec keeps shapes static: loop-carried values keep their type, and scan outputs need a trip count known
at import and a loop that cannot exit early.
"""
from __future__ import annotations

import numpy as np

from ...ir.core import Block, Operation, Region
from ...ir.dialects.cf import BOOL, I64, stacked
from ..importer import ConstValue
from ..registry import converter

INT64_MAX = np.iinfo(np.int64).max


def scalar(ctx, v, dtype: str):
    """``v`` (a Value or ConstValue of one element) as a rank-0 Value/ConstValue."""
    if v.type.dtype != dtype or v.type.numel != 1:
        raise ctx.error(None, f"expected a single {dtype} value, got {v.type}")
    if v.type.rank == 0:
        return v
    if isinstance(v, ConstValue):
        return ConstValue(v.array.reshape(()))
    return ctx.emit("graph.reshape", [v], {"shape": []})[0]


def is_true(ctx, v) -> bool:
    arr = ctx._const_array(v)
    return arr is not None and bool(np.asarray(arr).reshape(-1)[0])


def _through_views(v):
    """The value a chain of views (identity, reshape, ...) of ``v`` reads."""
    from ...ir.opspec import get_spec
    while getattr(v, "defining_op", None) is not None and v.defining_op.operands and \
            getattr(get_spec(v.defining_op.name), "lowering", None) == "view":
        v = v.defining_op.operands[0]
    return v


def build_loop(ctx, max_trip, cond, carried: list, body, trip: int | None, what: str) -> Operation:
    """Emit a ``cf.loop``. ``body(i, cond, carried_args)`` runs with the builder inside the body block and
    returns ``(cond_out, carried_outs, scan_outs)`` as Values or ConstValues."""
    carried = [ctx.value(v) for v in carried]
    block = Block([I64, BOOL] + [v.type for v in carried], ["i", "cond"])
    with ctx.in_block(block):
        cond_out, outs, scans = body(block.args[0], block.args[1], block.args[2:])
        cond_out = scalar(ctx, cond_out, "bool")
        static_cond = _through_views(cond_out) is block.args[1] or is_true(ctx, cond_out)
        ys = [ctx.value(v) for v in [cond_out, *outs, *scans]]
        for k, (v, want) in enumerate(zip(ys[1:], carried)):
            if v.type != want.type:
                raise ctx.error(None, f"{what} carried value #{k} changes type from {want.type} to {v.type} "
                                      "(tilec needs loop-carried values of a fixed shape)")
        ctx.builder.create("cf.yield", ys, [])
    attrs = {"num_scan": len(scans)}
    if trip is not None:
        attrs["trip"] = trip
    if scans and (trip is None or not static_cond or not is_true(ctx, cond)):
        raise ctx.error(None, f"{what} has scan outputs but its trip count is not known at import (a "
                              "non-constant count or an early exit gives them a dynamic length)")
    types = [v.type for v in carried] + [stacked(v.type, trip) for v in ys[1 + len(carried):]]
    op = Operation("cf.loop", [ctx.value(max_trip), ctx.value(cond), *carried], types, attrs,
                   regions=[Region([block])])
    ctx.builder.insert(op)
    return op


@converter("Loop", since=1)
def loop(ctx, node):
    g = ctx.attr(node, "body")
    n = len(node.input) - 2
    m = ctx.input_type(node, 0)
    trip = None
    if m is None:
        max_trip = ConstValue(np.array(INT64_MAX, np.int64))
    else:
        max_trip = scalar(ctx, ctx.values[node.input[0]], "i64")
        if ctx.is_const(node, 0):
            trip = int(ctx.const_input(node, 0, "trip count").reshape(-1)[0])
    cond = (scalar(ctx, ctx.values[node.input[1]], "bool") if ctx.has_input(node, 1)
            else ConstValue(np.array(True)))
    if trip is not None and not is_true(ctx, cond) and ctx.is_const(node, 1):
        trip = 0
    init = [ctx.values[node.input[2 + k]] for k in range(n)]
    if len(g.input) != 2 + n or len(g.output) < 1 + n:
        raise ctx.error(node, f"Loop body takes {len(g.input)} inputs and gives {len(g.output)} outputs; "
                              f"{n} carried values need {2 + n} and at least {1 + n}")

    def body(i, c, args):
        for name, v in zip([x.name for x in g.input], [i, c, *args]):
            ctx.values[name] = v
        outs = ctx.import_body(g, f"{ctx.node_label}/body")
        return outs[0], outs[1:1 + n], outs[1 + n:]
    label = ctx.node_label
    op = build_loop(ctx, max_trip, cond, init, body, trip, f"Loop '{label}'")
    return list(op.results)


@converter("If", since=1)
def if_(ctx, node):
    cond = ctx.values[node.input[0]]
    branches = [ctx.attr(node, "then_branch"), ctx.attr(node, "else_branch")]
    label = ctx.node_label
    if ctx.is_const(node, 0):
        # A constant predicate picks its branch at import: no control flow is left.
        taken = branches[0 if bool(ctx.const_input(node, 0, "condition").reshape(-1)[0]) else 1]
        with ctx.in_block(ctx.builder.block):
            outs = ctx.import_body(taken, f"{label}/branch")
        return outs
    regions, yields = [], []
    for name, g in zip(("then", "else"), branches):
        block = Block()
        with ctx.in_block(block):
            ys = [ctx.value(v) for v in ctx.import_body(g, f"{label}/{name}")]
            ctx.builder.create("cf.yield", ys, [])
        regions.append(Region([block]))
        yields.append([v.type for v in ys])
    if yields[0] != yields[1]:
        raise ctx.error(node, "If branches give different types (" + ", ".join(map(str, yields[0])) + " vs "
                        + ", ".join(map(str, yields[1])) + "); tilec needs static shapes")
    op = Operation("cf.if", [ctx.value(cond)], yields[0], regions=regions)
    ctx.builder.insert(op)
    return list(op.results)


@converter("Scan", since=9)
def scan(ctx, node):
    g = ctx.attr(node, "body")
    m = int(ctx.attr(node, "num_scan_inputs"))
    n = len(node.input) - m
    xs = [ctx.input(node, n + j) for j in range(m)]
    in_axes = ctx.attr(node, "scan_input_axes", None) or [0] * m
    in_dirs = ctx.attr(node, "scan_input_directions", None) or [0] * m
    in_axes = [a % x.type.rank for a, x in zip(in_axes, xs)]
    lengths = {x.type.shape[a] for x, a in zip(xs, in_axes)}
    if len(lengths) != 1:
        raise ctx.error(node, f"Scan inputs have different lengths {sorted(lengths)}")
    trip = lengths.pop()
    k = len(g.output) - n

    def body(i, c, args):
        rev = None
        bound = list(args)
        for x, a, d in zip(xs, in_axes, in_dirs):
            idx = i
            if d:
                rev = rev or ctx.emit("graph.sub", [ConstValue(np.array(trip - 1, np.int64)), i])[0]
                idx = rev
            bound.append(ctx.emit("graph.gather", [x, idx], {"axis": a})[0])
        for name, v in zip([x.name for x in g.input], bound):
            ctx.values[name] = v
        outs = ctx.import_body(g, f"{ctx.node_label}/body")
        return c, outs[:n], outs[n:]
    init = [ctx.values[node.input[j]] for j in range(n)]
    op = build_loop(ctx, ConstValue(np.array(trip, np.int64)), ConstValue(np.array(True)), init, body, trip,
                    f"Scan '{ctx.node_label}'")
    out_axes = ctx.attr(node, "scan_output_axes", None) or [0] * k
    out_dirs = ctx.attr(node, "scan_output_directions", None) or [0] * k
    results = list(op.results[:n])
    for y, a, d in zip(op.results[n:], out_axes, out_dirs):
        if d:
            y = ctx.emit("graph.gather", [y, ConstValue(np.arange(trip - 1, -1, -1, dtype=np.int64))],
                         {"axis": 0})[0]
        a %= y.type.rank
        if a:
            perm = list(range(1, a + 1)) + [0] + list(range(a + 1, y.type.rank))
            y = ctx.emit("graph.transpose", [y], {"perm": perm})[0]
        results.append(y)
    return results
