"""The numpy reference evaluator of tensor expressions: the ground truth for tile-level IR.

Floats compute in float64 and ints in int64 (:mod:`.numpy_ops`); the result is cast to the output dtype
at the end. Three strategies, fastest first:

1. a ``+=`` (or ``=``) product of accesses whose indices are all bare axes spanning their inputs exactly
   is one ``np.einsum``;
2. any other ``+=`` of a product is an einsum per chunk of the reduce iteration space, over the factors
   gathered for that chunk (a conv becomes a GEMM per chunk, with no product tensor materialised);
3. everything else evaluates the body over a broadcast grid — one dimension per output axis plus one for a
   chunk of the flattened reduce space — and reduces the chunk dimension into an accumulator.

Chunks are sized so a temporary holds about :data:`ELEMENT_BUDGET` elements.
"""
from __future__ import annotations

import math
import string

import numpy as np

from .errors import TexprError
from .nodes import Access, AxisRef, Binary, Call, Num, Unary, axes_in
from .numpy_ops import (CALLS, NP_DTYPES, binary, cast, index_binary, is_intlike, pad_for, to_output, unary,
                        widen)

ELEMENT_BUDGET = 1 << 21
_LETTERS = string.ascii_letters
_IDENTITY = {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}


def evaluate(expr, inputs, output_shape, out_dtype: str, pad: float = 0.0, hints=None) -> np.ndarray:
    """Evaluate ``expr`` on ``inputs`` (bound in ``expr.inputs`` order); out-of-bounds reads give ``pad``."""
    if out_dtype not in NP_DTYPES:
        raise TexprError(f"unknown output dtype '{out_dtype}' (expected one of {', '.join(NP_DTYPES)})", 0)
    arrays = [np.asarray(a) for a in inputs]
    if len(arrays) != len(expr.inputs):
        raise TexprError(f"expression reads {len(expr.inputs)} inputs ({', '.join(expr.inputs)}) but "
                         f"{len(arrays)} arrays were given", 0)
    out_shape = tuple(int(d) for d in output_shape)
    extents = expr.axis_extents([a.shape for a in arrays], out_shape, hints)
    tensors = {n: widen(a) for n, a in zip(expr.inputs, arrays)}
    pads = {n: pad_for(a, float(pad)) for n, a in zip(expr.inputs, arrays)}
    with np.errstate(all="ignore"):
        result = _whole_einsum(expr, tensors, extents)
        if result is None:
            result = _Grid(expr, tensors, pads, extents).run()
        if result is None:  # an empty reduce space leaves the combiner's identity, in the output's range
            result = np.full(tuple(extents[a] for a in expr.out_axes), _identity(expr.combiner, out_dtype))
    return to_output(result, out_dtype, out_shape)


def product_factors(node) -> tuple | None:
    """``(factors, coefficient)`` when ``node`` is a product (``*`` chain) with at least one non-literal
    factor; literals multiply into the coefficient. None otherwise."""
    factors, coef, stack = [], 1, [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Binary) and n.op == "*":
            stack.extend((n.rhs, n.lhs))
        elif isinstance(n, Num):
            coef = coef * n.value
        else:
            factors.append(n)
    return (factors, coef) if factors else None


def _as_operand(a):
    a = np.asarray(a)
    return a.astype(np.int64) if a.dtype.kind == "b" else a


def _whole_einsum(expr, tensors, extents):
    if expr.combiner not in (None, "sum") or len(expr.axes) > len(_LETTERS):
        return None
    prod = product_factors(expr.body)
    if prod is None or not all(isinstance(f, Access) and all(isinstance(i, AxisRef) for i in f.indices)
                               for f in prod[0]):
        return None
    for f in prod[0]:  # an input smaller or larger than an axis is read with bounds checks instead
        if any(extents[i.name] != d for i, d in zip(f.indices, tensors[f.tensor].shape)):
            return None
    letter = {ax: _LETTERS[i] for i, ax in enumerate(expr.axes)}
    subs = [''.join(letter[i.name] for i in f.indices) for f in prod[0]]
    present = set(''.join(subs))
    out = [ax for ax in expr.out_axes if letter[ax] in present]
    res = np.einsum(','.join(subs) + '->' + ''.join(letter[a] for a in out),
                    *[_as_operand(tensors[f.tensor]) for f in prod[0]], optimize=True)
    res = res.reshape([extents[a] if a in out else 1 for a in expr.out_axes])
    return res * prod[1]


class _Grid:
    """Evaluation over a broadcast grid: dim j < n_out is output axis j; the last dim (if any reduce
    axes) runs over a chunk of the flattened reduce iteration space."""

    def __init__(self, expr, tensors, pads, extents):
        self.expr, self.tensors, self.pads, self.extents = expr, tensors, pads, extents
        self.n_out = len(expr.out_axes)
        self.rank = self.n_out + (1 if expr.reduce_axes else 0)
        self.out_ext = tuple(extents[a] for a in expr.out_axes)
        self.red_ext = tuple(extents[a] for a in expr.reduce_axes)
        self.base = {}
        for j, ax in enumerate(expr.out_axes):
            shape = [1] * self.rank
            shape[j] = extents[ax]
            self.base[ax] = np.arange(extents[ax], dtype=np.int64).reshape(shape)

    def run(self):
        expr = self.expr
        if not expr.reduce_axes:
            return self.value(expr.body, dict(self.base), {})
        total = math.prod(self.red_ext)
        prod = product_factors(expr.body) if expr.combiner == "sum" else None
        out_size = max(1, math.prod(self.out_ext))
        if prod is not None:
            spans = [math.prod(self.extents[a] for a in axes_in(f) if a in expr.out_axes) for f in prod[0]]
            k = max(1, ELEMENT_BUDGET // max(spans + [1]))
        else:
            k = max(1, ELEMENT_BUDGET // out_size)
        acc = None
        for start in range(0, total, k):
            stop = min(total, start + k)
            env = dict(self.base)
            flat = np.arange(start, stop, dtype=np.int64)
            for ax, vals in zip(expr.reduce_axes, np.unravel_index(flat, self.red_ext)):
                env[ax] = vals.astype(np.int64).reshape([1] * self.n_out + [stop - start])
            if prod is not None:
                part = self._einsum_chunk(prod, env, stop - start)
            else:
                part = self._reduce_chunk(self.value(expr.body, env, {}), stop - start)
            acc = part if acc is None else _combine(expr.combiner, acc, part)
        return acc

    def _einsum_chunk(self, prod, env, k: int):
        cache: dict = {}
        ops, subs = [], []
        for f in prod[0]:
            a = _as_operand(self.value(f, env, cache))
            if a.ndim == 0:
                ops.append(a)
                subs.append("")
                continue
            keep = [d for d in range(self.rank) if a.shape[d] != 1]
            ops.append(a.reshape([a.shape[d] for d in keep]))
            subs.append(''.join(_LETTERS[d] for d in keep))
        present = set(''.join(subs))
        out = [d for d in range(self.n_out) if _LETTERS[d] in present]
        res = np.einsum(','.join(subs) + '->' + ''.join(_LETTERS[d] for d in out), *ops, optimize=True)
        res = np.asarray(res).reshape([self.out_ext[d] if d in out else 1 for d in range(self.n_out)])
        if _LETTERS[self.rank - 1] not in present:
            res = res * k  # no factor varies over the chunk: the sum is k equal terms
        return res * prod[1]

    def _reduce_chunk(self, val, k: int):
        val = np.broadcast_to(np.asarray(val), self.out_ext + (k,))
        comb = self.expr.combiner
        if comb in ("sum", "prod") and val.dtype.kind == "b":
            val = val.astype(np.int64)
        return {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}[comb](val, axis=-1)

    # --- values --------------------------------------------------------------------------------------
    def value(self, node, env: dict, cache: dict):
        if isinstance(node, Num):
            return node.value
        if isinstance(node, AxisRef):
            return env[node.name]
        if isinstance(node, Access):
            return self.load(node, env, cache)
        if isinstance(node, Unary):
            return unary(node.op, self.value(node.operand, env, cache))
        if isinstance(node, Binary):
            return binary(node.op, self.value(node.lhs, env, cache), self.value(node.rhs, env, cache))
        if isinstance(node, Call):
            if node.fn == "valid":
                return self._bounds(node.args[0], env)[1]
            args = [self.value(a, env, cache) for a in node.args]
            if node.fn in NP_DTYPES:
                return cast(args[0], node.fn)
            return CALLS[node.fn](*args)
        raise TexprError(f"cannot evaluate {node!r}", getattr(node, "pos", 0))

    def index(self, node, env: dict):
        if isinstance(node, Num):
            return node.value
        if isinstance(node, AxisRef):
            return env[node.name]
        if isinstance(node, Unary):
            return -self.index(node.operand, env)
        return index_binary(node.op, self.index(node.lhs, env), self.index(node.rhs, env))

    def _bounds(self, access, env):
        """``(clipped indices, in-bounds mask or True)`` of ``access``."""
        shape = self.tensors[access.tensor].shape
        idx, mask = [], True
        for ix, dim in zip(access.indices, shape):
            i = self.index(ix, env)
            lo, hi = (int(np.min(i)), int(np.max(i))) if np.size(i) else (0, 0)
            if lo < 0 or hi >= dim:
                mask = np.logical_and(mask, (i >= 0) & (i < dim))
                i = np.clip(i, 0, max(dim - 1, 0))
            idx.append(i)
        return idx, mask

    def load(self, access, env, cache):
        if access in cache:
            return cache[access]
        arr = self.tensors[access.tensor]
        idx, mask = self._bounds(access, env)
        pad = self.pads[access.tensor]
        if arr.size == 0:
            vals = np.full(np.broadcast_shapes(*[np.shape(i) for i in idx]), pad)
        else:
            vals = arr[tuple(idx)]
            if mask is not True:
                vals = np.where(mask, vals, pad)
        cache[access] = vals
        return vals


def _identity(comb: str, out_dtype: str):
    value = _IDENTITY[comb]
    if out_dtype == "bool":
        return {"sum": False, "prod": True, "max": False, "min": True}[comb]
    kind = NP_DTYPES[out_dtype].kind
    if kind in "iu" and math.isinf(value):
        info = np.iinfo(NP_DTYPES[out_dtype])
        return int(info.min if value < 0 else info.max)
    return value


def _combine(comb: str, acc, part):
    if comb == "sum":
        return acc + part
    if comb == "prod":
        return acc * part
    return np.maximum(acc, part) if comb == "max" else np.minimum(acc, part)


__all__ = ["ELEMENT_BUDGET", "evaluate", "product_factors", "is_intlike"]
