"""``infer-shapes``: recompute every result type from its op's result-type rule, front to back.

After ``--input-shape`` fixes the function arguments, this propagates static shapes through the body and
updates the function signature.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.core import Operation, functions
from ..ir.diagnostics import CompileError
from ..ir.opspec import get_rule, get_spec, with_defaults
from ..ir.types import FunctionType, TensorType
from .base import ModulePass


@dataclass
class InferShapes(ModulePass):
    """Propagate result types through every function using the op specs' result-type rules."""

    name = "infer-shapes"

    def apply(self, module: Operation) -> None:
        for fn in functions(module):
            self.block(fn.body)
            term = fn.body.terminator
            if term is not None and term.name == "func.return":
                old = fn.attributes["function_type"]
                fn.attributes["function_type"] = FunctionType(old.inputs, tuple(v.type for v in term.operands))

    def block(self, block) -> None:
        from ..ir.dialects.cf import refine_types
        for op in block.ops:
            if op.name in ("cf.loop", "cf.if"):
                refine_types(op, self.block)  # body argument types follow the operands
                continue
            spec = get_spec(op.name)
            if spec is None or not spec.result_type:
                continue
            types = [v.type for v in op.operands]
            if not all(isinstance(t, TensorType) and t.is_static for t in types):
                continue
            try:
                inferred = get_rule(spec.result_type)(types, with_defaults(spec, op.attributes))
            except (ValueError, IndexError, KeyError, TypeError) as e:
                raise CompileError.at(f"'{op.name}' is invalid: {e}", op.loc) from None
            for r, t in zip(op.results, inferred):
                r.type = t
