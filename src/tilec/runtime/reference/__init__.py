"""Reference implementations of graph ops, in numpy: the ground truth of tilec.

Each op is a function ``fn(inputs: list[np.ndarray | None], attrs: dict) -> list[np.ndarray]`` registered
with :func:`reference`; ``attrs`` already has the op spec's defaults filled in. Modules in this package
register themselves when imported by :func:`get_reference`.
"""
from __future__ import annotations

import importlib
import pkgutil

_REFS: dict = {}


def reference(*op_names: str):
    """Register the decorated function as the numpy implementation of ``op_names``."""
    def deco(fn):
        for name in op_names:
            _REFS[name] = fn
        return fn
    return deco


_loaded = False


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        importlib.import_module(f"{__name__}.{info.name}")
    _loaded = True


def get_reference(op_name: str):
    """The reference implementation of ``op_name``, or None."""
    _load_all()
    return _REFS.get(op_name)


def all_references() -> dict:
    _load_all()
    return dict(_REFS)
