"""``decompose``: lower graph ops to ``tile.compute`` tensor expressions (DESIGN §2).

Ops whose spec says ``lowering = "expr"`` are rewritten by their rule in ``decompose_rules``; ``view`` ops
(reshape and friends) and ``opaque`` ops stay as they are.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.builder import Builder
from ..ir.core import Operation, functions
from ..ir.diagnostics import CompileError
from ..ir.opspec import get_spec, with_defaults
from .base import ModulePass
from .decompose_rules import get_decomposition


@dataclass
class Decompose(ModulePass):
    """Rewrite every decomposable graph op into one or more ``tile.compute`` ops."""

    name = "decompose"

    def apply(self, module: Operation) -> None:
        for fn in functions(module):
            for op in list(fn.walk())[1:]:  # Loop / If bodies too
                spec = get_spec(op.name)
                if spec is None or spec.lowering != "expr" or op.dialect != "graph":
                    continue
                rule = get_decomposition(op.name)
                if rule is None:
                    continue  # stays a graph op; the backend treats it as opaque
                b = Builder(module, op.parent, before=op, loc=op.loc)
                new_values = rule(b, op, with_defaults(spec, op.attributes))
                if len(new_values) != len(op.results):
                    raise CompileError.at(f"decomposition of '{op.name}' gave {len(new_values)} values for "
                                          f"{len(op.results)} results", op.loc)
                for old, new in zip(op.results, new_values):
                    if old.type != new.type:
                        raise CompileError.at(f"decomposition of '{op.name}' changed a type: {old.type} -> "
                                              f"{new.type}", op.loc)
                    old.replace_all_uses_with(new)
                op.erase()
