"""Kernel-expression tree → C text: the one spelling of kernel expressions (the C-style renderer,
``backend/cstyle.py``, prints every statement's expressions through :func:`render`).

Spacing is fixed (``a + b``, ``f(a, b)``, ``c ? a : b``, ``(long long)x``), and parentheses are the tree's
:class:`Group` nodes plus any that C's precedence needs for a tree built by hand, so text that parses renders
back unchanged. ``replace`` maps nodes to others at render time: a persistent rTask's body renders
``blockIdx.x`` as its virtual block index (``{BlockIdx("x"): Var("k_vb")}``), a guarded one ``threadIdx.x``
as ``k_tid``."""
from __future__ import annotations

from .nodes import Binary, Call, Cast, Const, Group, Index, KExpr, Member, Select, Special, Unary, Var, as_kexpr
from .parse import BINARY_PRECEDENCE, SELECT_PRECEDENCE, UNARY_PRECEDENCE

_ATOM = 17


def precedence(e: KExpr) -> int:
    """How tightly ``e``'s outermost operator binds (atoms and postfix forms: tightest)."""
    if isinstance(e, Binary):
        return BINARY_PRECEDENCE[e.op]
    if isinstance(e, Select):
        return SELECT_PRECEDENCE
    if isinstance(e, (Unary, Cast)):
        return UNARY_PRECEDENCE
    if isinstance(e, Const) and e.text.startswith("-"):
        return UNARY_PRECEDENCE
    return _ATOM


def render(e, replace: dict | None = None) -> str:
    """C text of ``e`` (a node, or text/number taken through :func:`as_kexpr`), with ``replace``'s nodes
    swapped in where they occur."""
    return _Renderer(replace or {})(as_kexpr(e))


class _Renderer:
    def __init__(self, replace: dict):
        self.replace = replace

    def __call__(self, e: KExpr) -> str:
        if self.replace and e in self.replace:
            e = self.replace[e]
        if isinstance(e, Const):
            return e.text
        if isinstance(e, Var):
            return e.name
        if isinstance(e, Special):
            return f"{e.kind}.{e.axis}"
        if isinstance(e, Group):
            return f"({self(e.inner)})"
        if isinstance(e, Unary):
            return e.op + self.wrap(e.operand, UNARY_PRECEDENCE)
        if isinstance(e, Cast):
            return f"({e.ctype})" + self.wrap(e.operand, UNARY_PRECEDENCE)
        if isinstance(e, Binary):
            prec = BINARY_PRECEDENCE[e.op]
            return f"{self.wrap(e.lhs, prec)} {e.op} {self.wrap(e.rhs, prec + 1)}"
        if isinstance(e, Select):
            return (f"{self.wrap(e.cond, SELECT_PRECEDENCE + 1)} ? {self(e.a)} : "
                    f"{self.wrap(e.b, SELECT_PRECEDENCE)}")
        if isinstance(e, Call):
            return f"{e.fn}({', '.join(self(a) for a in e.args)})"
        if isinstance(e, Index):
            return f"{self.wrap(e.base, _ATOM)}[{self(e.index)}]"
        if isinstance(e, Member):
            return f"{self.wrap(e.base, _ATOM)}.{e.field}"
        raise TypeError(f"cannot render {type(e).__name__}")

    def wrap(self, e: KExpr, need: int) -> str:
        """``e``'s text, parenthesised when it binds less tightly than ``need``."""
        text = self(e)
        target = self.replace.get(e, e) if self.replace else e
        return text if precedence(target) >= need else f"({text})"
