"""``TensorExpr``: one parsed ``OUT[axes] op body`` statement, its derived facts, and its well-formedness.

Spatial axes come from the output; every other axis in the body is a reduce axis, in order of first
appearance. Inputs are the distinct tensor names in order of first appearance (operand i binds input i).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from .affine import index_problem
from .dtypes import check_dtypes, node_type, resolve
from .errors import TexprError
from .functions import FREE_CALLS, FUNCTIONS
from .nodes import Access, AxisRef, Binary, Call, Unary, to_text, walk

COMBINERS = {None: "=", "sum": "+=", "max": "max=", "min": "min=", "prod": "*="}
COMBINER_OF_TOKEN = {v: k for k, v in COMBINERS.items()}
RESERVED = ("inf", "nan")


@dataclass(frozen=True)
class TensorExpr:
    """A tensor expression. Equality and hashing use ``output, out_axes, combiner, body`` only; the other
    attributes are derived from them. Construction checks well-formedness (raises :class:`TexprError`)."""

    output: str
    out_axes: tuple
    combiner: str | None
    body: object
    inputs: tuple = field(init=False, compare=False)
    reduce_axes: tuple = field(init=False, compare=False)
    axes: tuple = field(init=False, compare=False)
    accesses: tuple = field(init=False, compare=False)
    output_pos: tuple = field(default=(), compare=False, repr=False)  # offsets of output name and axes

    def __post_init__(self):
        object.__setattr__(self, "out_axes", tuple(self.out_axes))
        accesses = tuple(n for n in walk(self.body) if isinstance(n, Access))
        inputs = tuple(dict.fromkeys(a.tensor for a in accesses))
        seen = dict.fromkeys(n.name for n in walk(self.body) if isinstance(n, AxisRef))
        reduce_axes = tuple(a for a in seen if a not in self.out_axes)
        for name, value in (("accesses", accesses), ("inputs", inputs), ("reduce_axes", reduce_axes),
                            ("axes", self.out_axes + reduce_axes)):
            object.__setattr__(self, name, value)
        _check(self)

    def __str__(self) -> str:
        return f"{self.output}[{', '.join(self.out_axes)}] {COMBINERS[self.combiner]} {to_text(self.body)}"

    # --- shapes --------------------------------------------------------------------------------------
    def axis_extents(self, input_shapes, output_shape=None, hints: Mapping | None = None) -> dict:
        """``{axis: extent}`` for every axis (out axes first, then reduce axes).

        The output shape and ``hints`` fix the axes they name (they must agree); every other axis takes the
        input dim at its bare-index positions (``A[m, k]`` gives k = A.shape[1]), which must agree with each
        other. Conflicts and axes left unknown raise :class:`TexprError`."""
        shapes = [tuple(s) for s in input_shapes]
        if len(shapes) != len(self.inputs):
            raise TexprError(f"expression reads {len(self.inputs)} inputs ({', '.join(self.inputs)}) but "
                             f"{len(shapes)} shapes were given", 0)
        found: dict = {}

        def put(axis, extent, source, pos):
            if extent is None or isinstance(extent, str) or int(extent) < 0:
                return  # a dynamic dim says nothing
            extent = int(extent)
            if axis in found and found[axis][0] != extent:
                raise TexprError(f"axis '{axis}' has extent {extent} from {source} but {found[axis][0]} "
                                 f"from {found[axis][1]}", pos)
            found.setdefault(axis, (extent, source))

        if output_shape is not None:
            out = tuple(output_shape)
            if len(out) != len(self.out_axes):
                raise TexprError(f"output '{self.output}' has {len(self.out_axes)} axes but the output shape "
                                 f"{list(out)} has rank {len(out)}", 0)
            for d, (ax, extent) in enumerate(zip(self.out_axes, out)):
                put(ax, extent, f"output dim {d}", self._out_pos(d))
        for ax, extent in sorted((dict(hints or {})).items()):
            if ax not in self.axes:
                raise TexprError(f"axis hint for '{ax}', which the expression does not use "
                                 f"(axes: {', '.join(self.axes)})", 0)
            try:
                extent = int(extent)
            except (TypeError, ValueError, OverflowError):  # hints come from IR text: any value can arrive
                raise TexprError(f"axis hint for '{ax}' must be an integer, not {extent!r}", 0) from None
            put(ax, extent, "the axis hints", 0)
        # The output shape and hints are authoritative: an input smaller along such an axis reads pad
        # past its end (concat, pad), a larger one is read in part (slice).
        fixed = set(found)
        for acc in self.accesses:
            shape = shapes[self.inputs.index(acc.tensor)]
            if len(shape) != len(acc.indices):
                raise TexprError(f"'{acc.tensor}' has rank {len(shape)} but is indexed with "
                                 f"{len(acc.indices)} indices", acc.pos)
            for d, ix in enumerate(acc.indices):
                if isinstance(ix, AxisRef) and ix.name not in fixed:
                    put(ix.name, shape[d], f"{acc.tensor} dim {d}", ix.pos)
        missing = [a for a in self.axes if a not in found]
        if missing:
            pos = next((n.pos for n in walk(self.body) if isinstance(n, AxisRef) and n.name == missing[0]), 0)
            raise TexprError(f"cannot infer the extent of axis {', '.join(repr(m) for m in missing)}: it is "
                             "never a bare index of an input or the output; give it in the 'axes' hints", pos)
        return {a: found[a][0] for a in self.axes}

    def _out_pos(self, d: int):
        return self.output_pos[d + 1] if len(self.output_pos) > d + 1 else 0

    # --- types and cost ------------------------------------------------------------------------------
    def result_dtype(self, input_dtypes) -> str:
        """The dtype the body computes, given the inputs' dtypes (in input order)."""
        env = check_dtypes(self.inputs, input_dtypes)
        return resolve(node_type(self.body, env))

    def flops(self, extents: Mapping) -> int:
        """Arithmetic operations per point of the iteration space (operators and calls, casts and
        ``valid`` free, index arithmetic free, +1 for the combiner) times the iteration-space size."""
        per_point = 0
        for n in walk(self.body, into_indices=False):
            if isinstance(n, Call):
                per_point += 0 if n.fn in FREE_CALLS else 1
            elif isinstance(n, (Unary, Binary)):
                per_point += 1
        per_point += 1 if self.combiner else 0
        missing = [a for a in self.axes if a not in extents]
        if missing:
            raise TexprError(f"flops: no extent for axis {', '.join(missing)}", 0)
        return per_point * math.prod(int(extents[a]) for a in self.axes)


def _check(e: TensorExpr) -> None:
    """Well-formedness: names, arities, index forms, combiner vs reduce axes."""
    if e.combiner not in COMBINERS:
        raise TexprError(f"unknown combiner {e.combiner!r}", 0)
    for i, ax in enumerate(e.out_axes):
        if ax in e.out_axes[:i]:
            raise TexprError(f"output axis '{ax}' appears twice", e._out_pos(i))
        if ax in RESERVED:
            raise TexprError(f"'{ax}' is reserved and cannot name an axis", e._out_pos(i))
    tensors = set(e.inputs)
    if e.output in tensors:
        acc = next(a for a in e.accesses if a.tensor == e.output)
        raise TexprError(f"the output '{e.output}' is also read in the body", acc.pos)
    for ax in e.out_axes:
        if ax in tensors or ax == e.output:
            raise TexprError(f"'{ax}' names both an axis and a tensor", e._out_pos(e.out_axes.index(ax)))
    ranks: dict = {}
    for acc in e.accesses:
        if ranks.setdefault(acc.tensor, len(acc.indices)) != len(acc.indices):
            raise TexprError(f"'{acc.tensor}' is indexed with {len(acc.indices)} indices here but "
                             f"{ranks[acc.tensor]} elsewhere", acc.pos)
    for n in walk(e.body):
        if isinstance(n, AxisRef) and (n.name in tensors or n.name == e.output):
            raise TexprError(f"'{n.name}' names both an axis and a tensor", n.pos)
        if isinstance(n, Call):
            if n.fn not in FUNCTIONS:
                raise TexprError(f"unknown function '{n.fn}'", n.pos)
            arity = FUNCTIONS[n.fn][0]
            if len(n.args) != arity:
                raise TexprError(f"'{n.fn}' takes {arity} argument{'s' if arity > 1 else ''}, "
                                 f"got {len(n.args)}", n.pos)
            if n.fn == "valid" and not isinstance(n.args[0], Access):
                raise TexprError("'valid' takes an access like X[i, j]", n.pos)
        if isinstance(n, Access):
            for ix in n.indices:
                bad = index_problem(ix)
                if bad:
                    raise TexprError(bad[0], bad[1].pos if bad[1].pos is not None else n.pos)
    if e.combiner is None and e.reduce_axes:
        ax = e.reduce_axes[0]
        pos = next(n.pos for n in walk(e.body) if isinstance(n, AxisRef) and n.name == ax)
        raise TexprError(f"axis '{ax}' is not an output axis, so it is reduced, but '=' has no combiner "
                         "(use +=, max=, min= or *=)", pos)
