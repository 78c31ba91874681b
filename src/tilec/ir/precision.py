"""Precision modes (issue #17): the type the contractions of a module compute in, a fact of the module.

``tilec compile --precision NAME`` (``tilec.compile(precision=)``) sets the module attribute
``tilec.precision``; the ``precision`` pass reads it (``passes/precision.py``) and report.json records it.
No attribute means the model's own types: an f32 model stays exact f32.

| name | contraction operands | accumulation | where the product's result goes |
| --- | --- | --- | --- |
| fp32 | f32 (unchanged) | f32 | f32 |
| tf32 | f32, marked ``precision = "tf32"``: tensor cores may round them to 10-bit mantissas | f32 | f32 |
| fp16 | rounded to f16 | f32 | rounded to f16, then f32 again |
| bf16 | rounded to bf16 | f32 | rounded to bf16, then f32 again |
"""
from __future__ import annotations

from .diagnostics import CompileError

PRECISION_ATTR = "tilec.precision"   # the module attribute (``tilec compile --precision``)
DEFAULT_PRECISION = "model"          # what report.json says when none was asked for: the model's own types

# name -> the element type a contraction's operands take (tf32 keeps f32 storage: only the multiply rounds).
PRECISIONS: dict = {"fp32": "f32", "tf32": "f32", "fp16": "f16", "bf16": "bf16"}


def check_precision(name: str) -> str:
    """``name`` when it is a precision mode, else a CompileError listing them."""
    if name not in PRECISIONS:
        raise CompileError(f"unknown precision '{name}' (available: {', '.join(PRECISIONS)})")
    return name


def module_precision(op) -> str | None:
    """The precision mode of the module holding ``op`` (None: the model's own types)."""
    while getattr(op, "parent_op", None) is not None:
        op = op.parent_op
    value = op.attributes.get(PRECISION_ATTR) if op is not None else None
    return None if value is None else str(value)


def set_precision(module, name: str | None) -> None:
    """Make ``name`` the module's precision mode (None leaves the module as it is)."""
    if name is not None:
        module.attributes[PRECISION_ATTR] = check_precision(name)
