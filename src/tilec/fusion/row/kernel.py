"""The shared-level row kernel (welder ``kind = "row"``): softmax / layernorm style chains over rows.

One block per row, ``threads`` threads striding over its columns. Members run in order:
- a full-row elementwise member computes its columns;
- a reduction folds the row (strided partials, warp shuffles, one shared round) into a row scalar;
- a row-scalar elementwise member is computed by thread 0.
Intermediates that later members read are staged in one shared arena (rows of ``length`` floats or
scalars, placed by the best-fit plan of ``analysis/welder/smem.py``, the :class:`.match.RowPlan` that the
matcher gives again for the kernel's body on the module's target), as is an outside row read by several
members; a barrier follows every write. Only the kernel's outputs go to global memory."""
from __future__ import annotations

import math

from ...analysis.welder.graph import TileGraph
from ...backend.cstyle import CUDA, compute_dtype
from ...backend.lower.builder import KernelBuilder, unflatten
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import bind_names, kernel_params, kernel_parts
from ...ir.diagnostics import CompileError
from ...ir.types import itemsize
from .match import row_group


class _Row:
    def __init__(self, kernel, spec):
        self.members, self.args, self.outs = kernel_parts(kernel)
        body = kernel.regions[0].block
        self.graph = TileGraph(body)
        group = row_group(self.graph, list(range(len(self.graph.nodes))), spec)
        if group is None:
            raise CompileError.at("lower-cuda: tile.kernel is not a legal row group", kernel.loc)
        self.group = group
        self.length, self.threads = group.plan.length, group.plan.threads
        self.rows_dims, self.offsets = group.plan.rows_dims, group.plan.offsets
        self.ctxs = []
        for m in self.members:
            c = ComputeContext(m)
            bind_names(c, m, self.args)
            self.ctxs.append(c)
        self.bytes = 0

    def axis_names(self, i: int, col: str):
        c = self.ctxs[i]
        table = {a: f"k_r{d}" for d, a in enumerate(c.out_axes[:-1])}
        if c.combiner is None:
            table[c.out_axes[-1]] = col if self.members[i].result.type.shape[-1] == self.length else "0"
        else:
            table[c.out_axes[-1]] = "0"
            table[c.reduce_axes[0]] = col
        return lambda a: table[a]

    def value_names(self, kb, i: int, col: str, prefix: str, trips: int) -> dict:
        """Names of every access of member ``i``: shared slots for internal and staged rows, loads else."""
        c, m = self.ctxs[i], self.members[i]
        index = {id(n.op.result): n.index for n in self.graph.nodes}
        names = {}
        for j, acc in enumerate(c.distinct_accesses()):
            v = m.operands[c.input_of(acc)]
            if id(v) in index:
                p = index[id(v)]
                off = self.offsets[("m", p)] // 4
                full = self.members[p].result.type.shape[-1] == self.length
                names[c.access_key(acc)] = f"k_sm[{off} + {col}]" if full else f"k_sm[{off}]"
            elif ("x", id(v)) in self.offsets and _row_access(c, acc, col, self.axis_names(i, col)):
                names[c.access_key(acc)] = f"k_sm[{self.offsets[('x', id(v))] // 4} + {col}]"
            else:
                names[c.access_key(acc)] = f"{prefix}_{j}"
                c.load_access(kb, acc, f"{prefix}_{j}", self.axis_names(i, col))
                self.bytes += trips * itemsize(v.type.dtype)
        return names

    def store_outputs(self, kb, i: int, value: str, index: str) -> None:
        for j, v in enumerate(self.outs):
            if v is self.members[i].result:
                kb.store(f"out{j}", index, value)
                self.bytes += math.prod(v.type.shape) * itemsize(v.type.dtype)

    def used_inside(self, i: int) -> bool:
        return ("m", i) in self.offsets


def _row_access(c, acc, col, axis) -> bool:
    """The access reads the row at the block's row and column ``col`` (what staging put in shared)."""
    last = acc.indices[-1]
    return getattr(last, "name", None) is not None and axis(last.name) == col


def lower_fused_row(kernel, name: str, spec):
    """The ``kernel.func`` of a shared-level row ``tile.kernel`` on ``spec`` (the module's target)."""
    r = _Row(kernel, spec)
    rows, L, T = math.prod(r.rows_dims), r.length, r.threads
    warps = T // spec.warp_size
    kb = KernelBuilder()
    arena = r.group.smem - 4 * warps
    kb.shared("k_sm", "f32", [max(1, arena // 4)])
    if warps > 1:
        kb.shared("k_red", "f32", [warps])
    kb.let("k_row", "i32", "blockIdx.x")
    unflatten(kb, "k_row", [f"k_r{d}" for d in range(len(r.rows_dims))], list(r.rows_dims))
    _stage_rows(r, kb, L, T, rows)
    for i, (m, c) in enumerate(zip(r.members, r.ctxs)):
        full = m.result.type.shape[-1] == L
        dtype = compute_dtype(m.result.type.dtype)
        if c.combiner is not None:
            kb.local(f"k_acc{i}", c.acc_dtype, init=c.identity())
            with kb.loop("k_col", "threadIdx.x", L, step=T):
                names = r.value_names(kb, i, "k_col", f"k_v{i}", rows * L)
                body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axis_names(i, "k_col"))(c.expr.body)
                kb.assign(f"k_acc{i}", CUDA.combine(c.combiner, c.acc_dtype, f"k_acc{i}", body))
            _block_reduce(kb, c, f"k_acc{i}", warps, spec.warp_size)
            with kb.cond("threadIdx.x == 0"):
                if r.used_inside(i):
                    kb.assign(f"k_sm[{r.offsets[('m', i)] // 4}]", f"k_acc{i}")
                r.store_outputs(kb, i, f"k_acc{i}", "k_row")
        elif full:
            with kb.loop("k_col", "threadIdx.x", L, step=T):
                names = r.value_names(kb, i, "k_col", f"k_v{i}", rows * L)
                body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axis_names(i, "k_col"))(c.expr.body)
                kb.let(f"k_y{i}", dtype, body)
                if r.used_inside(i):
                    kb.assign(f"k_sm[{r.offsets[('m', i)] // 4} + k_col]", f"k_y{i}")
                r.store_outputs(kb, i, f"k_y{i}", f"k_row * {L} + k_col")
        else:
            with kb.cond("threadIdx.x == 0"):
                names = r.value_names(kb, i, "0", f"k_v{i}", rows)
                body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axis_names(i, "0"))(c.expr.body)
                kb.let(f"k_y{i}", dtype, body)
                if r.used_inside(i):
                    kb.assign(f"k_sm[{r.offsets[('m', i)] // 4}]", f"k_y{i}")
                r.store_outputs(kb, i, f"k_y{i}", "k_row")
        if r.used_inside(i):
            kb.barrier()
    func = kb.func(name, [rows], [T], kernel_params(kernel), kind="reduce", flops=sum(c.flops() for c in r.ctxs),
                   bytes_modelled=r.bytes)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in r.members)
    return func


def _stage_rows(r: _Row, kb, L: int, T: int, rows: int) -> None:
    """Copy each outside row that several members read into its shared slot, once."""
    staged = [k for k in r.offsets if k[0] == "x"]
    if not staged:
        return
    with kb.loop("k_col", "threadIdx.x", L, step=T):
        for n, key in enumerate(sorted(staged, key=lambda k: r.offsets[k])):
            i, acc = _first_row_reader(r, key[1])
            c = r.ctxs[i]
            c.load_access(kb, acc, f"k_x{n}", r.axis_names(i, "k_col"))
            kb.assign(f"k_sm[{r.offsets[key] // 4} + k_col]", f"k_x{n}")
            r.bytes += rows * L * itemsize(r.members[i].operands[c.input_of(acc)].type.dtype)
    kb.barrier()


def _first_row_reader(r: _Row, value_id: int) -> tuple:
    for i, (m, c) in enumerate(zip(r.members, r.ctxs)):
        for acc in c.distinct_accesses():
            if id(m.operands[c.input_of(acc)]) == value_id and _row_access(c, acc, "k_col", r.axis_names(i, "k_col")):
                return i, acc
    raise CompileError("lower-cuda: staged row has no reader")


def _block_reduce(kb, c, acc: str, warps: int, warp: int) -> None:
    """``acc`` combined over the block: shuffles within each warp of ``warp`` lanes (the target's), then the
    warps' partials through ``k_red`` by the first warp."""
    kb.warp_reduce(acc, c.combiner, c.acc_dtype, width=warp)
    if warps > 1:
        with kb.cond(f"(threadIdx.x & {warp - 1}) == 0"):
            kb.assign(f"k_red[threadIdx.x >> {warp.bit_length() - 1}]", acc)
        kb.barrier()
        with kb.cond(f"threadIdx.x < {warp}"):
            kb.assign(acc, f"threadIdx.x < {warps} ? k_red[threadIdx.x] : {c.identity()}")
            kb.warp_reduce(acc, c.combiner, c.acc_dtype, width=1 << max(0, (warps - 1).bit_length()))
        kb.barrier()
