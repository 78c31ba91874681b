"""ONNX op converters: one function per ONNX op type (tinygrad's onnx.py style), registered by name.

A converter is ``fn(ctx: ImportContext, node: onnx.NodeProto) -> list[Value | ConstValue]`` returning one
value per node output. It reads inputs and attributes through ``ctx`` and emits graph ops with
``ctx.emit``. ``since`` is the first opset the converter handles (opset-versioned behaviour, e.g. Squeeze
axes moving from attribute to input at 13, is handled inside the converter with ``ctx.opset``).
"""
from __future__ import annotations

_CONVERTERS: dict = {}


def converter(*op_types: str, since: int = 1):
    """Register the decorated function for the given ONNX op types."""
    def deco(fn):
        for t in op_types:
            _CONVERTERS[t] = (fn, since)
        return fn
    return deco


_loaded = False


def _load_all() -> None:
    global _loaded
    if not _loaded:
        import importlib
        import pkgutil

        from . import onnx_ops
        for info in sorted(pkgutil.iter_modules(onnx_ops.__path__), key=lambda i: i.name):
            importlib.import_module(f"{onnx_ops.__name__}.{info.name}")
        _loaded = True


def get_converter(op_type: str):
    """``(fn, since)`` for ``op_type``, or None when tilec does not support it."""
    _load_all()
    return _CONVERTERS.get(op_type)


def supported_ops() -> list[str]:
    _load_all()
    return sorted(_CONVERTERS)
