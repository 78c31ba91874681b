"""Register-level fused kernels (welder ``kind = "epilogue"``): the anchor op (the first member of a
``tile.kernel``) is lowered by its own kernel kind (elementwise, reduce or tiled), and every other member, an
elementwise op of the anchor's shape, is evaluated in the anchor's store epilogue at the same output
coordinates. Internal values live in registers (``k_f<i>`` locals); only the kernel's outputs are stored.

Kernel params are ``in<i>`` for the ``tile.kernel`` operands and ``out<j>`` for its results."""
from __future__ import annotations

import math

from ...ir.types import itemsize
from ..cstyle import compute_dtype
from .context import ComputeContext


def kernel_parts(kernel) -> tuple:
    """``(member computes, block args, yielded values)`` of a ``tile.kernel``."""
    body = kernel.regions[0].block
    members = [op for op in body.ops if op.name == "tile.compute"]
    return members, list(body.args), list(body.terminator.operands)


def kernel_params(kernel) -> list:
    _, args, outs = kernel_parts(kernel)
    params = [{"name": f"in{i}", "dtype": a.type.dtype, "role": "in", "shape": list(a.type.shape)}
              for i, a in enumerate(args)]
    params += [{"name": f"out{j}", "dtype": v.type.dtype, "role": "out", "shape": list(v.type.shape)}
               for j, v in enumerate(outs)]
    return params


def bind_names(ctx: ComputeContext, op, args: list) -> None:
    """Point ``ctx``'s texpr inputs that read kernel operands at their ``in<i>`` params."""
    for t, v in zip(ctx.expr.inputs, op.operands):
        for i, a in enumerate(args):
            if v is a:
                ctx.names[t] = f"in{i}"


class FusedContext(ComputeContext):
    """The anchor's context, with the kernel's params and an epilogue that evaluates the other members."""

    fused = True

    def __init__(self, kernel):
        self.members, self.args, self.outs = kernel_parts(kernel)
        super().__init__(self.members[0])
        self.kernel = kernel
        bind_names(self, self.members[0], self.args)
        self.tails = []
        for m in self.members[1:]:
            mctx = ComputeContext(m)
            bind_names(mctx, m, self.args)
            self.tails.append(mctx)
        self.out_name = "out_unused"

    def params(self) -> list:
        return kernel_params(self.kernel)

    def store_result(self, kb, index: str, value: str, pred: str | None = None) -> None:
        with kb.cond(pred or ""):
            kb.let("k_f0", self.acc_dtype, value)
            vals = {id(self.members[0].result): "k_f0"}
            for i, (m, mctx) in enumerate(zip(self.members[1:], self.tails), start=1):
                axis = self._axis_names(mctx)
                names = {}
                for j, acc in enumerate(mctx.distinct_accesses()):
                    v = m.operands[mctx.input_of(acc)]
                    if id(v) in vals:
                        names[mctx.access_key(acc)] = vals[id(v)]
                    else:
                        names[mctx.access_key(acc)] = f"k_f{i}_{j}"
                        mctx.load_access(kb, acc, f"k_f{i}_{j}", axis)
                body = mctx.renderer(lambda a, n=names, c=mctx: n[c.access_key(a)], axis)(mctx.expr.body)
                kb.let(f"k_f{i}", compute_dtype(m.result.type.dtype), body)
                vals[id(m.result)] = f"k_f{i}"
            for j, v in enumerate(self.outs):
                kb.store(f"out{j}", index, vals[id(v)])

    def _axis_names(self, mctx: ComputeContext):
        """A member's axes are the anchor's output axes, position by position."""
        table = {a: self.axis_var(b) for a, b in zip(mctx.out_axes, self.out_axes)}
        return lambda a: table[a]

    def epilogue_bytes(self) -> int:
        """Global bytes the epilogue adds: each member's outside loads once per element, plus the stores;
        the anchor's own output store is replaced by them."""
        points = math.prod(self.out_shape)
        total = -self.out_bytes()
        for m, mctx in zip(self.members[1:], self.tails):
            for acc in mctx.distinct_accesses():
                v = m.operands[mctx.input_of(acc)]
                if any(v is a for a in self.args):
                    total += points * itemsize(v.type.dtype)
        for v in self.outs:
            total += math.prod(v.type.shape) * itemsize(v.type.dtype)
        return total


def lower_fused(kernel, name: str, kind: str | None = None):
    """The ``kernel.func`` of a register-level ``tile.kernel``."""
    from . import choose_kind
    from .elementwise import lower_elementwise
    from .reduce import lower_reduce
    from .tiled import lower_tiled
    ctx = FusedContext(kernel)
    kind = kind or choose_kind(ctx)
    if kind == "elementwise":
        func = lower_elementwise(ctx, name)
    elif kind == "tiled":
        func = lower_tiled(ctx, name, ctx.members[0].attributes.get("rtile"))
    else:
        func = lower_reduce(ctx, name)
    func.attributes["bytes_modelled"] = int(func.attributes["bytes_modelled"]) + ctx.epilogue_bytes()
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in ctx.members)
    return func
