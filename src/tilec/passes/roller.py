"""``roller``: attach an rTile config to every ``tile.compute`` (Roller, OSDI'22; DESIGN §3).

The chosen config goes in ``rtile``, the model's estimate in ``estimate``, and the other top-k configs in
``alternatives``, so dumps show what Roller decided and why. ``lower-cuda`` honours ``rtile``.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..analysis.hardware import target_spec
from ..analysis.roller import construct_rtiles
from ..analysis.tile_problem import TileProblem
from ..ir.core import Operation
from .base import ModulePass


@dataclass
class Roller(ModulePass):
    """Construct rTile configs for every tile.compute from the hardware spec (no search)."""

    name = "roller"
    arch: str = ""   # empty: the module's target (tilec.target)
    topk: int = 8

    def apply(self, module: Operation) -> None:
        spec = target_spec(module, self.arch)
        # Models repeat layers: the same problem (expression, shapes, dtypes) gets the same construction, so
        # it is built once per run (12-layer BERT: 506 ops, 43 distinct problems).
        built: dict = {}
        for op in module.walk():
            if op.name != "tile.compute":
                continue
            problem = TileProblem.of(op)
            key = (op.attributes["expr"], tuple(problem.extents.items()), problem.input_shapes,
                   problem.input_dtypes, problem.out_shape, problem.out_dtype, problem.pad)
            if key not in built:
                built[key] = construct_rtiles(problem, spec, max(1, self.topk))
            cands = built[key]
            if not cands:
                continue
            best = cands[0]
            # An engine tile's stage count is part of it (the estimate's shared memory is all of its stages).
            stages = {"stages": best.est.stages} if best.est.stages else {}
            op.attributes["rtile"] = dict(best.rtile.as_attr(), **stages)
            op.attributes["estimate"] = dict(best.est.as_attr(), arch=spec.arch)
            op.attributes["alternatives"] = [dict(c.rtile.as_attr(), seconds=float(f"{c.est.seconds:.6g}"))
                                             for c in cands[1:]]
