"""Decompositions of the graph shape family into ``tile.compute`` tensor expressions.

Data movement is an ``=`` expression whose input indices are affine (transpose, slice, expand, pad) or
quasi-affine (tile's ``%``, depth/space's ``/`` and ``%``). Piecewise maps (concat, trilu, reflect and
edge padding) select between affine reads, so every access stays analysable for Roller and Welder.
Views (reshape, flatten, squeeze, unsqueeze, identity) have no rule: the backend aliases them.
"""
from __future__ import annotations

from ...ir.dialects.graph_shape import pad_widths, slice_params
from . import axes_for, broadcast_index, decomposition
from .math_rules import lit
from .nn_rules import affine, unbare


def _idx(items) -> str:
    return ", ".join(items)


def _move(b, op, x, out_type, index, **attrs):
    """``Y[d...] = X[index]``: one read per output element."""
    axes = axes_for(out_type.rank)
    index = unbare(index, x.type.shape, dict(zip(axes, out_type.shape)))
    return b.compute(f"Y[{_idx(axes)}] = X[{_idx(index)}]", [x], out_type, origin=op.name, **attrs)


@decomposition("graph.transpose")
def _transpose(b, op, attrs):
    perm = attrs["perm"]
    index = [""] * len(perm)
    for i, p in enumerate(perm):
        index[p] = f"d{i}"
    return [_move(b, op, op.operands[0], op.result.type, index)]


def _slice_index(starts, steps):
    return [affine([(f"d{i}", st)], s) for i, (s, st) in enumerate(zip(starts, steps))]


@decomposition("graph.slice")
def _slice(b, op, attrs):
    x = op.operands[0]
    starts, steps, _ = slice_params(x.type.shape, attrs)
    return [_move(b, op, x, op.result.type, _slice_index(starts, steps))]


@decomposition("graph.split")
def _split(b, op, attrs):
    x = op.operands[0]
    axis, offset, outs = attrs["axis"], 0, []
    for r, size in zip(op.results, attrs["split"]):
        index = axes_for(x.type.rank)
        index[axis] = affine([(index[axis], 1)], offset)
        outs.append(_move(b, op, x, r.type, index))
        offset += size
    return outs


@decomposition("graph.concat")
def _concat(b, op, attrs):
    axis = attrs["axis"]
    out = op.result.type
    axes = axes_for(out.rank)
    parts = [v for v in op.operands if v.type.shape[axis] > 0]  # an empty input adds nothing
    if not parts:
        parts = [op.operands[0]]
    offsets, total = [], 0
    for v in parts:
        offsets.append(total)
        total += v.type.shape[axis]
    reads = []
    for i, off in enumerate(offsets):
        index = list(axes)
        index[axis] = affine([(axes[axis], 1)], -off)
        index = unbare(index, parts[i].type.shape, dict(zip(axes, out.shape)))
        reads.append(f"X{i}[{_idx(index)}]")
    body = reads[-1]
    for i in range(len(parts) - 2, -1, -1):
        body = f"select({axes[axis]} < {offsets[i + 1]}, {reads[i]}, {body})"
    return [b.compute(f"Y[{_idx(axes)}] = {body}", parts, out, origin=op.name)]


@decomposition("graph.expand")
def _expand(b, op, attrs):
    x, out = op.operands[0], op.result.type
    axes = axes_for(out.rank)
    index = broadcast_index(x.type.shape, axes)
    return [b.compute(f"Y[{_idx(axes)}] = X[{index}]", [x], out, origin=op.name)]


@decomposition("graph.tile")
def _tile(b, op, attrs):
    x = op.operands[0]
    index = [f"d{i}" if r == 1 else f"d{i} % {n}" for i, (n, r) in enumerate(zip(x.type.shape, attrs["repeats"]))]
    return [_move(b, op, x, op.result.type, index)]


def _pad_axis(b, op, v, axis, before, after, mode):
    """One padded axis of reflect / edge / wrap: three affine reads chosen by position."""
    n = v.type.shape[axis]
    shape = list(v.type.shape)
    shape[axis] = n + before + after
    out = v.type.with_shape(shape)
    axes = axes_for(out.rank)
    i = axes[axis]

    def read(offset, coef=1):
        index = list(axes)
        index[axis] = affine([(i, coef)], offset)
        index = unbare(index, v.type.shape, dict(zip(axes, out.shape)))
        return f"X[{_idx(index)}]"
    if mode == "reflect":
        left, right = read(before, -1), read(2 * n - 2 + before, -1)
    elif mode == "edge":
        left, right = read(0, 0), read(n - 1, 0)
    else:  # wrap
        left, right = read(n - before), read(-before - n)
    body = f"select({i} < {before}, {left}, select({i} >= {before + n}, {right}, {read(-before)}))"
    return b.compute(f"Y[{_idx(axes)}] = {body}", [v], out, origin=op.name)


@decomposition("graph.pad")
def _pad(b, op, attrs):
    x = op.operands[0]
    widths = pad_widths(x.type.rank, attrs["pads"])
    mode = attrs.get("mode", "constant")
    if mode == "constant":
        index = [affine([(f"d{i}", 1)], -p) for i, (p, _) in enumerate(widths)]
        return [_move(b, op, x, op.result.type, index, pad=float(attrs.get("value", 0.0)))]
    v = x
    for axis, (before, after) in enumerate(widths):
        if before or after:
            v = _pad_axis(b, op, v, axis, before, after, mode)
    if v is x:  # nothing to pad: still a fresh value, as the op's result
        v = _move(b, op, x, op.result.type, axes_for(x.type.rank))
    return [v]


@decomposition("graph.trilu")
def _trilu(b, op, attrs):
    x = op.operands[0]
    axes = axes_for(x.type.rank)
    i, j = axes[-2], axes[-1]
    k = int(attrs.get("k", 0))
    cond = f"{j} - {i} >= {lit(k, 'i64')}" if attrs.get("upper", 1) else f"{j} - {i} <= {lit(k, 'i64')}"
    body = f"select({cond}, X[{_idx(axes)}], {lit(0, x.type.dtype)})"
    return [b.compute(f"Y[{_idx(axes)}] = {body}", [x], op.result.type, origin=op.name)]


@decomposition("graph.depth_to_space")
def _depth_to_space(b, op, attrs):
    bs = attrs["blocksize"]
    c_out = op.result.type.shape[1]
    if attrs.get("mode", "DCR") == "DCR":
        chan = f"(d2 % {bs})*{bs * c_out} + (d3 % {bs})*{c_out} + d1"
    else:
        chan = f"d1*{bs * bs} + (d2 % {bs})*{bs} + d3 % {bs}"
    index = ["d0", chan, f"d2 / {bs}", f"d3 / {bs}"]
    return [_move(b, op, op.operands[0], op.result.type, index)]


@decomposition("graph.space_to_depth")
def _space_to_depth(b, op, attrs):
    bs = attrs["blocksize"]
    c_in = op.operands[0].type.shape[1]
    if attrs.get("mode", "DCR") == "DCR":
        # Output channel q = (bh*bs + bw)*C + c.
        c, bh, bw = f"d1 % {c_in}", f"d1 / {c_in * bs}", f"(d1 / {c_in}) % {bs}"
    else:
        # Output channel q = c*bs*bs + bh*bs + bw.
        c, bh, bw = f"d1 / {bs * bs}", f"(d1 % {bs * bs}) / {bs}", f"d1 % {bs}"
    index = ["d0", c, f"d2*{bs} + {bh}", f"d3*{bs} + {bw}"]
    return [_move(b, op, op.operands[0], op.result.type, index)]

