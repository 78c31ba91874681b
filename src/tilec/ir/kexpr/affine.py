"""Affine analysis and simplification of kernel expressions.

:func:`affine` reads an integer expression as ``({leaf: coef}, const)`` over its leaves (names and index
registers), seeing through parentheses and integer casts; :func:`simplify` folds constants and rebuilds an
affine expression in canonical form (terms in first-appearance order, then the constant), recursing into the
operands of what is not affine (or holds a cast, which sets the width the arithmetic runs in). Both leave
the tree as written alone: rendering never simplifies."""
from __future__ import annotations

from .nodes import Binary, Call, Cast, Const, Group, Index, KExpr, Member, Select, Special, Unary, Var, as_kexpr, walk

INT_TYPES = frozenset({"int", "long", "long long", "unsigned", "unsigned int", "unsigned long long", "short",
                       "signed char", "unsigned char", "int32_t", "int64_t", "uint32_t", "uint64_t", "size_t"})


def _int(e: KExpr):
    if isinstance(e, Const) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    return None


def affine(e) -> tuple | None:
    """``({leaf: coef}, const)`` when ``e`` is an integer affine form of its leaves (:class:`Var` and
    :class:`Special` nodes), else None (products of leaves, divisions, calls, array reads)."""
    e = as_kexpr(e)
    if (v := _int(e)) is not None:
        return {}, v
    if isinstance(e, (Var, Special)):
        return {e: 1}, 0
    if isinstance(e, Group):
        return affine(e.inner)
    if isinstance(e, Cast):
        return affine(e.operand) if e.ctype in INT_TYPES else None
    if isinstance(e, Unary) and e.op in ("-", "+"):
        inner = affine(e.operand)
        if inner is None or e.op == "+":
            return inner
        return {k: -c for k, c in inner[0].items()}, -inner[1]
    if not isinstance(e, Binary) or e.op not in ("+", "-", "*"):
        return None
    return combine_affine(e.op, affine(e.lhs), affine(e.rhs))


def combine_affine(op: str, a, b):
    """``a op b`` for affine forms ``({leaf: coef}, const)`` and ``op`` in ``+ - *``: an affine form, or None
    where either side is not affine or the product multiplies two leaves (shared with the tensor-expression
    renderer's ``cexpr.affine``)."""
    if a is None or b is None:
        return None
    if op in ("+", "-"):
        sign = 1 if op == "+" else -1
        coefs = dict(a[0])
        for k, c in b[0].items():
            coefs[k] = coefs.get(k, 0) + sign * c
        return {k: c for k, c in coefs.items() if c}, a[1] + sign * b[1]
    if a[0] and b[0]:
        return None   # leaf * leaf
    (coefs, k), scale = (a, b[1]) if not b[0] else (b, a[1])
    return {x: c * scale for x, c in coefs.items() if c * scale}, k * scale


def affine_expr(coefs: dict, const: int) -> KExpr:
    """The canonical tree of ``sum(coef * leaf) + const``: ``leaf`` for coefficient 1, ``c * leaf`` otherwise,
    subtraction for negative terms and constants."""
    out = None
    for leaf, c in coefs.items():
        if c == 0:
            continue
        term = leaf if abs(c) == 1 else Binary("*", Const(abs(c)), leaf)
        if out is None:   # a leading negative term: -leaf, or a negative coefficient
            out = term if c > 0 else Unary("-", leaf) if c == -1 else Binary("*", Const(c), leaf)
        else:
            out = Binary("+" if c > 0 else "-", out, term)
    if out is None:
        return Const(const)
    if const:
        out = Binary("+" if const > 0 else "-", out, Const(abs(const)))
    return out


_FOLD = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


def simplify(e) -> KExpr:
    """An equivalent, simpler tree: affine integer expressions in canonical form; elsewhere constants folded
    (``+ - *``, and ``/ %`` of non-negative constants, C's truncating division), ``x * 1``, ``x + 0``,
    ``x * 0`` and parentheses around atoms removed."""
    e = as_kexpr(e)
    aff = affine(e)
    # A cast is kept where it is (it sets the width the arithmetic runs in), so only cast-free forms rebuild.
    if aff is not None and not isinstance(e, (Var, Special, Const)) and \
            not any(isinstance(n, Cast) for n in walk(e)):
        return affine_expr(*aff)
    if isinstance(e, Group):
        inner = simplify(e.inner)
        return inner if isinstance(inner, (Var, Special, Const, Call, Index, Member, Group)) else Group(inner)
    if isinstance(e, Binary):
        a, b = simplify(e.lhs), simplify(e.rhs)
        x, y = _int(a), _int(b)
        if x is not None and y is not None:
            if e.op in _FOLD:
                return Const(_FOLD[e.op](x, y))
            if e.op in ("/", "%") and x >= 0 and y > 0:
                return Const(x // y if e.op == "/" else x % y)
        if e.op == "*" and 0 in (x, y):
            return Const(0)
        if (e.op in ("*", "/") and y == 1) or (e.op in ("+", "-") and y == 0):
            return a
        if e.op in ("*",) and x == 1 or (e.op == "+" and x == 0):
            return b
        return Binary(e.op, a, b)
    if isinstance(e, Unary):
        return Unary(e.op, simplify(e.operand))
    if isinstance(e, Cast):
        return Cast(e.ctype, simplify(e.operand))
    if isinstance(e, Select):
        return Select(simplify(e.cond), simplify(e.a), simplify(e.b))
    if isinstance(e, Call):
        return Call(e.fn, tuple(simplify(a) for a in e.args))
    if isinstance(e, Index):
        return Index(simplify(e.base), simplify(e.index))
    if isinstance(e, Member):
        return Member(simplify(e.base), e.field)
    return e
