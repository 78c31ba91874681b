"""Building kernel IR: a small builder that appends ``kernel.*`` statement ops, with nesting for loops and ifs."""
from __future__ import annotations

from contextlib import contextmanager

from ...ir.attributes import SymbolRef
from ...ir.core import Block, Operation, Region


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
        self.op("let", name=name, dtype=dtype, value=str(value), const=None if const else False)
        return name

    def local(self, name: str, dtype: str, dims=(), init=None) -> str:
        self.op("local", name=name, dtype=dtype, dims=list(dims) or None, init=init)
        return name

    def assign(self, target: str, value: str) -> None:
        self.op("assign", target=target, value=value)

    def shared(self, name: str, dtype: str, dims) -> str:
        self.op("shared", name=name, dtype=dtype, dims=list(dims))
        return name

    def barrier(self, scope: str = "block") -> None:
        """``__syncthreads()``, or with ``scope="cluster"`` a barrier across the kernel's thread-block cluster."""
        self.op("barrier", scope=scope if scope != "block" else None)

    def load(self, target: str, dtype: str, buffer: str, index: str, pred: str | None = None,
             other: str | None = None, vec: int = 1) -> None:
        self.op("load", target=target, dtype=dtype, buffer=buffer, index=index, pred=pred or None,
                other=other if pred else None, vec=vec if vec != 1 else None)

    def store(self, buffer: str, index: str, value: str, pred: str | None = None, vec: int = 1) -> None:
        self.op("store", buffer=buffer, index=index, value=value, pred=pred or None,
                vec=vec if vec != 1 else None)

    def warp_reduce(self, var: str, combine: str, dtype: str, width: int = 32) -> None:
        self.op("warp_reduce", var=var, combine=combine, dtype=dtype, width=width if width != 32 else None)

    @contextmanager
    def loop(self, var: str, lo, hi, step=1, unroll: int = 0):
        op = self.op("for", 1, var=var, lo=lo, hi=hi, step=step if step != 1 else None,
                     unroll=unroll or None)
        self.stack.append(op.regions[0].block)
        try:
            yield var
        finally:
            self.stack.pop()

    @contextmanager
    def cond(self, cond: str):
        """``if (cond) { ... }``; a trivially true condition opens no ``if`` at all."""
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


def strides_of(shape) -> list:
    """Row-major element strides of ``shape``."""
    out, stride = [], 1
    for d in reversed(list(shape)):
        out.append(stride)
        stride *= d
    return out[::-1]


def paren(text: str) -> str:
    """``text`` wrapped in parentheses unless it is a name or a number."""
    return text if text.replace("_", "").replace(".", "").isalnum() else f"({text})"


def linearize(indices, shape) -> str:
    """The row-major offset ``i0 * s0 + i1 * s1 + ...`` of C index expressions, as C text."""
    terms = []
    for idx, st in zip(indices, strides_of(shape)):
        if idx == "0":
            continue
        terms.append(paren(idx) if st == 1 else f"{paren(idx)} * {st}")
    return " + ".join(terms) or "0"


def unflatten(kb: KernelBuilder, flat: str, names, extents, dtype: str = "i32") -> None:
    """``let`` each of ``names`` to its coordinate of the row-major ``flat`` index over ``extents``."""
    for i, (name, ext, st) in enumerate(zip(names, extents, strides_of(extents))):
        if ext == 1:
            value = "0"
        elif i == 0:
            value = flat if st == 1 else f"{paren(flat)} / {st}"
        else:
            value = f"{paren(flat)} % {ext}" if st == 1 else f"({paren(flat)} / {st}) % {ext}"
        kb.let(name, dtype, value)
