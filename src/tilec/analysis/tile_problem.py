"""A ``tile.compute`` op seen as a tiling problem: axes with extents, inputs with shapes and dtypes, and
the access maps that say which input box a tile of the iteration space touches."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ..ir.types import itemsize


@dataclass(frozen=True)
class TileProblem:
    """The iteration space of one tensor expression and what it reads and writes."""

    expr: object                 # tilec.ir.texpr.TensorExpr
    extents: dict                # axis -> extent (out axes first, then reduce axes)
    input_shapes: tuple
    input_dtypes: tuple
    out_shape: tuple
    out_dtype: str
    pad: float = 0.0
    precision: str | None = None   # "tf32": an f32 product the precision pass lets tensor cores compute

    @staticmethod
    def of(op) -> "TileProblem":
        from ..ir.texpr import parse_texpr
        expr = parse_texpr(op.attributes["expr"])
        shapes = tuple(tuple(v.type.shape) for v in op.operands)
        out = op.result.type
        extents = expr.axis_extents(list(shapes), out.shape, op.attributes.get("axes"))
        return TileProblem(expr, dict(extents), shapes, tuple(v.type.dtype for v in op.operands),
                           tuple(out.shape), out.dtype, float(op.attributes.get("pad", 0.0)),
                           op.attributes.get("precision"))

    @property
    def out_axes(self) -> tuple:
        return tuple(self.expr.out_axes)

    @property
    def reduce_axes(self) -> tuple:
        return tuple(self.expr.reduce_axes)

    @cached_property
    def flops(self) -> int:
        return int(self.expr.flops(self.extents))

    @cached_property
    def kind(self) -> str:
        from .index_map import classify
        return classify(self.expr)

    @property
    def out_itemsize(self) -> int:
        return itemsize(self.out_dtype)

    def input_index(self, access) -> int:
        return list(self.expr.inputs).index(access.tensor)

    @cached_property
    def staged_accesses(self) -> tuple:
        """One access per distinct input tensor (the first), the ones a tiled kernel stages in smem."""
        seen, out = set(), []
        for acc in self.expr.accesses:
            if acc.tensor not in seen:
                seen.add(acc.tensor)
                out.append(acc)
        return tuple(out)

    @cached_property
    def memo(self) -> dict:
        """A cache for cost-model results keyed by tile: the problem never changes, and Roller asks for the
        same block/step traffic once per thread-tile candidate."""
        return {}
