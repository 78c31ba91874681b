"""Decomposition rules: how each graph op with ``lowering = "expr"`` becomes ``tile.compute`` ops.

A rule is ``fn(b: Builder, op: Operation, attrs: dict) -> list[Value]`` (one value per op result), where
``b`` inserts before ``op`` and ``attrs`` has the spec defaults filled in. Rules build expressions with
``b.compute("Y[i, j] = X[j, i]", [x], result_type, pad=..., axes=...)``. Modules in this package register
themselves on import.
"""
from __future__ import annotations

import importlib
import pkgutil

_RULES: dict = {}


def decomposition(*op_names: str):
    """Register the decorated function as the decomposition of ``op_names``."""
    def deco(fn):
        for name in op_names:
            _RULES[name] = fn
        return fn
    return deco


_loaded = False


def get_decomposition(op_name: str):
    global _loaded
    if not _loaded:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            importlib.import_module(f"{__name__}.{info.name}")
        _loaded = True
    return _RULES.get(op_name)


def axes_for(rank: int, prefix: str = "d") -> list[str]:
    """Axis names ``d0, d1, ...`` for a tensor of ``rank``."""
    return [f"{prefix}{i}" for i in range(rank)]


def broadcast_index(in_shape, out_axes) -> str:
    """Index list reading a numpy-broadcast input of ``in_shape`` at output axes ``out_axes``."""
    offset = len(out_axes) - len(in_shape)
    # A size-1 input dim is broadcast: always read index 0 of it.
    return ", ".join("0" if d == 1 else out_axes[offset + i] for i, d in enumerate(in_shape))
