"""Kernel-expression nodes: the index, guard and value expressions of the kernel IR as trees.

A kernel statement's expression (``kernel.load``'s ``index``, ``kernel.if``'s ``cond``, ...) prints in the
``.tir`` text as the C text :func:`~tilec.ir.kexpr.render` gives; :func:`~tilec.ir.kexpr.parse` reads that text
back into these nodes, so passes ask the tree (which block index does it read?) instead of matching text.

Nodes are frozen dataclasses, so equal trees compare and hash equal (they key the renderer's replacements).
``Group`` is a pair of parentheses as written: the tree keeps them, so text that parses renders back unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass


class KExpr:
    """Base of every kernel-expression node; the operators build :class:`Binary` nodes (``e + 1``)."""

    def __add__(self, other):
        return Binary("+", self, as_kexpr(other))

    def __radd__(self, other):
        return Binary("+", as_kexpr(other), self)

    def __sub__(self, other):
        return Binary("-", self, as_kexpr(other))

    def __mul__(self, other):
        return Binary("*", self, as_kexpr(other))

    def __rmul__(self, other):
        return Binary("*", as_kexpr(other), self)

    def __floordiv__(self, other):   # C's integer division, spelled ``/``
        return Binary("/", self, as_kexpr(other))

    def __mod__(self, other):
        return Binary("%", self, as_kexpr(other))

    def __str__(self) -> str:
        from .render import render
        return render(self)


@dataclass(frozen=True, eq=True)
class Const(KExpr):
    """A literal; ``spelling`` is its C text when it differs from ``str(value)`` (``1.0f``, ``256LL``, ``0x1f``)."""

    value: object
    spelling: str = ""

    @property
    def text(self) -> str:
        if self.spelling:
            return self.spelling
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return str(self.value)


@dataclass(frozen=True, eq=True)
class Var(KExpr):
    """A named C value: a ``let``, a loop variable, a parameter, a local array."""

    name: str


@dataclass(frozen=True, eq=True)
class Special(KExpr):
    """One of CUDA's built-in index registers (``blockIdx.x``): ``kind`` is its C name, ``axis`` x, y or z."""

    kind: str
    axis: str = "x"


def BlockIdx(axis: str = "x") -> Special:
    """``blockIdx.<axis>``."""
    return Special("blockIdx", axis)


def ThreadIdx(axis: str = "x") -> Special:
    """``threadIdx.<axis>``."""
    return Special("threadIdx", axis)


def GridDim(axis: str = "x") -> Special:
    """``gridDim.<axis>``."""
    return Special("gridDim", axis)


def BlockDim(axis: str = "x") -> Special:
    """``blockDim.<axis>``."""
    return Special("blockDim", axis)


SPECIAL_KINDS = ("blockIdx", "threadIdx", "gridDim", "blockDim")


@dataclass(frozen=True, eq=True)
class Unary(KExpr):
    """A prefix operator: ``-`` ``!`` ``~`` ``+`` ``&`` ``*``."""

    op: str
    operand: KExpr


@dataclass(frozen=True, eq=True)
class Binary(KExpr):
    """An infix operator of C (arithmetic, shifts, comparisons, bitwise, logical)."""

    op: str
    lhs: KExpr
    rhs: KExpr


@dataclass(frozen=True, eq=True)
class Select(KExpr):
    """``cond ? a : b``."""

    cond: KExpr
    a: KExpr
    b: KExpr


@dataclass(frozen=True, eq=True)
class Call(KExpr):
    """A function or macro call ``fn(args...)`` (``TL_LD``, ``fmaxf``, ``__shfl_xor_sync``)."""

    fn: str
    args: tuple = ()


@dataclass(frozen=True, eq=True)
class Cast(KExpr):
    """``(ctype)operand``."""

    ctype: str
    operand: KExpr


@dataclass(frozen=True, eq=True)
class Index(KExpr):
    """``base[index]``: a read of a local or shared array."""

    base: KExpr
    index: KExpr


@dataclass(frozen=True, eq=True)
class Member(KExpr):
    """``base.field`` (a float4 lane ``k_v0.x``)."""

    base: KExpr
    field: str


@dataclass(frozen=True, eq=True)
class Group(KExpr):
    """``(inner)``: parentheses as written."""

    inner: KExpr


def as_kexpr(value) -> KExpr:
    """``value`` as a node: nodes stay, ints, floats and bools become :class:`Const`, text is parsed."""
    if isinstance(value, KExpr):
        return value
    if isinstance(value, (bool, int, float)):
        return Const(value)
    if isinstance(value, str):
        from .parse import parse
        return parse(value)
    raise TypeError(f"not a kernel expression: {value!r}")


def children(e: KExpr) -> tuple:
    """The direct sub-expressions of ``e``."""
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, Binary):
        return (e.lhs, e.rhs)
    if isinstance(e, Select):
        return (e.cond, e.a, e.b)
    if isinstance(e, Call):
        return tuple(e.args)
    if isinstance(e, (Cast, Group)):
        return (e.operand,) if isinstance(e, Cast) else (e.inner,)
    if isinstance(e, Index):
        return (e.base, e.index)
    if isinstance(e, Member):
        return (e.base,)
    return ()


def walk(e: KExpr):
    """``e`` and every node under it, pre-order."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))
