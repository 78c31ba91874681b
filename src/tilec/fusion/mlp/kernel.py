"""Back-to-back GEMMs (welder ``kind = "mlp"``): ``H = e1(X · W1)``, ``Y = e2(H · W2)`` in one kernel, a row
tile of the hidden ``H`` kept in shared memory (DESIGN §4, "shared"; the FFN of a transformer layer).

One block owns ``rows`` consecutive rows (the second-to-last output axis; every axis before it is size 1):
1. it stages its rows of ``X`` in ``k_x`` (rows past the end read 0);
2. thread ``t`` owns hidden columns ``t + j·threads`` for all its rows: per reduce step it loads its
   ``W1[k, n]`` once from global memory and folds it into ``rows`` accumulators, so every weight element
   is read exactly once per block; e1 (bias, GELU, ...) runs per element and the value goes to ``k_h``;
3. after a barrier the same scheme computes ``Y`` columns from ``k_h`` and ``W2``, and e2 (bias, residual)
   stores them.
Broadcast operands of either epilogue (a bias indexed by the column, a scalar) are staged in shared memory
once per block (``backend/lower/fused.py``'s staging plan over the block's tile); a residual that is ``X`` itself is read
from ``k_x``; the rest load per element. A row group after the second GEMM (layernorm, softmax) runs on the
block's rows in shared memory (:mod:`.tail`). With ``split = 0`` there is no first GEMM: the one
GEMM's A rows are staged in ``k_h`` and step 3 runs alone, with its row tail.

Bytes, exactly as emitted (what the emulator counts): ``X`` once, ``W1`` and ``W2`` once per block, the
epilogues' loads (:meth:`FusedContext.epilogue_bytes` over the block tile), the tail's, the outputs once."""
from __future__ import annotations

import math

from ...backend.lower.builder import KernelBuilder
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import FusedContext, SharedStager, bind_names, kernel_params, kernel_parts
from ...backend.lower.tiled import staged_box
from ...ir.diagnostics import CompileError
from ...ir.texpr.nodes import AxisRef, Num
from ...ir.types import itemsize
from . import wgmma
from .tail import RowTail


class MlpSide(FusedContext):
    """One GEMM with its register epilogue, its stores going to ``outs`` (FusedContext's epilogue)."""

    def __init__(self, members: list, args: list, outs: list):
        ComputeContext.__init__(self, members[0])
        self.members, self.args, self.outs, self.kernel = members, args, outs, None
        bind_names(self, members[0], args)
        self.tails = []
        for m in members[1:]:
            mctx = ComputeContext(m)
            bind_names(mctx, m, args)
            self.tails.append(mctx)
        self.out_name = "out_unused"
        self.layouts, self.staged, self.cfg = {}, {}, None
        self.a_acc, self.b_acc = _operands(self)

    def stage_epilogue(self, kb, cfg: dict, origin: dict, threads: int, tag: str = "") -> None:
        """FusedContext's staging, its shared arrays named per side (two epilogues share the kernel)."""
        super().stage_epilogue(kb, cfg, origin, threads, prefix=f"m{tag}")

    def tile_cfg(self, rows: int) -> dict:
        """The block tile of this side, as the tiled kernel's config (for the epilogue's staging plan)."""
        block = {a: 1 for a in self.out_axes}
        block[self.out_axes[-2]] = rows
        block[self.out_axes[-1]] = self.out_shape[-1]
        return {"block": block, "thread": {a: 1 for a in self.out_axes}, "step": {self.reduce_axes[0]: 1}}


def _identity(mctx, acc) -> bool:
    """``acc`` reads at the member's own coordinates (leading size-1 dims at 0), ``X[0, m, n]``."""
    if len(acc.indices) != len(mctx.out_axes):
        return False
    return all((isinstance(ix, AxisRef) and ix.name == a) or (isinstance(ix, Num) and ix.value == 0 and n == 1)
               for ix, a, n in zip(acc.indices, mctx.out_axes, mctx.out_shape))


def _operands(side) -> tuple:
    """``(A access, B access)`` of ``Y[.., m, n] += A[.., m, k] * B[k, n]``."""
    accs = side.distinct_accesses()
    k = side.reduce_axes[0]
    b = [a for a in accs if len(a.indices) == 2 and getattr(a.indices[1], "name", None) == side.out_axes[-1]]
    a = [x for x in accs if x not in b]
    if len(a) != 1 or len(b) != 1 or getattr(b[0].indices[0], "name", None) != k:
        raise CompileError("lower-cuda: an mlp kernel's GEMM must read A[.., m, k] and B[k, n]")
    return a[0], b[0]


class MlpContext:
    """The two sides of an ``mlp`` kernel and its config ``{rows, threads}``."""

    def __init__(self, members: list, args: list, outs: list, split: int, kernel=None, tail: int | None = None):
        self.kernel = kernel
        self.args, self.outs = args, outs
        tail = len(members) if tail is None else tail
        # split = 0: one GEMM (with a row tail), its A rows staged in k_h as the second GEMM's are.
        self.s1 = MlpSide(members[:split], args, [members[split - 1].result]) if split else None
        side2 = members[split:tail]
        self.yval = side2[-1].result
        s2outs = [v for v in outs if any(v is m.result for m in side2)]
        # With a row tail, side 2's last value also goes to shared memory (k_h) for the tail to read.
        self.y_smem = tail < len(members) and not any(v is self.yval for v in s2outs)
        self.s2 = MlpSide(side2, args, s2outs + ([self.yval] if self.y_smem else []))
        self.R = self.s2.out_shape[-2]
        self.K1 = self.s1.extents[self.s1.reduce_axes[0]] if self.s1 else 0
        self.N1 = self.s1.out_shape[-1] if self.s1 else self.s2.extents[self.s2.reduce_axes[0]]
        self.N2 = self.s2.out_shape[-1]
        self.tail = None
        if tail < len(members):
            self.tail = RowTail(members[tail:], args, outs, self.yval, self.R, self.N2)

    def blocks(self, cfg: dict) -> int:
        return -(-self.R // cfg["rows"])

    def accumulators(self, cfg: dict) -> int:
        t = cfg["threads"]
        return cfg["rows"] * max(-(-self.N1 // t) if self.s1 else 1, -(-self.N2 // t))

    def width(self) -> int:
        """Columns of ``k_h``: the hidden (or the one GEMM's A rows), or what a row tail keeps, if more."""
        return max(self.N1, self.tail.columns() if self.tail is not None else 0)

    def reused_rows(self, cfg: dict) -> list:
        """``[(member i, ctx, access)]`` of side 2's epilogue reading G1's ``A`` at its own coordinates (the
        residual of a transformer FFN): served from the rows already staged in ``k_x``, not loaded again."""
        s1, s2 = self.s1, self.s2
        if s1 is None or self.K1 != self.N2:
            return []
        aval = s1.members[0].operands[s1.input_of(s1.a_acc)]
        found = []
        for i, (m, mctx) in enumerate(zip(s2.members[1:], s2.tails), start=1):
            for acc in mctx.distinct_accesses():
                if m.operands[mctx.input_of(acc)] is aval and _identity(mctx, acc):
                    found.append((i, mctx, acc))
        return found

    def smem_bytes(self, cfg: dict) -> int:
        rows = cfg["rows"]
        total = 4 * rows * (self.K1 + self.width())
        for side in (self.s1, self.s2):
            if side is not None:
                total += sum(p[4] for p in side.staging_plan(side.tile_cfg(rows)))
        return total + (self.tail.smem_bytes(rows) if self.tail is not None else 0)

    def fits(self) -> bool:
        """A row tail reads only what it can find on chip (:meth:`RowTail.legal`)."""
        return self.tail is None or self.tail.legal()

    def bytes(self, cfg: dict) -> int:
        """Global bytes of the kernel under ``cfg``, as emitted."""
        rows, nb = cfg["rows"], self.blocks(cfg)
        s1, s2 = self.s1, self.s2
        first = s1 if s1 is not None else s2
        a_size = itemsize(first.dtypes[first.input_of(first.a_acc)])
        total = self.R * (self.K1 if s1 is not None else self.N1) * a_size
        total += nb * self.N1 * self.N2 * itemsize(s2.dtypes[s2.input_of(s2.b_acc)])
        if s1 is not None:
            total += nb * self.K1 * self.N1 * itemsize(s1.dtypes[s1.input_of(s1.b_acc)])
            hval = s1.outs[0]
            # Side 1's epilogue loads only (its result goes to shared memory).
            total += s1.epilogue_bytes(s1.tile_cfg(rows)) + s1.out_bytes() - math.prod(hval.type.shape) * 4
        total += s2.epilogue_bytes(s2.tile_cfg(rows)) + s2.out_bytes()
        reused = self.reused_rows(cfg)
        total -= len(reused) * self.R * self.N2 * a_size   # those per-element loads are not emitted
        if self.y_smem:
            total -= self.R * self.N2 * 4   # y goes to shared memory only
        return total + (self.tail.bytes(nb) if self.tail is not None else 0)

    def params(self) -> list:
        return kernel_params(self.kernel)


def lower_fused_mlp(kernel, name: str, spec):
    """The ``kernel.func`` of an ``mlp`` ``tile.kernel`` on ``spec`` (the module's target)."""
    members, args, outs = kernel_parts(kernel)
    tile = kernel.attributes.get("tile") or {}
    if any(k not in tile for k in ("rows", "threads", "split")):
        raise CompileError.at("lower-cuda: mlp tile.kernel needs tile = {rows, threads, split}", kernel.loc)
    cfg = {k: int(tile[k]) for k in ("rows", "threads", "split")}
    ctx = MlpContext(members, args, outs, cfg["split"], kernel, int(tile.get("tail", len(members))))
    if tile.get("engine") == wgmma.ENGINE:   # f16/bf16 on sm_90: the wgmma kernel (fusion/mlp/wgmma.py)
        return wgmma.lower(ctx, kernel, name, tile, spec)
    if not ctx.fits():
        raise CompileError.at("lower-cuda: mlp kernel's row tail does not fit its hidden tile", kernel.loc)
    if ctx.smem_bytes(cfg) > spec.smem_per_block_bytes:
        raise CompileError.at(f"lower-cuda: mlp kernel needs {ctx.smem_bytes(cfg)} B of shared memory", kernel.loc)
    kb = KernelBuilder()
    rows, T = cfg["rows"], cfg["threads"]
    s1, s2 = ctx.s1, ctx.s2
    if s1 is not None:
        kb.shared("k_x", "f32", [rows, ctx.K1])
    kb.shared("k_h", "f32", [rows, ctx.width()])
    kb.let("k_row0", "i32", f"blockIdx.x * {rows}")
    # 1. this block's rows of X (A[.., m, k] is row-major over (m, k): the leading dims are size 1); with
    # one GEMM they are its A rows, staged where the hidden would be.
    first = s1 if s1 is not None else s2
    _stage_rows(kb, first.names[first.a_acc.tensor], "k_x" if s1 is not None else "k_h",
                ctx.K1 if s1 is not None else ctx.N1, rows, T, ctx.R)
    if s1 is not None:
        _gemm(kb, s1, "k_x", ctx.K1, ctx.N1, rows, T, ctx.R,
              lambda r, col: SharedStager(kb, f"k_h[{r}][{col}]"))
        kb.barrier()
    for i, mctx, acc in ctx.reused_rows(cfg):   # read k_x[m - k_row0][n] through the staged-access path
        sizes = {a: b for a, b in zip(mctx.out_axes, [1] * (len(mctx.out_axes) - 2) + [rows, ctx.N2])}
        morigin = {a: "0" for a in mctx.out_axes}
        morigin[mctx.out_axes[-2]] = "k_row0"
        s2.staged[(i, mctx.access_key(acc))] = ("k_x", staged_box(mctx, acc, sizes), morigin)
    sink = {f"out{j}": [("global", f"out{_index(outs, v)}")] for j, v in enumerate(s2.outs) if v is not ctx.yval}
    y = [j for j, v in enumerate(s2.outs) if v is ctx.yval][0]
    sink[f"out{y}"] = ([("smem", "k_h[k_r][k_n]")] if ctx.tail is not None else []) + (
        [] if ctx.y_smem else [("global", f"out{_index(outs, ctx.yval)}")])
    _gemm(kb, s2, "k_h", ctx.N1, ctx.N2, rows, T, ctx.R, lambda r, col: _Sink(kb, sink),
          rewrite=ctx.tail is not None)
    if ctx.tail is not None:
        kb.barrier()
        ctx.tail.emit(kb, rows, T)
    func = kb.func(name, [ctx.blocks(cfg)], [T], ctx.params(), kind="mlp",
                   flops=(s1.flops() if s1 is not None else 0) + s2.flops(), bytes_modelled=ctx.bytes(cfg),
                   config=dict(cfg))
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in members)
    return func


def _stage_rows(kb, src: str, dst: str, K: int, rows: int, T: int, R: int) -> None:
    """Copy rows ``[k_row0, k_row0 + rows)`` of the row-major ``src`` (``K`` columns) into ``dst``."""
    # Rolled (``unroll=1``): nvcc unrolling this short strided loop spilled registers in ptxas.
    with kb.loop("k_e", "threadIdx.x", rows * K, step=T, unroll=1):
        kb.let("k_er", "i32", f"k_e / {K}")
        kb.let("k_ek", "i32", f"k_e % {K}")
        kb.load(f"{dst}[k_er][k_ek]", "f32", src, f"(k_row0 + k_er) * {K} + k_ek", f"k_row0 + k_er < {R}", "0.0f")
    kb.barrier()


def _index(outs: list, v) -> int:
    return next(j for j, o in enumerate(outs) if o is v)


class _Sink:
    """A kernel builder whose stores to side-local ``out<j>`` go where ``table`` says: kernel outputs
    (``global``, renamed to the kernel's own out index) and/or a shared-memory slot (``smem``)."""

    def __init__(self, kb, table: dict):
        self._kb, self._table = kb, table

    def __getattr__(self, name):
        return getattr(self._kb, name)

    def store(self, buffer, index, value, pred=None, vec=1):
        for kind, target in self._table[buffer]:
            if kind == "smem":
                self._kb.assign(target, value)
            else:
                self._kb.store(target, index, value, pred)


def _gemm(kb, side, src: str, K: int, N: int, rows: int, T: int, R: int, sink, rewrite: bool = False) -> None:
    """``rows × N`` outputs of ``src[rows][K] · B[K, N]`` with the side's epilogue, columns per thread.
    ``rewrite``: the epilogue overwrites ``src`` (a row tail reuses it), so every thread finishes reading
    it first."""
    J = -(-N // T)
    tag = "1" if src == "k_x" else "2"
    origin = {a: "0" for a in side.out_axes}
    origin[side.out_axes[-2]] = "k_row0"
    side.stage_epilogue(kb, side.tile_cfg(rows), origin, T, tag)
    acc = f"k_acc{tag}"
    kb.local(acc, "f32", [rows * J], init="0.0f")
    b_name = side.names[side.b_acc.tensor]
    # The reduce loop is unrolled by 8: left to nvcc, rolled, or unrolled by 2 or 4, ptxas spilled a few bytes
    # on some shapes of a random sweep (2, 1 and 3 of 163 kernels for 1, 2, 4); by 8 none of them did.
    with kb.loop("k_k", 0, K, unroll=8):
        with kb.loop("k_j", 0, J, unroll=-1):
            kb.let("k_n", "i32", f"threadIdx.x + k_j * {T}")
            kb.local("k_w", "f32")
            # Each weight element is loaded by exactly one thread of the block, once.
            kb.load("k_w", "f32", b_name, f"k_k * {N} + k_n", f"k_n < {N}" if N % T else None, "0.0f")
            with kb.loop("k_r", 0, rows, unroll=-1):
                kb.assign(f"{acc}[k_j * {rows} + k_r]", f"{acc}[k_j * {rows} + k_r] + {src}[k_r][k_k] * k_w")
    if rewrite:
        kb.barrier()
    with kb.loop("k_j", 0, J, unroll=-1):
        with kb.loop("k_r", 0, rows, unroll=-1):
            kb.let("k_n", "i32", f"threadIdx.x + k_j * {T}")
            kb.let("k_m", "i32", "k_row0 + k_r")
            for a in side.out_axes[:-2]:
                kb.let(side.axis_var(a), side.idx_t, "0")
            kb.let(side.axis_var(side.out_axes[-2]), side.idx_t, "k_m")
            kb.let(side.axis_var(side.out_axes[-1]), side.idx_t, "k_n")
            preds = [f"k_m < {R}"] + ([f"k_n < {N}"] if N % T else [])
            side.store_result(sink("k_r", "k_n"), f"k_m * {N} + k_n", f"{acc}[k_j * {rows} + k_r]",
                              " && ".join(preds))
