"""``cse``: common-subexpression elimination of identical pure ops within a block."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.attributes import format_attr_dict
from ..ir.core import Operation
from .base import ModulePass
from .dce import SIDE_EFFECTS


@dataclass
class CSE(ModulePass):
    """Replace an op by an earlier identical one (same name, operands, attributes and result types)."""

    name = "cse"

    def apply(self, module: Operation) -> None:
        for op in list(module.walk()):
            for region in op.regions:
                for block in region.blocks:
                    self.block(block)

    def block(self, block) -> None:
        seen: dict = {}
        for op in list(block.ops):
            if op.name in SIDE_EFFECTS or op.regions or not op.results:
                continue
            key = (op.name, tuple(id(v) for v in op.operands), format_attr_dict(op.attributes),
                   tuple(str(r.type) for r in op.results))
            prior = seen.get(key)
            if prior is None:
                seen[key] = op
                continue
            for old, new in zip(op.results, prior.results):
                old.replace_all_uses_with(new)
            op.erase()
