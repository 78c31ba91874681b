"""C expression text → kernel-expression tree: a hand-written lexer and precedence-climbing parser for the
subset of C the kernel IR's expressions use (literals, names, ``blockIdx.x``-style registers, calls, casts,
subscripts, members, prefix and infix operators, ``?:``). Every pair of parentheses that is not a cast or a
call becomes a :class:`Group`, so ``render(parse(text)) == text`` for text in the renderer's spacing."""
from __future__ import annotations

import functools

from .nodes import (SPECIAL_KINDS, Binary, Call, Cast, Const, Group, Index, KExpr, Member, Select, Special,
                    Unary, Var)

# Binding power of each infix operator (C's precedence; higher binds tighter).
BINARY_PRECEDENCE = {"||": 4, "&&": 5, "|": 6, "^": 7, "&": 8, "==": 9, "!=": 9, "<": 10, "<=": 10, ">": 10,
                     ">=": 10, "<<": 11, ">>": 11, "+": 12, "-": 12, "*": 13, "/": 13, "%": 13}
SELECT_PRECEDENCE = 3
UNARY_PRECEDENCE = 15
UNARY_OPS = ("-", "!", "~", "+", "&", "*")
# Words that start a cast ``(type)x``: the C types the renderer's type map and the lowerings spell.
TYPE_WORDS = frozenset({"int", "long", "unsigned", "signed", "short", "char", "float", "double", "bool", "void",
                        "const", "__half", "__nv_bfloat16", "half", "float2", "float4", "size_t", "int32_t",
                        "int64_t", "uint32_t", "uint64_t"})
_PUNCT = sorted(["<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "::", "+", "-", "*", "/", "%", "<", ">", "!",
                 "~", "&", "|", "^", "?", ":", "(", ")", "[", "]", ".", ","], key=len, reverse=True)


class KExprSyntaxError(ValueError):
    """Text that is not a kernel expression (a tilec bug: the lowering wrote bad C)."""


def _lex(text: str) -> list:
    """``[(kind, text)]`` tokens: ``num``, ``name`` or ``op``."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j, hexa = i + 1, text.startswith(("0x", "0X"), i)
            while j < n and (text[j].isalnum() or text[j] in "._" or
                             (not hexa and text[j] in "+-" and text[j - 1] in "eE")):
                j += 1
            out.append(("num", text[i:j]))
            i = j
        elif c.isalpha() or c == "_":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_" or (text.startswith("::", j) and j + 2 < n
                                                                     and (text[j + 2].isalpha() or text[j + 2] == "_"))):
                j += 2 if text.startswith("::", j) else 1
            out.append(("name", text[i:j]))
            i = j
        else:
            op = next((p for p in _PUNCT if text.startswith(p, i)), None)
            if op is None:
                raise KExprSyntaxError(f"unexpected character {c!r} at {i} in kernel expression {text!r}")
            out.append(("op", op))
            i += len(op)
    return out


def _number(spelling: str) -> Const:
    body = spelling.rstrip("uUlLfF") if not spelling.lower().startswith("0x") else spelling.rstrip("uUlL")
    try:
        value = int(body, 0) if body.lower().startswith("0x") or body.isdigit() else float(body)
    except ValueError:
        raise KExprSyntaxError(f"bad number {spelling!r}") from None
    return Const(value, spelling if spelling != str(value) else "")


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _lex(text)
        self.i = 0

    def peek(self, k: int = 0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else (None, None)

    def take(self, want: str | None = None):
        tok = self.peek()
        if tok[0] is None or (want is not None and tok[1] != want):
            raise KExprSyntaxError(f"expected {want or 'more'} at token {self.i} in kernel expression {self.text!r}")
        self.i += 1
        return tok

    def expr(self, min_prec: int = 0) -> KExpr:
        lhs = self.prefix()
        while True:
            kind, tok = self.peek()
            if kind != "op":
                return lhs
            if tok == "?" and SELECT_PRECEDENCE >= min_prec:
                self.take()
                a = self.expr()
                self.take(":")
                lhs = Select(lhs, a, self.expr(SELECT_PRECEDENCE))
                continue
            prec = BINARY_PRECEDENCE.get(tok)
            if prec is None or prec < min_prec:
                return lhs
            self.take()
            lhs = Binary(tok, lhs, self.expr(prec + 1))

    def prefix(self) -> KExpr:
        kind, tok = self.peek()
        if kind == "op" and tok in UNARY_OPS:
            self.take()
            return Unary(tok, self.prefix())
        if kind == "op" and tok == "(":
            self.take()
            if self.peek()[0] == "name" and self.peek()[1] in TYPE_WORDS:
                words = []
                while self.peek()[1] != ")":
                    words.append(self.take()[1])
                self.take(")")
                ctype = " ".join(words).replace(" *", "*")
                return Cast(ctype, self.prefix())
            inner = self.expr()
            self.take(")")
            return self.postfix(Group(inner))
        if kind == "num":
            self.take()
            return self.postfix(_number(tok))
        if kind == "name":
            self.take()
            if tok in ("true", "false"):
                return Const(tok == "true")
            if tok in SPECIAL_KINDS and self.peek()[1] == ".":
                self.take()
                return self.postfix(Special(tok, self.take()[1]))
            if self.peek()[1] == "(":
                self.take()
                args = []
                while self.peek()[1] != ")":
                    args.append(self.expr(SELECT_PRECEDENCE))
                    if self.peek()[1] != ")":
                        self.take(",")
                self.take(")")
                return self.postfix(Call(tok, tuple(args)))
            return self.postfix(Var(tok))
        raise KExprSyntaxError(f"unexpected {tok!r} in kernel expression {self.text!r}")

    def postfix(self, e: KExpr) -> KExpr:
        while True:
            tok = self.peek()[1]
            if tok == "[":
                self.take()
                idx = self.expr()
                self.take("]")
                e = Index(e, idx)
            elif tok == "." and self.peek(1)[0] == "name":
                self.take()
                e = Member(e, self.take()[1])
            else:
                return e


@functools.lru_cache(maxsize=65536)
def parse(text: str) -> KExpr:
    """The tree of C expression ``text``; raises :class:`KExprSyntaxError` on text outside the subset."""
    p = _Parser(text)
    e = p.expr()
    if p.peek()[0] is not None:
        raise KExprSyntaxError(f"unexpected {p.peek()[1]!r} after a complete kernel expression {text!r}")
    return e
