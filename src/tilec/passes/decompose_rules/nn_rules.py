"""Decompositions of the graph NN family into ``tile.compute`` tensor expressions.

Contractions (matmul, gemm, einsum) are one ``+=`` each, with any bias or scaling as a separate
elementwise compute so the contraction stays a pure product (what Roller tiles best). Convolution reads
the input at ``o*stride + k*dilation - pad`` with ``pad = 0.0``; groups pick the input channel with a
quasi-affine ``(f / M_g) * C_g + c``. Max pooling is ``max=`` with ``pad = -inf``; average pooling sums,
then divides by a count that depends only on shapes (a literal, or a constant tensor at the borders).
"""
from __future__ import annotations

import numpy as np

from ...ir.dialects.graph_nn import einsum_dims, parse_einsum, window_params
from ...ir.types import FLOAT_DTYPES
from . import axes_for, broadcast_index, decomposition
from .math_rules import lit


def affine(terms, const: int = 0) -> str:
    """``a*2 + b - 1`` from ``[(axis, coefficient), ...]`` and a constant, skipping zero terms."""
    parts = [(c, name if abs(c) == 1 else f"{name}*{abs(c)}") for name, c in terms if c]
    if const:
        parts.append((const, str(abs(const))))
    if not parts:
        return "0"
    text = ("-" if parts[0][0] < 0 else "") + parts[0][1]
    for c, t in parts[1:]:
        text += (" - " if c < 0 else " + ") + t
    return text


def unbare(index, in_shape, extents: dict) -> list:
    """``index`` with each bare axis whose extent differs from the input dim it reads written ``a + 0``:
    a bare axis in an access declares the axis' extent, and out-of-bounds reads must not (slices,
    padding, concat pieces)."""
    return [f"{ix} + 0" if ix in extents and extents[ix] != n else ix for ix, n in zip(index, in_shape)]


def _idx(items) -> str:
    return ", ".join(items)


def bias_add(b, y, bias, axis: int, origin: str):
    """``Z = Y + B`` with the 1-D ``bias`` broadcast along ``axis`` of ``y``."""
    axes = axes_for(y.type.rank)
    return b.compute(f"Z[{_idx(axes)}] = Y[{_idx(axes)}] + B[{axes[axis]}]", [y, bias], y.type, origin=origin)


@decomposition("graph.matmul")
def _matmul(b, op, attrs):
    a, bb = op.operands[0].type, op.operands[1].type
    out = op.result.type
    n_batch = out.rank - (a.rank > 1) - (bb.rank > 1)
    batch = axes_for(n_batch, "b")
    a_idx = ([broadcast_index(a.shape[:-2], batch)] if a.rank > 2 else []) + (["m", "k"] if a.rank > 1 else ["k"])
    b_idx = ([broadcast_index(bb.shape[:-2], batch)] if bb.rank > 2 else []) + (["k", "n"] if bb.rank > 1 else ["k"])
    y_idx = batch + (["m"] if a.rank > 1 else []) + (["n"] if bb.rank > 1 else [])
    expr = f"Y[{_idx(y_idx)}] += A[{_idx(a_idx)}] * B[{_idx(b_idx)}]"
    return [b.compute(expr, list(op.operands[:2]), out, origin=op.name)]


@decomposition("graph.gemm")
def _gemm(b, op, attrs):
    out = op.result.type
    dt = out.dtype
    a_idx = "k, m" if attrs.get("trans_a") else "m, k"
    b_idx = "n, k" if attrs.get("trans_b") else "k, n"
    alpha = attrs.get("alpha", 1.0)
    scale = "" if alpha == 1.0 else f"{lit(alpha, dt)} * "
    y = b.compute(f"Y[m, n] += {scale}A[{a_idx}] * B[{b_idx}]", list(op.operands[:2]), out, origin=op.name)
    if len(op.operands) < 3 or attrs.get("beta", 1.0) == 0.0:
        return [y]
    c = op.operands[2]
    beta = attrs.get("beta", 1.0)
    cterm = f"C[{broadcast_index(c.type.shape, ['m', 'n'])}]" if c.type.rank else "C[]"
    if beta != 1.0:
        cterm = f"{lit(beta, dt)} * {cterm}"
    return [b.compute(f"Z[m, n] = Y[m, n] + {cterm}", [y, c], out, origin=op.name)]


@decomposition("graph.einsum")
def _einsum(b, op, attrs):
    types = [v.type for v in op.operands]
    ins, out = parse_einsum(attrs["equation"], [t.rank for t in types])
    dims = einsum_dims(ins, types)
    name = {c: f"i{c}" for c in dims}
    names = [f"X{i}" for i in range(len(ins))]
    reads = []
    for nm, subs, t in zip(names, ins, types):
        # A size-1 dim against a larger extent broadcasts: always index 0.
        idx = ["0" if d == 1 and dims[c] != 1 else name[c] for c, d in zip(subs, t.shape)]
        reads.append(f"{nm}[{_idx(idx)}]")
    combiner = "+=" if set(dims) - set(out) else "="
    expr = f"Y[{_idx(name[c] for c in out)}] {combiner} {' * '.join(reads)}"
    return [b.compute(expr, list(op.operands), op.result.type, origin=op.name)]


def _window_index(o, k, s, d, p) -> str:
    return affine([(o, s), (k, d)], -p)


@decomposition("graph.conv")
def _conv(b, op, attrs):
    x, w = op.operands[0].type, op.operands[1].type
    out = op.result.type
    g = attrs.get("group", 1)
    s, d, pb, _ = window_params(x.shape, w.shape[2:], attrs)
    n_sp = x.rank - 2
    o, k = axes_for(n_sp, "o"), axes_for(n_sp, "k")
    cg, mg = w.shape[1], w.shape[0] // g
    spatial = [_window_index(oi, ki, si, di, pi) for oi, ki, si, di, pi in zip(o, k, s, d, pb)]
    spatial = unbare(spatial, x.shape[2:], dict(zip(o, out.shape[2:])))
    if g == 1:
        chan, wc = "c", "c"
    elif cg == 1:  # depthwise (and channel multipliers): one input channel per output channel
        chan, wc = ("f" if mg == 1 else f"f / {mg}"), "0"
    else:
        chan, wc = f"(f / {mg})*{cg} + c", "c"
    expr = f"Y[n, f, {_idx(o)}] += X[n, {chan}, {_idx(spatial)}] * W[f, {wc}, {_idx(k)}]"
    y = b.compute(expr, [op.operands[0], op.operands[1]], out, pad=0.0, origin=op.name)
    if len(op.operands) > 2:
        y = bias_add(b, y, op.operands[2], 1, op.name)
    return [y]


def lowest(dtype: str) -> float:
    """The identity of ``max=``: -inf for floats, the type's minimum for ints."""
    if dtype in FLOAT_DTYPES:
        return float("-inf")
    from ...ir.types import np_dtype
    return float(np.iinfo(np_dtype(dtype)).min) if dtype != "bool" else 0.0


def _pool_reads(x, out, attrs):
    kernel = attrs["kernel_shape"]
    s, d, pb, pe = window_params(x.shape, kernel, attrs)
    n_sp = x.rank - 2
    o, k = axes_for(n_sp, "o"), axes_for(n_sp, "k")
    spatial = [_window_index(oi, ki, si, di, pi) for oi, ki, si, di, pi in zip(o, k, s, d, pb)]
    spatial = unbare(spatial, x.shape[2:], dict(zip(o, out.shape[2:])))
    hints = {ki: int(kk) for ki, kk in zip(k, kernel)}
    return o, spatial, hints, (kernel, s, d, pb, pe)


@decomposition("graph.max_pool")
def _max_pool(b, op, attrs):
    x, out = op.operands[0].type, op.result.type
    o, spatial, hints, _ = _pool_reads(x, out, attrs)
    expr = f"Y[n, c, {_idx(o)}] max= X[n, c, {_idx(spatial)}]"
    return [b.compute(expr, [op.operands[0]], op.result.type, pad=lowest(x.dtype), axes=hints, origin=op.name)]


def pool_counts(x_shape, out_shape, kernel, s, d, pb, pe, include_pad: bool) -> np.ndarray:
    """Per output position, how many window taps the divisor counts: taps inside the input, plus the
    explicit padding with ``include_pad`` (never the ceil-mode overhang). Separable per spatial dim."""
    counts = np.ones((), dtype=np.int64)
    for n, o, kk, si, di, b_, e in zip(x_shape[2:], out_shape[2:], kernel, s, d, pb, pe):
        lo, hi = (-b_, n + e) if include_pad else (0, n)
        taps = np.arange(o)[:, None] * si + np.arange(kk)[None, :] * di - b_
        counts = np.multiply.outer(counts, ((taps >= lo) & (taps < hi)).sum(axis=1))
    return counts


@decomposition("graph.average_pool")
def _average_pool(b, op, attrs):
    x, out = op.operands[0].type, op.result.type
    o, spatial, hints, (kernel, s, d, pb, pe) = _pool_reads(x, out, attrs)
    total = b.compute(f"S[n, c, {_idx(o)}] += X[n, c, {_idx(spatial)}]", [op.operands[0]], out, pad=0.0,
                      axes=hints, origin=op.name)
    counts = pool_counts(x.shape, out.shape, kernel, s, d, pb, pe, bool(attrs.get("count_include_pad")))
    counts = np.maximum(counts, 1)
    if counts.size and np.all(counts == counts.flat[0]):
        expr = f"Y[n, c, {_idx(o)}] = S[n, c, {_idx(o)}] / {lit(int(counts.flat[0]), out.dtype)}"
        return [b.compute(expr, [total], out, origin=op.name)]
    # Border windows see fewer taps: divide by a constant tensor of counts over the spatial dims.
    # In the output's own dtype (f16 too: the expression must compute the result type); counts are small
    # integers, exact in every float type.
    from ...ir.types import np_dtype
    cnt = b.constant(counts.astype(np_dtype(out.dtype) if out.dtype in FLOAT_DTYPES else np.int64))
    expr = f"Y[n, c, {_idx(o)}] = S[n, c, {_idx(o)}] / N[{_idx(o)}]"
    return [b.compute(expr, [total, cnt], out, origin=op.name)]


@decomposition("graph.global_average_pool", "graph.global_max_pool")
def _global_pool(b, op, attrs):
    x, out = op.operands[0].type, op.result.type
    n_sp = x.rank - 2
    z, r = axes_for(n_sp, "z"), axes_for(n_sp, "r")
    zs = f", {_idx(z)}" if n_sp else ""
    rs = f", {_idx(r)}" if n_sp else ""
    if op.name == "graph.global_max_pool":
        return [b.compute(f"Y[n, c{zs}] max= X[n, c{rs}]", [op.operands[0]], out, origin=op.name)]
    total = b.compute(f"S[n, c{zs}] += X[n, c{rs}]", [op.operands[0]], out, origin=op.name)
    count = int(np.prod(x.shape[2:]))
    return [b.compute(f"Y[n, c{zs}] = S[n, c{zs}] / {lit(count, out.dtype)}", [total], out, origin=op.name)]


@decomposition("graph.cum_sum", "graph.cum_prod")
def _cum_sum(b, op, attrs):
    """Each output element combines (+= or *=) the inputs up to it along the axis; the others contribute
    the combiner's identity."""
    x = op.operands[0].type
    prod = op.name == "graph.cum_prod"
    axis = attrs["axis"]
    axes = axes_for(x.rank)
    read = list(axes)
    read[axis] = "r"
    cmp = {(0, 0): "<=", (1, 0): "<", (0, 1): ">=", (1, 1): ">"}[(int(bool(attrs.get("exclusive"))),
                                                                   int(bool(attrs.get("reverse"))))]
    body = f"select(r {cmp} {axes[axis]}, X[{_idx(read)}], {lit(1 if prod else 0, x.dtype)})"
    combiner = "*=" if prod else "+="
    return [b.compute(f"Y[{_idx(axes)}] {combiner} {body}", [op.operands[0]], op.result.type, origin=op.name)]

