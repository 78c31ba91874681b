"""``canonicalize``: local simplifications, written as a table of (op name, rewrite) rules run to a fixpoint.

Each rule returns replacement values for the op's results, or None when it does not apply (tinygrad's
PatternMatcher style: one driver, many small rules).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.core import Operation, functions
from ..ir.opspec import get_spec
from .base import ModulePass


def _forward_identity(op: Operation):
    """A view (reshape, squeeze, identity, …) that does not change the type is its operand."""
    if op.operands and len(op.results) == 1 and op.operands[0].type == op.result.type:
        return [op.operands[0]]
    return None


def _collapse_views(op: Operation):
    """view(view(x)) → one reshape of x: views are metadata only, so only the final shape matters."""
    src = op.operands[0].defining_op if op.operands else None
    if src is None or get_spec(src.name) is None or get_spec(src.name).lowering != "view" or not src.operands:
        return None
    if get_spec("graph.reshape") is None or len(src.results) != 1:
        return None
    new = Operation("graph.reshape", [src.operands[0]], [op.result.type],
                    {"shape": list(op.result.type.shape)}, loc=op.loc)
    op.parent.insert_before(op, new)
    return [new.result]


def _is_view(op: Operation) -> bool:
    spec = get_spec(op.name)
    return spec is not None and spec.lowering == "view"


RULES = [
    (_is_view, _forward_identity),
    (_is_view, _collapse_views),
]


@dataclass
class Canonicalize(ModulePass):
    """Apply the canonicalization rules until nothing changes, then drop what became dead."""

    name = "canonicalize"
    max_iterations: int = 16

    def apply(self, module: Operation) -> None:
        for _ in range(self.max_iterations):
            if not self.sweep(module):
                break
        from .dce import DCE
        DCE().apply(module)

    def sweep(self, module: Operation) -> bool:
        changed = False
        for fn in functions(module):
            for op in list(fn.walk())[1:]:  # Loop / If bodies too
                if op.parent is None:
                    continue
                for applies, rewrite in RULES:
                    if not applies(op):
                        continue
                    new = rewrite(op)
                    if new is None:
                        continue
                    for old, v in zip(op.results, new):
                        old.replace_all_uses_with(v)
                    op.erase()
                    changed = True
                    break
        return changed
