"""A tf32 product's [k][n] weight, re-laid out [n][k] once at compile time for sm_90's wgmma (issue #21).

``wgmma.mma_async`` tf32 (m64nNk8) reads both operands K-major from shared memory: it has no transposed form
for 32-bit types, so a MatMul ``C[m, n] += A[m, k] * W[k, n]`` marked ``precision = "tf32"`` would keep
mma.sync on an sm_90 target. When W is a constant (a weight) the ``precision`` pass calls :func:`k_major_weight`,
which stores W transposed in its last two dims and rewrites the product to read ``W[n, k]``, as
``conv-layout`` does for convolution weights; the wgmma engine then runs it (``analysis/wgmma_shape.applies``).
A non-constant [k][n] operand, A stored [k][m], and every other target are left alone (sm_80's mma.sync path
reads [k][n] fragments directly), so their builds do not change.
"""
from __future__ import annotations

import numpy as np

from ..analysis.engine_shape import sm_version
from ..analysis.hardware import get_arch, module_arch
from ..analysis.mma_tile import match_expr
from ..analysis.wgmma_shape import applies
from ..ir.attributes import SymbolRef
from ..ir.builder import Builder
from ..ir.core import Operation
from ..ir.texpr import parse_texpr
from ..ir.texpr.evaluate import product_factors
from ..ir.texpr.nodes import Access, to_text
from ..runtime.interpreter import run_op


def k_major_weight(module: Operation, op: Operation) -> Operation:
    """``op`` (a ``tile.compute`` marked tf32) reading its constant [k][n] operand as [n][k] where that lets
    the wgmma engine run it on ``module``'s sm_90 target; the new op, or ``op`` unchanged."""
    spec = get_arch(module_arch(op))
    if sm_version(spec) != 90:
        return op
    expr = parse_texpr(str(op.attributes["expr"]))
    dtypes = [v.type.dtype for v in op.operands]
    mt = match_expr(expr, dtypes, op.results[0].type.dtype, op.attributes.get("precision"),
                    [tuple(v.type.shape) for v in op.operands], tuple(op.results[0].type.shape))
    if mt is None or mt["dtype"] != "f32" or mt["b_nmajor"] or mt["a_kmajor"]:
        return op   # not tf32, or B already K-major, or A m-contiguous (wgmma tf32 cannot read it either)
    w = op.operands[list(expr.inputs).index(mt["b"].tensor)]
    src = w.defining_op
    if src is None or src.name != "tile.const" or sum(v is w for v in op.operands) != 1:
        return op
    extents = expr.axis_extents([tuple(v.type.shape) for v in op.operands], tuple(op.results[0].type.shape))
    if not applies(spec, dict(mt, b_nmajor=True), extents, "f32"):
        return op   # K not whole 16-byte chunks: TMA could not read the transposed rows
    b = Builder(module, op.parent, before=op, loc=op.loc)
    array = np.asarray(run_op(module, src, [], {})[0])
    value = src.attributes["value"]
    wt = b.constant(np.ascontiguousarray(np.swapaxes(array, -1, -2)),
                    f"{value.name}_kmajor" if isinstance(value, SymbolRef) else None)
    swapped = Access(mt["b"].tensor, mt["b"].indices[:-2] + mt["b"].indices[-1:] + mt["b"].indices[-2:-1])
    factors = [swapped if f.tensor == mt["b"].tensor else f for f in product_factors(expr.body)[0]]
    text = f"{expr.output}[{', '.join(expr.out_axes)}] += " + " * ".join(to_text(f) for f in factors)
    assert parse_texpr(text).inputs == expr.inputs   # operand order unchanged
    operands = [wt if v is w else v for v in op.operands]
    new = b.create(op.name, operands, [r.type for r in op.results], dict(op.attributes, expr=text))
    op.results[0].replace_all_uses_with(new.results[0])
    op.erase()
    return new
