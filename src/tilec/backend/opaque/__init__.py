"""Hand-written CUDA for opaque graph ops (gather, resize, ...): each module registers a function
``fn(op, name) -> kernel.func | None`` under the op name; ops without one stay on the host."""
from __future__ import annotations

import importlib
import pkgutil

_KERNELS: dict = {}


def opaque_kernel(op_name: str):
    """Register ``fn(op, name)`` as the kernel builder of graph op ``op_name``."""
    def deco(fn):
        _KERNELS[op_name] = fn
        return fn
    return deco


def _load() -> None:
    if not _KERNELS:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            importlib.import_module(f"{__name__}.{info.name}")


def lower_opaque(op, index: int):
    """The ``kernel.func`` of an opaque op, or None when it has no hand-written kernel (or this instance is
    not supported: dynamic shapes, unusual attributes)."""
    _load()
    fn = _KERNELS.get(op.name)
    if fn is None or not all(getattr(v.type, "is_static", False) for v in list(op.operands) + op.results):
        return None
    from ..lower import kernel_symbol
    func = fn(op, kernel_symbol(index, op.name, "opaque"))
    if func is not None:
        func.attributes.setdefault("origin", op.name)
        func.loc = op.loc
    return func
