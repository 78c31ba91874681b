"""Roller's alternative tiles of a lowered kernel, as kernels Rammer can choose from per wave (DESIGN §5:
"for each wave, choose each op's kernel variant: bigger or fewer tiles let independent ops fit side by side").

Rammer runs after lower-cuda, whose ``kernel.func`` keeps the op's expression and the tile it was lowered
with (``config``) but not Roller's runners-up. For a single-op tiled kernel the op is rebuilt from the
kernel (expression, param shapes and dtypes) and Roller's construction is run again on it (the same
deterministic top-k the roller pass records as ``alternatives``). The rebuilt op is trusted only when
lowering it with the kernel's own ``config`` gives back the very same body: an op whose lowering needed
something the kernel does not carry (a pad value, reduce-axis extents) fails that check and gets no variants.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...analysis.hardware import GPUSpec
from ...analysis.roller import construct_rtiles
from ...analysis.tile_problem import TileProblem
from ...ir.attributes import format_attr_dict
from ...ir.core import Block, Operation
from ...ir.types import TensorType
from ..cstyle import render_body
from . import lower_compute

TOPK = 8  # the roller pass's default top-k


@dataclass
class Variant:
    """Alternative ``index`` (1-based; 0 is the kernel as lowered) of a kernel: its tile and its kernel.
    ``kernel`` is None for a variant of ``of`` not lowered yet (:meth:`built` lowers it)."""

    index: int
    rtile: dict
    kernel: Operation | None
    of: Operation | None = None

    def built(self) -> Operation:
        """The variant's kernel, lowered now from ``of`` with ``rtile`` if it was not yet (as
        :func:`variants` lowers it)."""
        if self.kernel is None:
            self.kernel = _lowered(_rebuild(self.of), self.rtile)
        return self.kernel


def variant_key(kernel: Operation, topk: int = TOPK) -> tuple:
    """What :func:`variants` of ``kernel`` depend on but the kernel's name and location: its attributes
    (expression, tile, params, origin...) and body. The layers of a transformer give equal keys, and their
    variants differ only in location, so the caller measures one layer's and builds the others' when chosen
    (:meth:`Variant.built`)."""
    attrs = {k: v for k, v in kernel.attributes.items() if k != "sym_name"}
    return format_attr_dict(attrs), tuple(_body(kernel)), topk


def _rebuild(kernel: Operation) -> Operation | None:
    a = kernel.attributes
    if a.get("kind") != "tiled" or "expr" not in a or "config" not in a or "source" in a:
        return None
    ins = [p for p in a["params"] if p["role"] == "in"]
    outs = [p for p in a["params"] if p["role"] == "out"]
    if len(outs) != 1:
        return None
    block = Block([TensorType(tuple(p["shape"]), p["dtype"]) for p in ins])
    attrs = {"expr": a["expr"], "rtile": a["config"]}
    if "origin" in a:
        attrs["origin"] = a["origin"]
    op = Operation("tile.compute", block.args, [TensorType(tuple(outs[0]["shape"]), outs[0]["dtype"])], attrs,
                   loc=kernel.loc)
    block.append(op)
    return op


def _lowered(op: Operation, rtile: dict) -> Operation:
    """The tiled kernel of rebuilt ``op`` with tile ``rtile`` (``op`` keeps the tile)."""
    op.attributes["rtile"] = rtile
    return lower_compute(op, 0, "tiled")


def _body(kernel: Operation) -> list:
    return render_body(kernel)


def variants(kernel: Operation, spec: GPUSpec, topk: int = TOPK, rtiles: dict | None = None) -> list:
    """The Variants of ``kernel`` with a different tile than its own, in Roller's order; [] when the kernel
    is not a single tiled op or its op cannot be rebuilt faithfully. ``rtiles``, a dict kept by the caller
    across calls for one ``spec``, memoises Roller's candidates per problem: a transformer's layers ask
    for the same few (GPT-2: 49 constructions, a handful of problems)."""
    op = _rebuild(kernel)
    if op is None:
        return []
    try:
        again = lower_compute(op, 0, "tiled")
        if again.attributes["params"] != kernel.attributes["params"] or _body(again) != _body(kernel):
            return []
        problem = TileProblem.of(op)
        key = (op.attributes["expr"], tuple(problem.extents.items()), problem.input_shapes,
               problem.input_dtypes, problem.out_shape, problem.out_dtype, problem.pad, topk)
        cands = rtiles.get(key) if rtiles is not None else None
        if cands is None:
            cands = construct_rtiles(problem, spec, topk)
            if rtiles is not None:
                rtiles[key] = cands
    except Exception:  # noqa: BLE001 - an op the rebuild cannot express just has no variants
        return []
    seen, out = [_body(kernel)], []
    for c in cands:
        rtile = c.rtile.as_attr()
        try:
            k = _lowered(op, rtile)
        except Exception:  # noqa: BLE001 - a tile this kernel kind cannot take drops out
            continue
        body = _body(k)
        if body in seen:  # the kernel's own tile, or one that lowers to the same body
            continue
        seen.append(body)
        out.append(Variant(len(out) + 1, rtile, k, kernel))
    return out
