"""Building kernel IR: a small builder that appends ``kernel.*`` statement ops, with nesting for loops and ifs.

Expression arguments (indices, guards, values, loop bounds) are kernel-expression trees (``ir/kexpr``) or C
text; the op stores their one C spelling (``kexpr.render``), which is what the ``.tir`` text prints and what
``kernel_facts`` parses back into a tree. :func:`linear_index` and :func:`unflatten` build trees;
:func:`linearize` and :func:`paren` are their text forms for lowerings that still write C strings."""
from __future__ import annotations

from contextlib import contextmanager

from ...ir.attributes import SymbolRef
from ...ir.core import Block, Operation, Region
from ...ir.kexpr import (Binary, BlockIdx, Cast, Const, Group, KExpr, Member, Special, ThreadIdx, Var, as_kexpr,
                         render)


def _text(value):
    """The stored form of an expression argument: a tree's C text; text, numbers and None unchanged."""
    return render(value) if isinstance(value, KExpr) else value


class KernelBuilder:
    """Appends kernel statements to the innermost open block; ``loop``/``cond`` open nested ones."""

    def __init__(self):
        self.body = Block()
        self.stack = [self.body]

    def op(self, opname: str, regions: int = 0, **attrs) -> Operation:
        op = Operation(f"kernel.{opname}", attributes={k: v for k, v in attrs.items() if v is not None},
                       regions=[Region() for _ in range(regions)])
        self.stack[-1].append(op)
        return op

    def let(self, name: str, dtype: str, value, const: bool = True) -> str:
        self.op("let", name=name, dtype=dtype, value=str(_text(value)), const=None if const else False)
        return name

    def local(self, name: str, dtype: str, dims=(), init=None) -> str:
        self.op("local", name=name, dtype=dtype, dims=list(dims) or None, init=_text(init))
        return name

    def assign(self, target, value) -> None:
        self.op("assign", target=_text(target), value=_text(value))

    def shared(self, name: str, dtype: str, dims) -> str:
        self.op("shared", name=name, dtype=dtype, dims=list(dims))
        return name

    def barrier(self, scope: str = "block") -> None:
        """``__syncthreads()``, or with ``scope="cluster"`` a barrier across the kernel's thread-block cluster."""
        self.op("barrier", scope=scope if scope != "block" else None)

    def load(self, target: str, dtype: str, buffer: str, index, pred=None, other=None, vec: int = 1) -> None:
        self.op("load", target=target, dtype=dtype, buffer=buffer, index=_text(index), pred=_text(pred) or None,
                other=_text(other) if pred else None, vec=vec if vec != 1 else None)

    def store(self, buffer: str, index, value, pred=None, vec: int = 1) -> None:
        self.op("store", buffer=buffer, index=_text(index), value=_text(value), pred=_text(pred) or None,
                vec=vec if vec != 1 else None)

    def warp_reduce(self, var: str, combine: str, dtype: str, width: int = 32) -> None:
        self.op("warp_reduce", var=var, combine=combine, dtype=dtype, width=width if width != 32 else None)

    @contextmanager
    def loop(self, var: str, lo, hi, step=1, unroll: int = 0):
        op = self.op("for", 1, var=var, lo=_text(lo), hi=_text(hi), step=_text(step) if step != 1 else None,
                     unroll=unroll or None)
        self.stack.append(op.regions[0].block)
        try:
            yield var
        finally:
            self.stack.pop()

    @contextmanager
    def cond(self, cond):
        """``if (cond) { ... }``; a trivially true condition opens no ``if`` at all."""
        cond = _text(cond)
        if cond in ("", "true", "1"):
            yield
            return
        op = self.op("if", 2, cond=cond)
        self.stack.append(op.regions[0].block)
        try:
            yield
        finally:
            self.stack.pop()

    def func(self, name: str, grid, block, params, **attrs) -> Operation:
        """The ``kernel.func`` op holding everything built so far."""
        grid = list(grid) + [1] * (3 - len(grid))
        block = list(block) + [1] * (3 - len(block))
        a = {"sym_name": SymbolRef(name), "grid": grid, "block": block, "smem": 0, "params": params}
        a.update({k: v for k, v in attrs.items() if v is not None})
        return Operation("kernel.func", attributes=a, regions=[Region([self.body])])


def thread_index(threads: int, ctype: str | None = None, lanes_per_row: int = 1) -> KExpr:
    """The flat index of a thread of a 1-D grid of ``threads``-wide blocks, ``blockIdx.x * threads +
    threadIdx.x`` (``ctype``: the block index cast to it first, so the product does not overflow); with
    ``lanes_per_row`` 32, the index of a warp, ``blockIdx.x * warps + (threadIdx.x >> 5)``."""
    block = BlockIdx() if ctype is None else Cast(ctype, BlockIdx())
    shift = Const(lanes_per_row.bit_length() - 1)   # lanes_per_row is a power of two
    lane = ThreadIdx() if lanes_per_row == 1 else Group(Binary(">>", ThreadIdx(), shift))
    return Binary("+", Binary("*", block, Const(threads // lanes_per_row)), lane)


def strides_of(shape) -> list:
    """Row-major element strides of ``shape``."""
    out, stride = [], 1
    for d in reversed(list(shape)):
        out.append(stride)
        stride *= d
    return out[::-1]


def _is_atom(e: KExpr) -> bool:
    """A name or a number (``k_t``, ``4``, ``blockIdx.x``, ``k_v0.x``): what needs no parentheses as an operand."""
    if isinstance(e, Const):
        return not e.text.startswith("-")
    return isinstance(e, (Var, Special)) or (isinstance(e, Member) and _is_atom(e.base))


def group(e) -> KExpr:
    """``e`` (a tree or C text) in parentheses unless it is a name or a number."""
    e = as_kexpr(e)
    return e if _is_atom(e) else Group(e)


def paren(text) -> str:
    """``text`` wrapped in parentheses unless it is a name or a number (text form of :func:`group`)."""
    return render(group(text))


def _is_zero(e: KExpr) -> bool:
    return isinstance(e, Const) and type(e.value) is int and e.value == 0 and not e.spelling


def linear_index(indices, shape) -> KExpr:
    """The row-major offset ``i0 * s0 + i1 * s1 + ...`` of index expressions (trees or C text) over ``shape``;
    zero indices drop out, unit strides take no multiplication."""
    out = None
    for idx, st in zip(indices, strides_of(shape)):
        idx = as_kexpr(idx)
        if _is_zero(idx):
            continue
        term = group(idx) if st == 1 else Binary("*", group(idx), Const(st))
        out = term if out is None else Binary("+", out, term)
    return Const(0) if out is None else out


def linearize(indices, shape) -> str:
    """:func:`linear_index` as C text."""
    return render(linear_index(indices, shape))


def unflatten(kb: KernelBuilder, flat, names, extents, dtype: str = "i32") -> None:
    """``let`` each of ``names`` to its coordinate of the row-major ``flat`` index (a tree or C text) over
    ``extents``."""
    raw = as_kexpr(flat)
    flat = group(raw)
    for i, (name, ext, st) in enumerate(zip(names, extents, strides_of(extents))):
        if ext == 1:
            value = Const(0)
        elif i == 0:
            value = raw if st == 1 else Binary("/", flat, Const(st))
        else:
            value = Binary("%", flat, Const(ext)) if st == 1 else \
                Binary("%", Group(Binary("/", flat, Const(st))), Const(ext))
        kb.let(name, dtype, value)
