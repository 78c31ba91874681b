"""Attention kept on chip (welder ``kind = "attention"``, matched by :mod:`.match`): one block per
(batch·head, tile of ``tq`` query rows), ``threads`` threads.

1. The block's Q tile is staged in shared memory; outside operands of the score ops that depend on neither the
   query nor the key axis (a scale) are loaded once into a shared slot.
2. For each chunk of ``bk`` keys: the K chunk (and each key-indexed operand, e.g. a broadcast mask row) is
   staged; every thread computes score elements ``Q_i · K_j`` and applies the elementwise ops after QKᵀ in
   registers, then writes the result into the ``tq × Sk`` score tile in shared memory.
3. The row section (softmax: max, exp, sum, div) runs one warp per row, in place on the score tile: full-row
   ops rewrite their columns, reductions fold the row with warp shuffles into a register every lane holds.
4. For each chunk of ``bk`` keys the V chunk is staged and each thread accumulates its ``tq·Dv / threads``
   outputs; O is stored once (through the head-merge transpose when one ends the group).

With ``cluster`` > 1 in the tile (sm_90), that many consecutive blocks, query tiles of one head, form a
thread-block cluster: each loads a share of every K and V chunk and copies the rest from its peers' shared
memory, so K and V are read from global memory once per cluster instead of once per block.

Only Q, K, V, the outside operands and O touch global memory; the score matrix never does. Member expressions
are rendered from their tensor expressions (``ComputeContext``); nothing here knows op names."""
from __future__ import annotations

import math

from ...analysis.welder.graph import TileGraph, layout_map
from ...backend.cstyle import CUDA
from ...backend.lower import cluster
from ...backend.lower.builder import KernelBuilder, linearize, unflatten
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import bind_names, kernel_params, kernel_parts
from ...ir.diagnostics import CompileError
from . import match as A


class _Attention:
    def __init__(self, kernel):
        self.members, self.args, self.outs = kernel_parts(kernel)
        self.graph = TileGraph(kernel.regions[0].block)
        att = A.match(self.graph, 0)
        if att is None or att.members != list(range(len(self.members))):
            raise CompileError.at("lower-cuda: tile.kernel is not an attention group", kernel.loc)
        self.att = att
        tile = kernel.attributes.get("tile") or {}
        self.tq, self.bk, self.threads = int(tile["tq"]), int(tile["bk"]), int(tile["threads"])
        self.cluster = int(tile.get("cluster", 1))
        self.ctxs = []
        for m in self.members:
            c = ComputeContext(m)
            bind_names(c, m, self.args)
            self.ctxs.append(c)
        self.value = {id(n.op.result): n.index for n in self.graph.nodes}
        self.bytes = 0
        self.unclustered = 0   # K/V bytes without the cluster (the rest is the same)

    def axes(self, i: int, col: str, extra: dict | None = None):
        """C names of member ``i``'s axes: batch dims by position, the query row ``k_qi``, the key ``col``."""
        c, nb = self.ctxs[i], len(self.att.batch)
        table = {a: f"k_b{p}" for p, a in enumerate(c.out_axes[:nb])}
        table[c.out_axes[nb]] = "k_qi"
        if c.combiner is None:
            table[c.out_axes[nb + 1]] = col if self.members[i].result.type.shape[-1] == self.att.sk else "0"
        else:
            table[c.out_axes[nb + 1]] = "0"
            table[c.reduce_axes[0]] = col
        table.update(extra or {})
        return lambda a: table[a]


def lower_fused_attention(kernel, name: str):
    """The ``kernel.func`` of an attention ``tile.kernel``."""
    r = _Attention(kernel)
    engine = (kernel.attributes.get("tile") or {}).get("engine")
    if engine in A.ENGINES:
        return A.ENGINES[engine].lower(r, kernel, name, A.outside_accesses(r.graph, r.att))
    att, tq, bk, T = r.att, r.tq, r.bk, r.threads
    sk, d, dv, nb = att.sk, att.d, att.dv, len(att.batch)
    nq = att.sq // tq
    blocks = math.prod(att.batch) * nq
    if r.cluster < 1 or r.cluster > 8 or nq % r.cluster:
        raise CompileError.at(f"lower-cuda: attention cluster {r.cluster} must be 1..8 and divide the {nq} "
                              "query tiles of a head", kernel.loc)
    outside = A.outside_accesses(r.graph, att)
    staged = {(m, repr(acc.indices), acc.tensor): n for n, (m, acc, w) in enumerate(outside) if w == "j"}
    slots = {(m, repr(acc.indices), acc.tensor): n for n, (m, acc, w) in enumerate(outside) if w == ""}
    kb = KernelBuilder()
    kb.shared("k_sq", "f32", [tq * d])
    kb.shared("k_ss", "f32", [tq * sk])
    kb.shared("k_skv", "f32", [bk * max(d, dv)])
    for n in sorted(set(staged.values())):
        kb.shared(f"k_sj{n}", "f32", [bk])
    kb.shared("k_sc", "f32", [max(1, len(slots))])
    kb.let("k_blk", "i32", "blockIdx.x")
    unflatten(kb, "k_blk / " + str(nq) if nq > 1 else "k_blk", [f"k_b{p}" for p in range(nb)], list(att.batch))
    kb.let("k_q0", "i32", f"(k_blk % {nq}) * {tq}" if nq > 1 else "0")
    if r.cluster > 1:   # the cluster's blocks are query tiles of one head (consecutive, nq divisible)
        cluster.declare(kb, T, r.cluster)
    _load_scalars(r, kb, outside, slots, blocks)
    _stage_q(r, kb, blocks)
    with kb.loop("k_kc", 0, sk, step=bk):
        _stage_chunk(r, kb, r.att.qk, att.k_acc, d, "k_kd", blocks)
        for n, (m, acc, w) in enumerate(outside):
            if w != "j":
                continue
            with kb.loop("k_t", "threadIdx.x", bk, step=T):
                kb.let("k_kj", "i32", "k_kc + k_t")
                r.ctxs[m].load_access(kb, acc, f"k_x{n}", r.axes(m, "k_kj"))
                kb.assign(f"k_sj{n}[k_t]", f"k_x{n}")
            r.bytes += blocks * sk * 4
        _share_chunk(r, kb, d)
        _scores(r, kb, staged, slots)
        kb.barrier()
    _softmax(r, kb)
    kb.barrier()
    _pv(r, kb, blocks)
    func = kb.func(name, [blocks], [T], kernel_params(kernel), kind="attention", flops=sum(c.flops() for c in r.ctxs),
                   bytes_modelled=r.bytes, cluster=r.cluster if r.cluster > 1 else None,
                   bytes_unclustered=r.bytes - r.unclustered // r.cluster + r.unclustered if r.cluster > 1 else None)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in r.members)
    return func


def _load_scalars(r, kb, outside, slots, blocks) -> None:
    """Outside operands that index neither queries nor keys: one shared slot each, loaded by thread 0."""
    if not slots:
        return
    with kb.cond("threadIdx.x == 0"):
        for m, acc, w in outside:
            n = slots.get((m, repr(acc.indices), acc.tensor))
            if n is None:
                continue
            r.ctxs[m].load_access(kb, acc, f"k_c{n}", r.axes(m, "0", {r.ctxs[m].out_axes[-2]: "0"}))
            kb.assign(f"k_sc[{n}]", f"k_c{n}")
            r.bytes += blocks * 4
    kb.barrier()


def _stage_q(r, kb, blocks) -> None:
    att, tq, d, T = r.att, r.tq, r.att.d, r.threads
    c = r.ctxs[att.qk]
    dax = c.reduce_axes[0]
    with kb.loop("k_t", "threadIdx.x", tq * d, step=T):
        kb.let("k_qi", "i32", f"k_q0 + k_t / {d}")
        kb.let("k_qd", "i32", f"k_t % {d}")
        c.load_access(kb, att.q_acc, "k_x", r.axes(att.qk, "0", {dax: "k_qd"}))
        kb.assign("k_sq[k_t]", "k_x")
    r.bytes += blocks * tq * d * 4
    kb.barrier()


def _stage_chunk(r, kb, member: int, acc, width: int, dvar: str, blocks: int) -> None:
    """Copy keys ``[k_kc, k_kc + bk)`` of K (or V) into ``k_skv`` as ``[key][width]``."""
    c, T, bk = r.ctxs[member], r.threads, r.bk
    if member == r.att.qk:
        extra = {c.out_axes[-1]: "k_kj", c.reduce_axes[0]: dvar}
        col = "k_kj"
    else:   # ·V: its reduce axis is the key, its last output axis the value dim
        extra = {c.reduce_axes[0]: "k_kj", c.out_axes[-1]: dvar}
        col = "0"
    # In a cluster each block loads every cluster-th run of T elements; _share_chunk copies in the rest.
    start, step = cluster.share_loop(T) if r.cluster > 1 else ("threadIdx.x", T)
    with kb.loop("k_t", start, bk * width, step=step):
        kb.let("k_kj", "i32", f"k_kc + k_t / {width}")
        kb.let(dvar, "i32", f"k_t % {width}")
        c.load_access(kb, acc, "k_x", r.axes(member, col, extra))
        kb.assign("k_skv[k_t]", "k_x")
    r.bytes += blocks // r.cluster * r.att.sk * width * 4
    r.unclustered += blocks * r.att.sk * width * 4


def _share_chunk(r, kb, width: int) -> None:
    """The barrier after staging a K/V chunk: in a cluster, the copy of the peers' runs (``cluster.py``)."""
    shared = [("k_skv", r.bk * width, None)] if r.cluster > 1 else []
    cluster.share_barriers(kb, shared, r.threads, r.cluster)


def _scores(r, kb, staged, slots) -> None:
    """Score elements of this chunk: the dot product, then the elementwise ops after it, into ``k_ss``."""
    att, tq, bk, d, T = r.att, r.tq, r.bk, r.att.d, r.threads
    with kb.loop("k_t", "threadIdx.x", tq * bk, step=T):
        kb.let("k_ti", "i32", f"k_t / {bk}")
        kb.let("k_tj", "i32", f"k_t % {bk}")
        kb.let("k_qi", "i32", "k_q0 + k_ti")
        kb.let("k_kj", "i32", "k_kc + k_tj")
        kb.local("k_dot", "f32", init="0.0f")
        with kb.loop("k_dd", 0, d, unroll=4 if d % 4 == 0 else 0):
            kb.assign("k_dot", f"k_dot + k_sq[k_ti * {d} + k_dd] * k_skv[k_tj * {d} + k_dd]")
        vals = {id(r.members[att.qk].result): "k_dot"}
        for m in att.pre:
            c, op = r.ctxs[m], r.members[m]
            axis = r.axes(m, "k_kj")
            names = {}
            for j, acc in enumerate(c.distinct_accesses()):
                v = op.operands[c.input_of(acc)]
                key = (m, repr(acc.indices), acc.tensor)
                if id(v) in vals:
                    names[c.access_key(acc)] = vals[id(v)]
                elif key in staged:
                    names[c.access_key(acc)] = f"k_sj{staged[key]}[k_tj]"
                elif key in slots:
                    names[c.access_key(acc)] = f"k_sc[{slots[key]}]"
                else:
                    names[c.access_key(acc)] = f"k_e{m}_{j}"
                    c.load_access(kb, acc, f"k_e{m}_{j}", axis)
                    r.bytes += math.prod(att.batch) * att.sq * att.sk * 4
            kb.let(f"k_e{m}", "f32", c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], axis)(c.expr.body))
            vals[id(op.result)] = f"k_e{m}"
        last = att.pre[-1] if att.pre else att.qk
        kb.assign(f"k_ss[k_ti * {att.sk} + k_kj]", vals[id(r.members[last].result)])


def _softmax(r, kb) -> None:
    """The row section, one warp per row, in place on ``k_ss``; row scalars in registers (``k_r<i>``)."""
    att, tq, sk, T = r.att, r.tq, r.att.sk, r.threads
    warps = T // 32
    with kb.loop("k_ti", "threadIdx.x >> 5", tq, step=warps):
        kb.let("k_qi", "i32", "k_q0 + k_ti")
        row = "k_ss[k_ti * " + str(sk) + " + k_kj]"
        inside = {att.pre[-1] if att.pre else att.qk} | set(att.rows)
        for m in att.rows:
            c, op = r.ctxs[m], r.members[m]
            full = op.result.type.shape[-1] == sk
            col = "k_kj" if (full or c.combiner is not None) else "0"

            def names_for(col=col, c=c, op=op, m=m):
                names = {}
                for j, acc in enumerate(c.distinct_accesses()):
                    v = op.operands[c.input_of(acc)]
                    p = r.value.get(id(v))
                    if p in inside:
                        full_p = r.members[p].result.type.shape[-1] == sk
                        names[c.access_key(acc)] = row if full_p else f"k_r{p}"
                    else:
                        names[c.access_key(acc)] = f"k_e{m}_{j}"
                        c.load_access(kb, acc, f"k_e{m}_{j}", r.axes(m, col))
                        r.bytes += math.prod(att.batch) * att.sq * sk * 4
                return names

            if c.combiner is not None:
                kb.local(f"k_r{m}", c.acc_dtype, init=c.identity())
                with kb.loop("k_kj", "threadIdx.x & 31", sk, step=32):
                    names = names_for()
                    body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axes(m, col))(c.expr.body)
                    kb.assign(f"k_r{m}", CUDA.combine(c.combiner, c.acc_dtype, f"k_r{m}", body))
                kb.warp_reduce(f"k_r{m}", c.combiner, c.acc_dtype)
            elif full:
                with kb.loop("k_kj", "threadIdx.x & 31", sk, step=32):
                    names = names_for()
                    body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axes(m, col))(c.expr.body)
                    kb.assign(row, body)
            else:   # a row scalar from row scalars: every lane computes it
                names = names_for()
                body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], r.axes(m, col))(c.expr.body)
                kb.let(f"k_r{m}", "f32", body)


def _pv(r, kb, blocks) -> None:
    """O = P·V over key chunks; ``tq·Dv / threads`` accumulators per thread; O stored once."""
    att, tq, bk, dv, T, sk = r.att, r.tq, r.bk, r.att.dv, r.threads, r.att.sk
    per = tq * dv // T
    kb.local("k_o", "f32", [per], init="0.0f")
    with kb.loop("k_kc", 0, sk, step=bk):
        _stage_chunk(r, kb, att.pv, att.v_acc, dv, "k_ve", blocks)
        _share_chunk(r, kb, dv)
        with kb.loop("k_n", 0, per, unroll=-1):
            kb.let("k_p", "i32", f"threadIdx.x + k_n * {T}")
            kb.let("k_ti", "i32", f"k_p / {dv}")
            kb.let("k_te", "i32", f"k_p % {dv}")
            with kb.loop("k_tj", 0, bk, unroll=4 if bk % 4 == 0 else 0):
                kb.assign("k_o[k_n]", f"k_o[k_n] + k_ss[k_ti * {sk} + k_kc + k_tj] * k_skv[k_tj * {dv} + k_te]")
        kb.barrier()
    with kb.loop("k_n", 0, per, unroll=-1):
        kb.let("k_p", "i32", f"threadIdx.x + k_n * {T}")
        kb.let("k_qi", "i32", f"k_q0 + k_p / {dv}")
        kb.let("k_te", "i32", f"k_p % {dv}")
        coords = [f"k_b{p}" for p in range(len(att.batch))] + ["k_qi", "k_te"]
        pv_shape = list(r.members[att.pv].result.type.shape)
        if att.post:
            post = r.members[att.post[-1]]
            where = layout_map(r.graph.nodes[att.post[-1]])
            out = []
            for dim, coef, ext in where:
                x = coords[dim] if coef == 1 else f"({coords[dim]}) / {coef}"
                out.append("0" if ext == 1 else x if coef * ext == pv_shape[dim] else f"({x}) % {ext}")
            index = linearize(out, list(post.result.type.shape))
        else:
            index = linearize(coords, pv_shape)
        kb.store("out0", index, "k_o[k_n]")
    r.bytes += blocks * tq * dv * 4
