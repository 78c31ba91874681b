"""Which attributes of the kernel dialect's statement ops are expressions, and their trees."""
from __future__ import annotations

from .nodes import KExpr
from .parse import parse

# Expression-valued attributes of each kernel statement (C text in the .tir file, trees when parsed).
EXPR_ATTRS = {"kernel.let": ("value",), "kernel.local": ("init",), "kernel.assign": ("target", "value"),
              "kernel.for": ("lo", "hi", "step"), "kernel.if": ("cond",), "kernel.load": ("index", "pred", "other"),
              "kernel.store": ("index", "value", "pred")}


def expressions(op) -> list:
    """``[(attribute, tree)]`` of ``op``'s expression attributes that are set."""
    out = []
    for key in EXPR_ATTRS.get(op.name, ()):
        value = op.attributes.get(key)
        if value is not None:
            out.append((key, value if isinstance(value, KExpr) else parse(str(value))))
    return out
