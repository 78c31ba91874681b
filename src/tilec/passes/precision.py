"""``precision``: compute the module's contractions in its precision mode (issue #17, ``ir/precision.py``).

Runs after ``decompose`` (every MatMul, Gemm, Conv and Einsum is then one ``+=`` product ``tile.compute``, so
attention's two products and the MLP chains are reached too) when the module asks for a precision
(``tilec.precision``, set by ``tilec compile --precision``). For ``fp16``/``bf16`` each f32 contraction
becomes ``cast(inputs -> T)``, the same product in ``T`` (lowered with f32 accumulators, as an f16 model's
is), ``cast(result -> f32)``. A constant operand (a weight) is cast here, once, at compile time. An input
that is itself ``f32(x)`` of a ``T`` value reads ``x`` (the round trip is exact); one that only this contraction
reads through data movement (a view such as Reshape, or a copy such as Transpose) has the cast moved before
the movement, which then moves ``T`` values: the cast joins the producer's epilogue instead of making a
kernel after the movement that ends it, and ``f32(x)`` under it vanishes by the rule before. ConvTranspose, a host op,
gets the same casts around it. For ``tf32`` the contraction keeps its f32 types and is marked
``precision = "tf32"``: the sm_80+ tensor-core engine runs it as mma.sync m16n8k8 tf32 (``lower/mma_tf32``);
a kernel without that path computes it in f32, which is more exact. ``fp32`` changes nothing. Everything else (softmax, norms, reductions, bias adds and the model's
inputs and outputs) keeps its types.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.attributes import SymbolRef
from ..ir.builder import Builder
from ..ir.core import Operation, Value, functions
from ..ir.opspec import is_view
from ..ir.precision import PRECISIONS, check_precision, module_precision
from ..ir.texpr import Access, parse_texpr
from ..ir.texpr.evaluate import product_factors
from ..ir.types import np_dtype
from ..runtime.interpreter import run_op
from .base import ModulePass
from .tf32_layout import k_major_weight

# The graph ops whose decomposition is a contraction (origin of the ``+=`` product compute).
CONTRACTIONS = frozenset({"graph.matmul", "graph.gemm", "graph.conv", "graph.einsum"})
HOST_CONTRACTIONS = frozenset({"graph.conv_transpose"})   # stays a graph op (a host op on the device path)


def is_contraction(op: Operation) -> bool:
    """Whether ``op`` is a decomposed contraction: a ``+=`` product of two or more inputs from one of
    :data:`CONTRACTIONS` (a ReduceSum or a norm's statistics are not)."""
    if op.name != "tile.compute" or op.attributes.get("origin") not in CONTRACTIONS:
        return False
    expr = parse_texpr(str(op.attributes["expr"]))
    factors = product_factors(expr.body) if expr.combiner == "sum" else None
    return factors is not None and sum(isinstance(f, Access) for f in factors[0]) >= 2


def is_movement(op: Operation | None) -> bool:
    """Whether ``op`` only moves its first operand's values (a view, or a ``tile.compute`` whose body is one
    access of its only input: transpose, slice, broadcast), so a cast commutes with it."""
    if op is None or len(op.results) != 1:
        return False
    if is_view(op):
        return all(v.type.dtype not in ("f16", "bf16", "f32", "f64") for v in op.operands[1:])
    if op.name != "tile.compute" or len(op.operands) != 1:
        return False
    expr = parse_texpr(str(op.attributes["expr"]))
    return expr.combiner is None and isinstance(expr.body, Access)


def cast_expr(rank: int, dtype: str) -> str:
    """The elementwise cast ``Y[d0, ..] = dtype(X0[d0, ..])`` (``decompose``'s spelling of graph.cast)."""
    axes = ", ".join(f"d{i}" for i in range(rank))
    return f"Y[{axes}] = {dtype}(X0[{axes}])"


@dataclass
class Precision(ModulePass):
    """Cast f32 contractions to the module's precision mode (fp16/bf16) or mark them tf32."""

    name = "precision"
    precision: str = ""   # empty: the module's mode (tilec.precision); none there: nothing changes

    def apply(self, module: Operation) -> None:
        mode = check_precision(self.precision) if self.precision else module_precision(module)
        if mode is None or mode == "fp32":
            return
        self.module, self.dtype = module, PRECISIONS[mode]
        self.casts: dict = {}   # (value, block) -> its cast to self.dtype, made in that block
        for fn in functions(module):
            for op in list(fn.walk())[1:]:   # Loop / If bodies too
                if not self._applies(op):
                    continue
                if mode == "tf32":   # a host op (ConvTranspose) computes in f32 on the CPU: nothing to mark
                    if op.name == "tile.compute":
                        op.attributes["precision"] = "tf32"
                        k_major_weight(module, op)   # sm_90: a [k][n] weight stored [n][k] for wgmma
                else:
                    self._lower(op)

    def _applies(self, op: Operation) -> bool:
        if op.name not in HOST_CONTRACTIONS and not is_contraction(op):
            return False
        return all(v.type.dtype == "f32" for v in list(op.operands) + list(op.results))

    def _lower(self, op: Operation) -> None:
        """``op`` in ``self.dtype`` between casts; its result is f32 again for every user."""
        b = Builder(self.module, op.parent, before=op, loc=op.loc)
        operands = [self._cast_in(b, v, op) for v in op.operands]
        new = b.create(op.name, operands, [r.type.with_dtype(self.dtype) for r in op.results],
                       dict(op.attributes))
        for old, r in zip(op.results, new.results):
            old.replace_all_uses_with(b.compute(cast_expr(r.type.rank, "f32"), [r], old.type,
                                                origin="graph.cast"))
        op.erase()

    def _cast_in(self, b: Builder, v: Value, op: Operation) -> Value:
        key = (id(v), id(b.block))   # one cast per value and block it is made in (Loop bodies have their own)
        if key not in self.casts:
            self.casts[key] = self._cast_value(b, v, op)
        return self.casts[key]

    def _cast_value(self, b: Builder, v: Value, reader: Operation) -> Value:
        """``v`` in ``self.dtype``, for ``reader`` (an op about to be replaced)."""
        src = v.defining_op
        if src is not None and src.name == "tile.const":
            # A weight is cast once, here, with numpy's round-to-nearest-even (as cvt.rn on the device).
            array = np.asarray(run_op(self.module, src, [], {})[0]).astype(np_dtype(self.dtype))
            value = src.attributes["value"]
            name = f"{value.name}_{self.dtype}" if isinstance(value, SymbolRef) else None
            return b.constant(array, name)
        if (src is not None and src.name == "tile.compute" and src.operands
                and src.operands[0].type.dtype == self.dtype
                and src.attributes.get("expr") == cast_expr(v.type.rank, "f32")):
            return src.operands[0]   # f32(x) of a value already in the type: x itself
        if is_movement(src) and all(u is reader for u, _ in v.uses) and src.operands[0].type.dtype == "f32":
            # Only the reader reads it: move the T values instead (the f32 movement dies in dce).
            moved = self._cast_in(b, src.operands[0], src)
            return b.create(src.name, [moved, *src.operands[1:]], [v.type.with_dtype(self.dtype)],
                            dict(src.attributes)).results[0]
        return b.compute(cast_expr(v.type.rank, self.dtype), [v], v.type.with_dtype(self.dtype),
                         origin="graph.cast")
