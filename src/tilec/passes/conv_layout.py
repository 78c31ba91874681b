"""``conv-layout``: give the tensor-core convolutions a channels-last (NHWC) contraction (issue #17).

The sm_80 engine computes a convolution as an implicit GEMM (``backend/lower/mma_conv.py``): M = output
channels, N = batch x output pixels, K = R x S x C. Its ``cp.async`` copies move 16-byte chunks of K, 8
consecutive f16/bf16 (4 f32 under tf32) of one pixel's window row. In NCHW those elements are H x W apart,
and along the contiguous width axis a padded window's taps start at odd addresses, so no chunk is possible:
the contraction reads the input channels-last instead. For each 2-D, ungrouped f16/bf16 convolution (f32
marked ``precision = "tf32"``) on an sm_80+ target with C a multiple of the chunk and at least 16 output
channels, this pass rewrites

    Y[n, f, o0, o1] += X[n, c, o0*s0 + k0*d0 - p0, ..] * W[f, c, k0, k1]

into a transpose ``T[n, h, w, c] = X[n, c, h, w]`` (one elementwise kernel, or the producer's epilogue when
Welder fuses it) and ``Y[n, f, o0, o1] += T[n, o0*s0 + k0*d0 - p0, .., c] * V[f, k0, k1, c]``, where V is the
weight re-laid out once at compile time (a runtime transpose when the weight is an input). The result keeps
its NCHW layout and axes, so bias, BN and ReLU still fuse into the conv's epilogue. Depthwise, grouped, 1-D/3-D
and narrow convolutions, and every f32 one, are left alone: an f32 build is byte for byte the same.

The driver runs the pass right after ``decompose`` (and ``precision``) only when the module has a
convolution in f16/bf16 or asks for ``fp16``/``bf16``/``tf32``, so other builds keep their pass list.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..analysis.conv_form import ConvForm, conv_form
from ..analysis.engine_shape import chunk_of, sm_version
from ..analysis.hardware import get_arch, module_arch
from ..ir.attributes import SymbolRef
from ..ir.builder import Builder
from ..ir.core import Operation, functions
from ..ir.texpr import Access, parse_texpr
from ..ir.texpr.evaluate import product_factors
from ..ir.texpr.nodes import to_text
from ..runtime.interpreter import run_op
from .base import ModulePass

MIN_OUT_CHANNELS = 16   # one mma tile's M: narrower convs (a stem's 3 channels out) waste most of it
TENSOR_CORE_DTYPES = ("f16", "bf16")


def eligible(op: Operation) -> ConvForm | None:
    """The NCHW form of ``op`` when the pass rewrites it (see the module docstring)."""
    if op.name != "tile.compute" or op.attributes.get("origin") != "graph.conv":
        return None
    dtypes = {v.type.dtype for v in list(op.operands) + list(op.results)}
    tf32 = op.attributes.get("precision") == "tf32" and dtypes == {"f32"}
    if len(op.operands) != 2 or not (tf32 or (len(dtypes) == 1 and dtypes <= set(TENSOR_CORE_DTYPES))):
        return None
    if sm_version(get_arch(module_arch(op))) < 80:
        return None
    expr = parse_texpr(str(op.attributes["expr"]))
    form = conv_form(expr)
    if form is None or form.nhwc:
        return None
    shapes = {a.tensor: tuple(v.type.shape) for a, v in zip(_accesses(expr), op.operands)}
    c, f = shapes[form.w.tensor][1], shapes[form.w.tensor][0]
    if c % chunk_of(op.operands[0].type.dtype) or f < MIN_OUT_CHANNELS:
        return None
    return form


def _accesses(expr) -> list:
    """The expression's input accesses in operand order (``expr.inputs``)."""
    pf = product_factors(expr.body)
    by_name = {a.tensor: a for a in pf[0]}
    return [by_name[t] for t in expr.inputs]


@dataclass
class ConvLayout(ModulePass):
    """Rewrite tensor-core convolutions to read a channels-last input and weight."""

    name = "conv-layout"

    def apply(self, module: Operation) -> None:
        self.module = module
        for fn in functions(module):
            for op in list(fn.walk())[1:]:
                form = eligible(op)
                if form is not None:
                    self._rewrite(op, form)

    def _rewrite(self, op: Operation, form: ConvForm) -> None:
        expr = parse_texpr(str(op.attributes["expr"]))
        x_val, w_val = (op.operands[list(expr.inputs).index(a.tensor)] for a in (form.x, form.w))
        b = Builder(self.module, op.parent, before=op, loc=op.loc)
        xt = b.compute("T[n, h, w, c] = X[n, c, h, w]", [x_val], _nhwc(x_val.type), origin="graph.transpose")
        wt = self._weight(b, w_val)
        xi, wi = [to_text(i) for i in form.x.indices], [to_text(i) for i in form.w.indices]
        out = ", ".join(expr.out_axes)
        text = (f"{expr.output}[{out}] += X[{xi[0]}, {xi[2]}, {xi[3]}, {xi[1]}] * "
                f"W[{wi[0]}, {wi[2]}, {wi[3]}, {wi[1]}]")
        new = b.create(op.name, [xt, wt], [r.type for r in op.results], dict(op.attributes, expr=text))
        op.results[0].replace_all_uses_with(new.results[0])
        op.erase()

    def _weight(self, b: Builder, w):
        """The weight as [F, R, S, C]: re-laid out now when it is a constant, else a transpose kernel."""
        src = w.defining_op
        if src is not None and src.name == "tile.const":
            array = np.ascontiguousarray(np.asarray(run_op(self.module, src, [], {})[0]).transpose(0, 2, 3, 1))
            value = src.attributes["value"]
            return b.constant(array, f"{value.name}_nhwc" if isinstance(value, SymbolRef) else None)
        return b.compute("V[f, r, s, c] = W[f, c, r, s]", [w], _nhwc(w.type), origin="graph.transpose")


def _nhwc(ty):
    n, c, h, w = ty.shape
    return ty.with_shape((n, h, w, c))


def wanted(module: Operation, precision: str | None) -> bool:
    """Whether the driver runs the pass on ``module`` (just imported): an sm_80+ target, and a precision mode
    with tensor-core convolutions or a convolution that is f16/bf16 already."""
    if sm_version(get_arch(module_arch(module))) < 80:
        return False
    if precision in ("tf32", "fp16", "bf16"):
        return True
    return any(op.name == "graph.conv" and op.operands and op.operands[0].type.dtype in TENSOR_CORE_DTYPES
               for op in module.walk())
