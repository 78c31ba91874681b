"""Building IR in code: append ops to a block and add weights/constants to a module."""
from __future__ import annotations

import numpy as np

from .attributes import DenseAttr, SymbolRef
from .core import Block, Location, Operation, Value
from .types import TensorType
from .weights import content_name, module_weights


class Builder:
    """Appends ops at the end of ``block`` (or before ``before``); ``loc`` is stamped on every new op."""

    def __init__(self, module: Operation, block: Block, before: Operation | None = None,
                 loc: Location | None = None):
        self.module = module
        self.block = block
        self.before = before
        self.loc = loc

    def insert(self, op: Operation) -> Operation:
        if op.loc is None:
            op.loc = self.loc
        if self.before is not None:
            self.block.insert_before(self.before, op)
        else:
            self.block.append(op)
        return op

    def create(self, name: str, operands, result_types, attrs=None, regions=()) -> Operation:
        return self.insert(Operation(name, operands, result_types, attrs, regions))

    def compute(self, expr: str, operands, result_type: TensorType, **attrs) -> Value:
        """A ``tile.compute`` op with the expression ``expr``."""
        a = {"expr": expr}
        a.update({k: v for k, v in attrs.items() if v is not None})
        return self.create("tile.compute", operands, [result_type], a).result

    def constant(self, array: np.ndarray, name: str | None = None) -> Value:
        """A ``tile.const``: inline when small, otherwise a weight in the sidecar."""
        array = np.asarray(array)
        ty = TensorType.of(array)
        if array.size <= DenseAttr.MAX_INLINE_ELEMENTS and name is None:
            return self.create("tile.const", [], [ty], {"value": DenseAttr(array)}).result
        sym = add_weight(self.module, name or content_name("cst", array), array)
        return self.create("tile.const", [], [ty], {"value": sym}).result


def add_weight(module: Operation, name: str, array: np.ndarray, source_name: str | None = None) -> SymbolRef:
    """Declare weight ``@name`` (once) in ``module`` and store its data; returns the symbol."""
    weights = module_weights(module)
    if name not in weights:
        attrs = {"sym_name": SymbolRef(name), "type": TensorType.of(array)}
        if source_name is not None and source_name != name:
            attrs["source_name"] = source_name
        decl = Operation("tile.weight", attributes=attrs)
        # Weights go before the first function so the module reads top-down.
        body = module.body
        index = next((i for i, op in enumerate(body.ops) if op.name != "tile.weight"), len(body.ops))
        body.insert(index, decl)
        weights[name] = np.asarray(array, order="C")
    return SymbolRef(name)
