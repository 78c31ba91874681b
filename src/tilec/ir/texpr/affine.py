"""Index expressions as affine forms ``Σ coeff·axis + const``, and exact/conservative bounds of them.

An index is *affine* when it is built from axes, int constants, ``+``, ``-`` and multiplication by a
constant; it is *quasi-affine* when it also floor-divides or takes the (floor) modulus by a positive
constant (``i / 4``, ``i % 4``), which reshapes and depth-to-space need.
"""
from __future__ import annotations

from dataclasses import dataclass

from .nodes import AxisRef, Binary, Num, Unary


@dataclass(frozen=True)
class Affine:
    """``const + Σ coeff·axis``; ``coeffs`` is a tuple of ``(axis, coeff)`` in order of first appearance,
    zero coefficients dropped (a tuple, not a dict, so it is hashable and ordered)."""

    coeffs: tuple
    const: int

    @property
    def terms(self) -> dict:
        return dict(self.coeffs)

    def coeff(self, axis: str) -> int:
        return self.terms.get(axis, 0)

    @property
    def is_const(self) -> bool:
        return not self.coeffs

    def bounds(self, ranges: dict) -> tuple:
        """Inclusive ``(lo, hi)`` over half-open ``ranges[axis] = (start, stop)`` (each non-empty). Exact."""
        lo = hi = self.const
        for ax, c in self.coeffs:
            a, b = ranges[ax][0], ranges[ax][1] - 1
            lo += c * (a if c > 0 else b)
            hi += c * (b if c > 0 else a)
        return lo, hi


def _combine(a: Affine, b: Affine, sign: int) -> Affine:
    terms = dict(a.coeffs)
    for ax, c in b.coeffs:
        terms[ax] = terms.get(ax, 0) + sign * c
    return Affine(tuple((ax, c) for ax, c in terms.items() if c), a.const + sign * b.const)


def _scale(a: Affine, k: int) -> Affine:
    return Affine(tuple((ax, c * k) for ax, c in a.coeffs if c * k), a.const * k)


def to_affine(node) -> Affine | None:
    """The affine form of an index node, or None when it is not affine (quasi-affine or not an index)."""
    # Cached on the node (nodes are immutable; the cache is no field, so equality, hashing and printing
    # ignore it): Roller's and Welder's tile searches box the same few indices hundreds of thousands of times.
    cache = getattr(node, "__dict__", None)
    if cache is None:
        return _to_affine(node)
    hit = cache.get("_affine", _UNSET)
    if hit is _UNSET:
        hit = cache["_affine"] = _to_affine(node)
    return hit


_UNSET = object()


def _to_affine(node) -> Affine | None:
    if isinstance(node, Num):
        return Affine((), node.value) if node.is_int else None
    if isinstance(node, AxisRef):
        return Affine(((node.name, 1),), 0)
    if isinstance(node, Unary) and node.op == "-":
        inner = to_affine(node.operand)
        return None if inner is None else _scale(inner, -1)
    if not isinstance(node, Binary) or node.op not in ("+", "-", "*"):
        return None
    a, b = to_affine(node.lhs), to_affine(node.rhs)
    if a is None or b is None:
        return None
    if node.op == "+":
        return _combine(a, b, 1)
    if node.op == "-":
        return _combine(a, b, -1)
    if a.is_const:
        return _scale(b, a.const)
    if b.is_const:
        return _scale(a, b.const)
    return None  # axis * axis


def index_problem(node) -> tuple | None:
    """None when ``node`` is a valid (quasi-)affine index; else ``(message, offending node)``."""
    if isinstance(node, Num):
        return None if node.is_int else ("an index must be an integer, not a float literal", node)
    if isinstance(node, AxisRef):
        return None
    if isinstance(node, Unary):
        return index_problem(node.operand) if node.op == "-" else ("'!' is not allowed in an index", node)
    if isinstance(node, Binary) and node.op in ("+", "-", "*", "/", "%"):
        for side in (node.lhs, node.rhs):
            bad = index_problem(side)
            if bad:
                return bad
        if node.op == "*":
            la, ra = to_affine(node.lhs), to_affine(node.rhs)
            if not ((la is not None and la.is_const) or (ra is not None and ra.is_const)):
                return ("an index may only multiply by a constant (it must be affine in the axes)", node)
        if node.op in ("/", "%"):
            d = to_affine(node.rhs)
            if d is None or not d.is_const or d.const <= 0:
                return (f"an index may only use '{node.op}' with a positive integer constant divisor", node.rhs)
        return None
    what = type(node).__name__.lower()
    if isinstance(node, Binary):
        what = f"operator '{node.op}'"
    return (f"an index must be a (quasi-)affine expression of axes and integers ({what} is not allowed)", node)


def index_bounds(node, ranges: dict) -> tuple:
    """Inclusive ``(lo, hi)`` of a valid index over half-open, non-empty ``ranges``: exact for affine
    indices, a conservative interval for quasi-affine ones."""
    aff = to_affine(node)
    if aff is not None:
        return aff.bounds(ranges)
    if isinstance(node, Unary):
        lo, hi = index_bounds(node.operand, ranges)
        return -hi, -lo
    assert isinstance(node, Binary), node  # index_problem() admitted only these shapes
    a = index_bounds(node.lhs, ranges)
    b = index_bounds(node.rhs, ranges)
    if node.op == "+":
        return a[0] + b[0], a[1] + b[1]
    if node.op == "-":
        return a[0] - b[1], a[1] - b[0]
    if node.op == "*":
        prods = [x * y for x in a for y in b]
        return min(prods), max(prods)
    d = b[0]  # a positive constant
    if node.op == "/":
        return a[0] // d, a[1] // d  # floor division is monotone: exact on the interval
    if a[0] // d == a[1] // d:
        return a[0] % d, a[1] % d    # the interval stays within one period
    return 0, d - 1
