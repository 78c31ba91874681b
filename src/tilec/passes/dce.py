"""``dce``: dead-code elimination — pure ops whose results are unused, and weights nothing reads."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.attributes import SymbolRef
from ..ir.core import Operation
from ..ir.weights import module_weights
from .base import ModulePass

# Dialects whose value-producing ops are side-effect free.
PURE_DIALECTS = ("graph", "tile")

# Ops that must stay even when their results are unused.
SIDE_EFFECTS = {"func.return", "func.func", "tile.weight", "tile.yield", "cf.yield", "builtin.module"}


@dataclass
class DCE(ModulePass):
    """Erase ops with no used results (walking backwards so chains die at once) and unreferenced weights."""

    name = "dce"

    def apply(self, module: Operation) -> None:
        for op in list(module.walk()):
            for region in op.regions:
                for block in region.blocks:
                    for inner in reversed(list(block.ops)):
                        # Only pure value-producing ops die: kernel statements (stores, barriers) and
                        # schedule ops have no results but are the whole point of their regions.
                        if inner.name in SIDE_EFFECTS or inner.regions or not inner.results:
                            continue
                        if inner.dialect not in PURE_DIALECTS:
                            continue
                        if all(not r.uses for r in inner.results):
                            inner.erase()
        used = {op.attributes["value"].name for op in module.walk()
                if op.name == "tile.const" and isinstance(op.attributes["value"], SymbolRef)}
        weights = module_weights(module)
        for op in list(module.body.ops):
            if op.name == "tile.weight" and op.sym_name not in used:
                op.erase()
                weights.pop(op.sym_name, None)
