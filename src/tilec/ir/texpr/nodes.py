"""AST of tensor expressions: small frozen, hashable dataclasses, plus walking and printing.

Index expressions inside ``Access.indices`` are ordinary nodes (``AxisRef``, ``Num``, ``Unary('-')`` and
``Binary`` with ``+ - * / %``); :mod:`tilec.ir.texpr.affine` turns them into ``{axis: coeff} + const``
forms. Every node carries ``pos`` (0-based offset in the source text, or None) for diagnostics; it takes
no part in equality or hashing, so a re-parsed expression equals the original.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Callable, Iterator, Union

BINARY_OPS = ("||", "&&", "<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "/", "%")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")
UNARY_OPS = ("-", "!")

# Binding strength for printing with minimal parentheses (the grammar's precedence, lowest first).
_PREC = {"||": 1, "&&": 2, **{c: 3 for c in COMPARISONS}, "+": 4, "-": 4, "*": 5, "/": 5, "%": 5}
_UNARY_PREC = 6
_ATOM_PREC = 7


@dataclass(frozen=True, eq=False)
class Num:
    """A literal. ``value`` is an ``int`` for integer literals and a ``float`` otherwise (``1`` vs ``1.0``
    differ in type, and ``nan`` equals ``nan`` here, so equality compares a key, not the value)."""

    value: Union[int, float]
    pos: int | None = field(default=None, compare=False, repr=False)

    def _key(self):
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise TypeError(f"Num value must be an int or a float, not {type(self.value).__name__}")
        return ("i", self.value) if isinstance(self.value, int) else ("f", float(self.value).hex())

    def __eq__(self, other):
        return isinstance(other, Num) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    @property
    def is_int(self) -> bool:
        return isinstance(self.value, int)


@dataclass(frozen=True)
class AxisRef:
    """An axis, as an index or as a value (its integer position along the axis)."""

    name: str
    pos: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Access:
    """``tensor[indices...]``: a read of input ``tensor`` (``pad`` outside its bounds)."""

    tensor: str
    indices: tuple
    pos: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Unary:
    """``-operand`` or ``!operand``."""

    op: str
    operand: object
    pos: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Binary:
    """``lhs op rhs`` for op in :data:`BINARY_OPS`."""

    op: str
    lhs: object
    rhs: object
    pos: int | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Call:
    """``fn(args...)``: a math function, ``select``, ``valid`` or a cast (``f32``, ``i64``, ...)."""

    fn: str
    args: tuple
    pos: int | None = field(default=None, compare=False, repr=False)


Node = Union[Num, AxisRef, Access, Unary, Binary, Call]
NODE_TYPES = (Num, AxisRef, Access, Unary, Binary, Call)


def children(node) -> tuple:
    """The direct sub-nodes of ``node`` in textual order (an access's indices included)."""
    if isinstance(node, Access):
        return node.indices
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.lhs, node.rhs)
    if isinstance(node, Call):
        return node.args
    return ()


def walk(node, into_indices: bool = True) -> Iterator:
    """Every node under ``node`` (itself first), pre-order, i.e. in textual order of appearance.
    ``into_indices=False`` treats accesses as leaves (the value computation only)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, Access) and not into_indices:
            continue
        stack.extend(reversed(children(n)))


def rewrite(node, fn: Callable):
    """Rebuild ``node`` bottom-up: each node (with rewritten children) is replaced by ``fn(node)``, or kept
    where ``fn`` returns None. E.g. renaming axes: ``rewrite(e, lambda n: AxisRef(m[n.name]) if ...)``."""
    if isinstance(node, Access):
        node = replace(node, indices=tuple(rewrite(i, fn) for i in node.indices))
    elif isinstance(node, Unary):
        node = replace(node, operand=rewrite(node.operand, fn))
    elif isinstance(node, Binary):
        node = replace(node, lhs=rewrite(node.lhs, fn), rhs=rewrite(node.rhs, fn))
    elif isinstance(node, Call):
        node = replace(node, args=tuple(rewrite(a, fn) for a in node.args))
    out = fn(node)
    return node if out is None else out


def axes_in(node) -> tuple:
    """Names of the axes mentioned under ``node`` (values and indices), in order of first appearance."""
    # Cached on the node, like affine.to_affine: nodes are immutable and the cache is no dataclass field.
    cache = getattr(node, "__dict__", None)
    if cache is not None and "_axes_in" in cache:
        return cache["_axes_in"]
    seen: dict = {}
    for n in walk(node):
        if isinstance(n, AxisRef):
            seen.setdefault(n.name, None)
    out = tuple(seen)
    if cache is not None:
        cache["_axes_in"] = out
    return out


def format_num(value) -> str:
    """A literal's canonical text: ints as digits, floats by ``repr`` (shortest round-trip form, always
    with a '.', an exponent, or as ``inf``/``nan``)."""
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "nan"
    return repr(float(value))


def _prec(node) -> int:
    if isinstance(node, Binary):
        return _PREC[node.op]
    if isinstance(node, Unary):
        return _UNARY_PREC
    if isinstance(node, Num) and format_num(node.value).startswith("-"):
        return _UNARY_PREC
    return _ATOM_PREC


def to_text(node) -> str:
    """Canonical text of ``node``: single spaces around binary operators, minimal parentheses."""
    if isinstance(node, Num):
        return format_num(node.value)
    if isinstance(node, AxisRef):
        return node.name
    if isinstance(node, Access):
        return f"{node.tensor}[{', '.join(to_text(i) for i in node.indices)}]"
    if isinstance(node, Call):
        return f"{node.fn}({', '.join(to_text(a) for a in node.args)})"
    if isinstance(node, Unary):
        inner = to_text(node.operand)
        return f"{node.op}{inner}" if _prec(node.operand) == _ATOM_PREC else f"{node.op}({inner})"
    if isinstance(node, Binary):
        p = _PREC[node.op]
        # Left-associative levels; comparisons do not chain, so both sides of one bind tighter.
        lhs_needs = _prec(node.lhs) < p or (p == 3 and _prec(node.lhs) == 3)
        lhs, rhs = to_text(node.lhs), to_text(node.rhs)
        lhs = f"({lhs})" if lhs_needs else lhs
        rhs = f"({rhs})" if _prec(node.rhs) <= p else rhs
        return f"{lhs} {node.op} {rhs}"
    raise TypeError(f"not a tensor-expression node: {node!r}")


def node_fields(node) -> tuple:
    """Names of ``node``'s dataclass fields other than ``pos`` (for generic visitors)."""
    return tuple(f.name for f in fields(node) if f.name != "pos")
