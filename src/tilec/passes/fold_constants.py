"""``fold-constants``: evaluate ops whose operands are all constants, at compile time, with the reference."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.builder import Builder
from ..ir.core import Operation, functions
from ..runtime.interpreter import run_op
from .base import ModulePass


@dataclass
class FoldConstants(ModulePass):
    """Replace constant-input ops by ``tile.const``; skip results much larger than their inputs."""

    name = "fold-constants"
    max_growth: int = 4  # folding an Expand of a scalar into a huge weight would bloat the model

    def apply(self, module: Operation) -> None:
        for fn in functions(module):
            for op in list(fn.walk())[1:]:  # Loop / If bodies too
                if op.parent is None or op.name in ("tile.const", "func.return", "cf.yield") or op.regions or not op.results:
                    continue
                producers = [v.defining_op for v in op.operands]
                if not producers or not all(p is not None and p.name == "tile.const" for p in producers):
                    continue
                in_elems = sum(v.type.numel for v in op.operands)
                out_elems = sum(r.type.numel for r in op.results)
                if out_elems > max(self.max_growth * in_elems, 64):
                    continue
                inputs = [run_op(module, p, [], {})[0] for p in producers]
                outs = run_op(module, op, inputs, {})
                b = Builder(module, op.parent, before=op, loc=op.loc)
                for r, arr in zip(op.results, outs):
                    from ..ir.types import np_dtype
                    arr, want = np.asarray(arr), np_dtype(r.type.dtype)
                    # A fresh result of the right type is kept as it is (GPT-2's transposed 154 MB embedding
                    # was copied once more here); one that may be a view of an input is copied, as before.
                    fresh = arr.dtype == want and not any(np.may_share_memory(arr, x) for x in inputs)
                    arr = (arr if fresh else arr.astype(want)).reshape(r.type.shape)
                    r.replace_all_uses_with(b.constant(arr))
                op.erase()
