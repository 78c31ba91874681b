"""A row tail for the back-to-back GEMM kernel (:mod:`.kernel`): a row group (layernorm, softmax) over the
second GEMM's full-width result, run on the block's rows while they are still in shared memory.

The second GEMM's epilogue leaves its last value ``y`` in the (then dead) hidden tile ``k_h``, columns
``[0, N)``; the tail's members then run in order, one barrier after each member a later one reads:
- a full-row elementwise member: the block's threads stride over its ``rows × N`` points; if a later
  member reads it, it goes to ``k_h`` columns ``[b·N, (b+1)·N)``;
- a reduction over the row (or a row-scalar member): one thread per row, columns folded in order
  (deterministic), the row scalar kept in ``k_rs``.
Outside operands indexed by the column alone (layernorm's scale and shift) or by nothing are staged once
per block; other outside reads load per point. Only the kernel's outputs reach global memory.

:meth:`RowTail.bytes` counts every load and store as emitted (what the emulator measures)."""
from __future__ import annotations

from ...ir.texpr.nodes import AxisRef, Num
from ...ir.types import itemsize
from ...backend.cstyle import CUDA, compute_dtype
from ...backend.lower.builder import linearize
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import bind_names


class RowTail:
    """The tail members over ``R`` rows of ``N`` columns; ``yval`` is the second GEMM side's last value."""

    def __init__(self, members: list, args: list, kouts: list, yval, R: int, N: int):
        self.members, self.kouts, self.yval, self.R, self.N = members, kouts, yval, R, N
        self.ctxs = []
        for m in members:
            c = ComputeContext(m)
            bind_names(c, m, args)
            self.ctxs.append(c)
        self.index = {id(m.result): i for i, m in enumerate(members)}
        self.full = [m.result.type.shape[-1] == N and c.combiner is None for m, c in zip(members, self.ctxs)]
        read = {self.index[id(v)] for m in members for v in m.operands if id(v) in self.index}
        self.slot = {}      # full-row member read later -> k_h column block (y is block 0)
        self.scalar = {}    # row-scalar member read later -> k_rs row
        for i in sorted(read):
            if self.full[i]:
                self.slot[i] = len(self.slot) + 1
            else:
                self.scalar[i] = len(self.scalar)
        self.vectors = {}   # staged outside operand key -> (name, value, indices, col dim)
        for i, (m, c) in enumerate(zip(members, self.ctxs)):
            for acc in c.distinct_accesses():
                v = m.operands[c.input_of(acc)]
                if v is not yval and id(v) not in self.index and self._vector(i, acc) is not None:
                    key = self._vector(i, acc)
                    if (id(v), key) not in self.vectors:
                        self.vectors[(id(v), key)] = (f"k_tv{len(self.vectors)}", v, key)

    # --- classification ----------------------------------------------------------------------------------
    def col_axis(self, i: int) -> str | None:
        c = self.ctxs[i]
        return c.reduce_axes[0] if c.combiner is not None else (c.out_axes[-1] if self.full[i] else None)

    def _vector(self, i: int, acc):
        """``acc``'s indices with the column axis as ``"#"`` when it reads only constants and the column."""
        col, c = self.col_axis(i), self.ctxs[i]
        key = []
        for ix in acc.indices:
            if isinstance(ix, Num):
                key.append(int(ix.value))
            elif isinstance(ix, AxisRef) and ix.name != col and c.extents.get(ix.name) == 1:
                key.append(0)
            elif isinstance(ix, AxisRef) and ix.name == col:
                key.append("#")
            else:
                return None
        return tuple(key)

    def legal(self) -> bool:
        """The tail reads ``y`` only at the row and column, and needs no more buffer than it is given."""
        for i, (m, c) in enumerate(zip(self.members, self.ctxs)):
            for acc in c.distinct_accesses():
                if m.operands[c.input_of(acc)] is self.yval and not self._at_row(i, acc, full=True):
                    return False
                v = m.operands[c.input_of(acc)]
                if id(v) in self.index:
                    j = self.index[id(v)]
                    if not self._at_row(i, acc, full=self.full[j]):
                        return False
        return True

    def _at_row(self, i: int, acc, full: bool) -> bool:
        """``acc`` reads at the member's row and, for a full-row tensor, its column (else column 0)."""
        c = self.ctxs[i]
        if len(acc.indices) != len(c.out_axes):
            return False
        *lead, row, last = acc.indices
        zero = lambda ix: (isinstance(ix, Num) and ix.value == 0) or (
            isinstance(ix, AxisRef) and c.extents.get(ix.name) == 1 and ix.name != self.col_axis(i))
        ok = all(zero(ix) for ix in lead) and isinstance(row, AxisRef) and row.name == c.out_axes[-2]
        if full:
            return ok and isinstance(last, AxisRef) and last.name == self.col_axis(i)
        return ok and zero(last)

    # --- cost ----------------------------------------------------------------------------------------------
    def columns(self) -> int:
        """``k_h`` columns the tail needs (y and every buffered full-row member)."""
        return self.N * (1 + len(self.slot))

    def smem_bytes(self, rows: int) -> int:
        staged = sum(self.N if "#" in key else 1 for _, _, key in self.vectors.values())
        return 4 * (rows * max(1, len(self.scalar)) + staged)

    def bytes(self, blocks: int) -> int:
        total = 0
        for _, v, key in self.vectors.values():
            total += blocks * (self._vector_len(v, key)) * itemsize(v.type.dtype)
        for i, (m, c) in enumerate(zip(self.members, self.ctxs)):
            trips = self.R * (self.N if self.col_axis(i) is not None else 1)
            for acc in c.distinct_accesses():
                v = m.operands[c.input_of(acc)]
                if v is self.yval or id(v) in self.index or (id(v), self._vector(i, acc)) in self.vectors:
                    continue
                total += trips * itemsize(v.type.dtype)
            if any(o is m.result for o in self.kouts):
                total += self.R * (self.N if self.full[i] else 1) * itemsize(m.result.type.dtype)
        return total

    def _vector_len(self, v, key) -> int:
        dim = v.type.shape[list(key).index("#")] if "#" in key else 1
        return min(self.N, dim) if "#" in key else 1

    # --- emission ------------------------------------------------------------------------------------------
    def emit(self, kb, rows: int, T: int) -> None:
        if self.scalar:
            kb.shared("k_rs", "f32", [max(1, len(self.scalar)), rows])
        for name, v, key in self.vectors.values():
            n = self.N if "#" in key else 1
            kb.shared(name, "f32", [n])
            shape = list(v.type.shape)
            with kb.loop("k_e", "threadIdx.x", n, step=T, unroll=1):
                idx = ["k_e" if k == "#" else str(k) for k in key]
                pred = f"k_e < {shape[list(key).index('#')]}" if "#" in key else None
                kb.load(f"{name}[k_e]", "f32", self._arg(v), linearize(idx, shape), pred, "0.0f")
        kb.barrier()
        for i, (m, c) in enumerate(zip(self.members, self.ctxs)):
            dtype = compute_dtype(m.result.type.dtype)
            if self.full[i]:
                # Not unrolled: nvcc unrolling these short strided loops next to the GEMMs spilled (ptxas).
                with kb.loop("k_te", "threadIdx.x", rows * self.N, step=T, unroll=1):
                    kb.let("k_tr", "i32", f"k_te / {self.N}")
                    kb.let("k_tc", "i32", f"k_te % {self.N}")
                    with kb.cond(f"k_row0 + k_tr < {self.R}"):
                        kb.let(f"k_ty{i}", dtype, self._body(kb, i, "k_tc"))
                        if i in self.slot:
                            kb.assign(f"k_h[k_tr][{self.slot[i] * self.N} + k_tc]", f"k_ty{i}")
                        self._store(kb, m, f"k_ty{i}", f"(k_row0 + k_tr) * {self.N} + k_tc")
            else:
                with kb.loop("k_tr", "threadIdx.x", rows, step=T, unroll=1):
                    with kb.cond(f"k_row0 + k_tr < {self.R}"):
                        if c.combiner is not None:
                            kb.local(f"k_ty{i}", c.acc_dtype, init=c.identity())
                            with kb.loop("k_tc", 0, self.N):
                                body = self._body(kb, i, "k_tc")
                                kb.assign(f"k_ty{i}", CUDA.combine(c.combiner, c.acc_dtype, f"k_ty{i}", body))
                        else:
                            kb.let(f"k_ty{i}", dtype, self._body(kb, i, None))
                        if i in self.scalar:
                            kb.assign(f"k_rs[{self.scalar[i]}][k_tr]", f"k_ty{i}")
                        self._store(kb, m, f"k_ty{i}", "k_row0 + k_tr")
            if i in self.slot or i in self.scalar:
                kb.barrier()

    def _arg(self, v) -> str:
        return next(c.names[t] for c, m in zip(self.ctxs, self.members)
                    for t, o in zip(c.expr.inputs, m.operands) if o is v)

    def _store(self, kb, m, value: str, index: str) -> None:
        for j, o in enumerate(self.kouts):
            if o is m.result:
                kb.store(f"out{j}", index, value)

    def _body(self, kb, i: int, colvar: str | None) -> str:
        m, c = self.members[i], self.ctxs[i]
        col = self.col_axis(i)
        table = {a: "0" for a in c.out_axes + c.reduce_axes}
        table[c.out_axes[-2]] = "(k_row0 + k_tr)"
        if col is not None:
            table[col] = colvar
        axis = table.__getitem__
        names = {}
        for q, acc in enumerate(c.distinct_accesses()):
            v = m.operands[c.input_of(acc)]
            key = c.access_key(acc)
            if v is self.yval:
                names[key] = f"k_h[k_tr][{colvar}]"
            elif id(v) in self.index:
                j = self.index[id(v)]
                names[key] = (f"k_h[k_tr][{self.slot[j] * self.N} + {colvar}]" if self.full[j]
                              else f"k_rs[{self.scalar[j]}][k_tr]")
            elif (id(v), self._vector(i, acc)) in self.vectors:
                name, _, vk = self.vectors[(id(v), self._vector(i, acc))]
                names[key] = f"{name}[{colvar if '#' in vk else '0'}]"
            else:
                names[key] = f"k_tl{i}_{q}"
                c.load_access(kb, acc, f"k_tl{i}_{q}", axis)
        return c.renderer(lambda a: names[c.access_key(a)], axis)(c.expr.body)
