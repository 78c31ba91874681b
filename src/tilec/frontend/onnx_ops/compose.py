"""Converters that build an ONNX op from existing graph ops (no new graph op, so the reference, the
decomposition, the fusion passes and every kernel path already handle it) write through :class:`Emitter`."""
from __future__ import annotations

import numpy as np

from ...ir.types import np_dtype


class Emitter:
    """Emits graph ops for one node: a few words per op, so a converter reads like its formula."""

    def __init__(self, ctx):
        self.ctx = ctx

    def op(self, name, values, **attrs):
        """The first result of ``graph.<name>`` on ``values``."""
        return self.ctx.emit(f"graph.{name}", values, attrs)[0]

    def cast(self, v, to):
        return v if v.type.dtype == to else self.op("cast", [v], to=to)

    def const(self, value, dtype):
        return self.ctx.constant(np.asarray(value, dtype=np_dtype(dtype)))

    def reshape(self, v, shape):
        return v if tuple(v.type.shape) == tuple(shape) else self.op("reshape", [v], shape=list(shape))

    def transpose(self, v, perm):
        return v if list(perm) == list(range(len(perm))) else self.op("transpose", [v], perm=list(perm))

    def slice_last(self, v, start: int, end: int, step: int = 1):
        """``v[..., start:end:step]``."""
        axis = v.type.rank - 1
        if (start, end, step) == (0, v.type.shape[-1], 1):
            return v
        return self.op("slice", [v], starts=[start], ends=[end], axes=[axis], steps=[step])


def axis_in(ctx, node, axis: int, rank: int) -> int:
    """``axis`` of a rank-``rank`` value as a non-negative index (a scalar's only axis is 0); out of range, a
    diagnostic naming ``node``."""
    if not -rank <= axis < max(rank, 1):
        raise ctx.error(node, f"axis {axis} is out of range for rank {rank}")
    return axis % rank if rank else 0


def attr_dtype(ctx, node, code: int, what: str) -> str:
    """The IR dtype of an element-type attribute (``output_dtype``, ``to``...), or a diagnostic naming
    the node when tilec does not carry that type."""
    from ...ir import CompileError
    from ..onnx_load import ir_dtype
    try:
        return ir_dtype(int(code), what, ctx.file)
    except CompileError as e:
        raise ctx.error(node, e.diagnostic.message) from None
