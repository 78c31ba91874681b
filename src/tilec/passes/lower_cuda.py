"""lower-cuda: every ``tile.compute`` and fused ``tile.kernel`` (and every opaque graph op with a hand-written kernel) becomes a
``kernel.func`` symbol holding the kernel body, launched from its function by a ``kernel.launch``."""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..analysis.hardware import target_spec
from ..fusion import lower_kernel
from ..ir.attributes import SymbolRef
from ..ir.core import Operation, functions
from ..ir.opspec import get_spec
from .base import ModulePass


@dataclasses.dataclass
class LowerCuda(ModulePass):
    """Lower tile.compute ops to CUDA kernels (kernel.func + kernel.launch); opaque graph ops get
    hand-written kernels where one exists and stay on the host otherwise. ``kind`` forces one kernel kind
    (elementwise | reduce | tiled) for every compute op, for tests."""

    name: ClassVar[str] = "lower-cuda"
    kind: str = ""

    def apply(self, module: Operation) -> None:
        from ..backend.lower import lower_compute
        from ..backend.lower.argreduce import OPS as ARG_OPS
        from ..backend.lower.argreduce import lower_arg_reduce
        from ..backend.opaque import lower_opaque
        index = sum(1 for op in module.body.ops if op.name == "kernel.func")
        spec = None   # the module's target, read at the first fused kernel
        for fn in functions(module):
            for op in list(fn.walk())[1:]:  # Loop / If bodies too: the plan runs them as structured steps
                if op.parent_op is not None and op.parent_op.name == "tile.kernel":
                    continue  # a fused kernel's member: lowered with its tile.kernel
                if op.name == "tile.compute":
                    func = lower_compute(op, index, self.kind or None)
                elif op.name == "tile.kernel":
                    spec = spec or target_spec(module)
                    func = lower_kernel(op, index, spec, self.kind or None)   # by its fusion pattern
                elif op.name in ARG_OPS:  # arg_max / arg_min: row reductions that return an index
                    func = lower_arg_reduce(op, index)
                    if func is None:
                        continue
                elif getattr(get_spec(op.name), "lowering", None) == "opaque":
                    func = lower_opaque(op, index)
                    if func is None:
                        continue  # stays on the host, run by its reference implementation
                else:
                    continue
                module.body.insert_before(fn, func)
                launch = Operation("kernel.launch", list(op.operands), [r.type for r in op.results],
                                   {"kernel": SymbolRef(func.sym_name)}, loc=op.loc)
                op.parent.insert_before(op, launch)
                for old, new in zip(op.results, launch.results):
                    old.replace_all_uses_with(new)
                op.erase()
                index += 1
