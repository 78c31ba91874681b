"""Result-type rules of the graph dialect's NN family (``ir_specs/ops/graph_nn.json``): contractions,
convolutions, pooling, resize, arg/top-k.

Window arithmetic (:func:`window_out`) and einsum parsing (:func:`parse_einsum`) are shared with the
numpy references and the decomposition rules.
"""
from __future__ import annotations

from ..opspec import result_rule
from .graph_math import broadcast_shapes


def window_out(size: int, k: int, s: int, d: int, pb: int, pe: int, ceil_mode: bool = False) -> int:
    """Output length of a sliding window (conv, pool) over ``size`` input elements.

    With ``ceil_mode`` the last partial window counts, unless it would start in the end padding
    (PyTorch's and onnxruntime's rule, so no window reads only padding).
    """
    span = size + pb + pe - d * (k - 1) - 1
    if span < 0:
        raise ValueError(f"window {k} (dilation {d}) is larger than the padded input {size + pb + pe}")
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + pb:
        out -= 1
    return out


def _spatial(attrs, key, n, default):
    v = attrs.get(key)
    return list(v) if v else [default] * n


def window_params(x_shape, kernel, attrs) -> tuple:
    """``(strides, dilations, pads_begin, pads_end)`` of a conv/pool over the spatial dims of ``x_shape``."""
    n = len(x_shape) - 2
    if len(kernel) != n:
        raise ValueError(f"kernel has {len(kernel)} spatial dims; the input has {n}")
    strides = _spatial(attrs, "strides", n, 1)
    dil = _spatial(attrs, "dilations", n, 1)
    pads = _spatial(attrs, "pads", 2 * n, 0)
    if len(strides) != n or len(dil) != n or len(pads) != 2 * n:
        raise ValueError("strides, dilations and pads do not match the spatial rank")
    if any(s < 1 for s in strides) or any(d < 1 for d in dil):
        raise ValueError("strides and dilations must be positive")
    return strides, dil, pads[:n], pads[n:]


@result_rule("matmul")
def _matmul(types, attrs):
    a, b = types[0], types[1]
    if a.dtype != b.dtype:
        raise ValueError(f"operands have different element types {a.dtype} and {b.dtype}")
    if a.rank == 0 or b.rank == 0:
        raise ValueError("MatMul operands must have rank 1 or more")
    sa = a.shape if a.rank > 1 else (1,) + a.shape
    sb = b.shape if b.rank > 1 else b.shape + (1,)
    if sa[-1] != sb[-2]:
        raise ValueError(f"contraction dims differ: {list(a.shape)} @ {list(b.shape)}")
    shape = list(broadcast_shapes(sa[:-2], sb[:-2])) + [sa[-2], sb[-1]]
    if a.rank == 1:
        shape.pop(-2)
    if b.rank == 1:
        shape.pop(-1)
    return [a.with_shape(shape)]


@result_rule("gemm")
def _gemm(types, attrs):
    a, b = types[0], types[1]
    if a.rank != 2 or b.rank != 2:
        raise ValueError("Gemm operands A and B must be 2-D")
    m, k = a.shape[::-1] if attrs.get("trans_a") else a.shape
    k2, n = b.shape[::-1] if attrs.get("trans_b") else b.shape
    if k != k2:
        raise ValueError(f"contraction dims differ ({k} and {k2})")
    if len(types) > 2 and broadcast_shapes(types[2].shape, (m, n)) != (m, n):
        raise ValueError(f"C of shape {list(types[2].shape)} does not broadcast to {[m, n]}")
    return [a.with_shape((m, n))]


def parse_einsum(equation: str, ranks) -> tuple:
    """``(input_subscripts, output_subscripts)`` as lists of letters, with ``...`` expanded to upper-case
    letters not used by the equation (implicit output: letters seen once, sorted, after the ellipsis)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"equation '{equation}' has {len(terms)} inputs; the op has {len(ranks)}")
    used = set(c for c in eq if c.isalpha())
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in used]
    n_ell = max((r - len(t.replace("...", "")) for t, r in zip(terms, ranks) if "..." in t), default=0)
    ell = spare[:n_ell]
    ins = []
    for t, r in zip(terms, ranks):
        if "..." in t:
            head, _, tail = t.partition("...")
            k = r - len(head) - len(tail)
            subs = list(head) + ell[n_ell - k:] + list(tail)
        else:
            subs = list(t)
        if len(subs) != r or not all(c.isalpha() for c in subs):
            raise ValueError(f"subscripts '{t}' do not match an operand of rank {r}")
        ins.append(subs)
    if arrow:
        out = list(rhs.replace("...", "".join(ell))) if "..." in rhs else list(rhs)
    else:
        counts = {}
        for subs in ins:
            for c in subs:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, k in counts.items() if k == 1 and c not in ell)
    return ins, out


def einsum_dims(ins, types) -> dict:
    """Letter -> extent; a letter of extent 1 in one operand broadcasts against the others."""
    dims: dict = {}
    for subs, t in zip(ins, types):
        for c, d in zip(subs, t.shape):
            if dims.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(f"subscript '{c}' has extents {dims[c]} and {d}")
            if d != 1 or c not in dims:
                dims[c] = d
    return dims


@result_rule("einsum")
def _einsum(types, attrs):
    ins, out = parse_einsum(attrs["equation"], [t.rank for t in types])
    dims = einsum_dims(ins, types)
    if any(c not in dims for c in out):
        raise ValueError(f"output subscripts {''.join(out)} name a letter no input has")
    return [types[0].with_shape([dims[c] for c in out])]


@result_rule("conv")
def _conv(types, attrs):
    x, w = types[0], types[1]
    group = attrs.get("group", 1)
    if x.rank < 3 or w.rank != x.rank:
        raise ValueError(f"Conv needs input and weight of equal rank >= 3, got {x.rank} and {w.rank}")
    if x.shape[1] != w.shape[1] * group or w.shape[0] % group:
        raise ValueError(f"channels do not match: input {x.shape[1]}, weight {list(w.shape)}, group {group}")
    if len(types) > 2 and types[2].shape != (w.shape[0],):
        raise ValueError(f"bias must have shape [{w.shape[0]}]")
    s, d, pb, pe = window_params(x.shape, w.shape[2:], attrs)
    spatial = [window_out(n, k, *args) for n, k, *args in zip(x.shape[2:], w.shape[2:], s, d, pb, pe)]
    return [x.with_shape((x.shape[0], w.shape[0], *spatial))]


def conv_transpose_out(x_shape, w_shape, attrs) -> list:
    """Spatial output lengths of a transposed conv (before ``pads`` were resolved, use output_shape)."""
    s, d, pb, pe = window_params(x_shape, w_shape[2:], attrs)
    op = _spatial(attrs, "output_padding", len(s), 0)
    return [si * (n - 1) + o + (k - 1) * di + 1 - b - e
            for n, k, si, di, b, e, o in zip(x_shape[2:], w_shape[2:], s, d, pb, pe, op)]


@result_rule("conv_transpose")
def _conv_transpose(types, attrs):
    x, w = types[0], types[1]
    group = attrs.get("group", 1)
    if x.rank < 3 or w.rank != x.rank or x.shape[1] != w.shape[0]:
        raise ValueError(f"ConvTranspose weight {list(w.shape)} does not match input {list(x.shape)}")
    spatial = conv_transpose_out(x.shape, w.shape, attrs)
    if any(n < 0 for n in spatial):
        raise ValueError(f"pads give a negative output size {spatial}")
    return [x.with_shape((x.shape[0], w.shape[1] * group, *spatial))]


@result_rule("pool")
def _pool(types, attrs):
    x = types[0]
    if x.rank < 3:
        raise ValueError("pooling needs an input of rank 3 or more (N, C, spatial...)")
    kernel = attrs["kernel_shape"]
    s, d, pb, pe = window_params(x.shape, kernel, attrs)
    ceil_mode = bool(attrs.get("ceil_mode", 0))
    spatial = [window_out(n, k, *args, ceil_mode) for n, k, *args in zip(x.shape[2:], kernel, s, d, pb, pe)]
    return [x.with_shape((*x.shape[:2], *spatial))]


@result_rule("global_pool")
def _global_pool(types, attrs):
    x = types[0]
    if x.rank < 2:
        raise ValueError("global pooling needs an input of rank 2 or more")
    return [x.with_shape(x.shape[:2] + (1,) * (x.rank - 2))]


@result_rule("resize")
def _resize(types, attrs):
    x = types[0]
    sizes = attrs["sizes"]
    if len(sizes) != x.rank:
        raise ValueError(f"sizes {sizes} do not match rank {x.rank}")
    return [x.with_shape(sizes)]


@result_rule("arg_reduce")
def _arg_reduce(types, attrs):
    x = types[0]
    axis = attrs["axis"]
    if not 0 <= axis < x.rank:
        raise ValueError(f"axis {axis} is out of range for rank {x.rank}")
    shape = list(x.shape)
    if attrs.get("keepdims", 1):
        shape[axis] = 1
    else:
        shape.pop(axis)
    return [x.with_shape(shape).with_dtype("i64")]


@result_rule("top_k")
def _top_k(types, attrs):
    x = types[0]
    axis, k = attrs["axis"], attrs["k"]
    if not 0 <= axis < x.rank or not 0 <= k <= x.shape[axis]:
        raise ValueError(f"k = {k} on axis {axis} does not fit {list(x.shape)}")
    shape = list(x.shape)
    shape[axis] = k
    return [x.with_shape(shape), x.with_shape(shape).with_dtype("i64")]


@result_rule("nms_select")
def _nms_select(types, attrs):
    boxes, scores = types[0], types[1]
    if boxes.rank != 3 or boxes.shape[2] != 4:
        raise ValueError(f"boxes must be [batches, boxes, 4], not {list(boxes.shape)}")
    if scores.rank != 3 or scores.shape[0] != boxes.shape[0] or scores.shape[2] != boxes.shape[1]:
        raise ValueError(f"scores {list(scores.shape)} must be [batches, classes, boxes] for boxes "
                         f"{list(boxes.shape)}")
    if any(t.dtype != "f32" for t in types[:4]) or any(t.rank != 0 for t in types[2:4]):
        raise ValueError("boxes and scores must be f32, the two thresholds f32 scalars")
    k = attrs["max_per_class"]
    if not 0 <= k <= boxes.shape[1]:
        raise ValueError(f"max_per_class {k} must be within 0..{boxes.shape[1]} (the box count)")
    return [scores.with_shape((scores.shape[0], scores.shape[1], k)).with_dtype("i64")]


@result_rule("cum_sum")
def _cum_sum(types, attrs):
    if not 0 <= attrs["axis"] < max(types[0].rank, 1):
        raise ValueError(f"axis {attrs['axis']} is out of range for rank {types[0].rank}")
    return [types[0]]

