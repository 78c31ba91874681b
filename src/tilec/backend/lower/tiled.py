"""The generic tiled kernel for contractions, convolutions and pooling.

A block computes a ``block`` tile of the output axes; each thread a ``thread`` tile of it, its elements
strided across the block (coalesced stores, conflict-free shared reads). The reduce axes are walked in
``step`` tiles: per step every access's box (its affine image of the tile, so conv halos are included) is
staged cooperatively in shared memory, out-of-bounds elements filled with ``pad``; a barrier; every thread
folds its register tile from shared memory; a barrier. The epilogue stores the register tile.

The config is a Roller ``rtile`` dict ``{"block": {axis: n}, "thread": {axis: n}, "step": {axis: n}}``;
missing axes take 1 (block, thread) and the full extent clipped to 16 (step); with no ``rtile`` at all a
default is constructed (:func:`default_config`).

An optional ``"cluster": {axis: C}`` (sm_90 thread-block clusters, chosen by Welder's re-tiling) runs the
grid in clusters of ``C`` blocks that are neighbours along ``axis``. An access whose box does not move
along ``axis`` (a matmul's A rows for a cluster along N) is the same box in every block of the cluster, so
it is *multicast*: each block loads only its share of it from global memory (interleaved runs of
``threads`` elements), a cluster barrier, each block copies its peers' shares out of their shared memory
(distributed shared memory, ``tl_cluster_map``), a second cluster barrier (no block may overwrite its share
with the next step before every peer has copied it). The box is then read from global memory once per
cluster instead of once per block.
"""
from __future__ import annotations

import contextlib
import math

from ...analysis.cost_model import staged_dims as cost_staged_dims
from ...analysis.index_map import grid_footprint
from ...ir.kexpr import Binary, BlockIdx, Const, Index, ThreadIdx, Var, as_kexpr, render
from ...ir.types import itemsize
from ..cstyle import CUDA
from . import cluster
from .builder import KernelBuilder, linear_index, strides_of, unflatten
from .cexpr import affine, affine_text
from .context import ComputeContext
from .unroll import unroll_flags



def tileable(ctx: ComputeContext) -> bool:
    """Tiled kernels need a reduction whose every input index is affine in the axes."""
    return ctx.combiner is not None and all(affine(ix) is not None for a in ctx.expr.accesses for ix in a.indices)


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def default_config(ctx: ComputeContext) -> dict:
    """A sane rTile without Roller: ~1024 outputs per block (32 per axis, innermost first), ~256 threads,
    a reduce step of about 32 points (innermost reduce axis first)."""
    block, budget = {}, 1024
    for a in reversed(ctx.out_axes):
        b = min(_pow2_ceil(ctx.extents[a]), 32, budget)
        block[a] = b
        budget //= b
    for a in reversed(ctx.out_axes):   # hand what is left to the innermost axes
        grow = min(_pow2_ceil(ctx.extents[a]) // block[a], budget)
        if grow > 1:
            block[a] *= grow
            budget //= grow
    thread = {a: 1 for a in ctx.out_axes}
    while math.prod(block.values()) // math.prod(thread.values()) > 256:
        a = max(ctx.out_axes, key=lambda x: (block[x] // thread[x], ctx.out_axes.index(x)))
        thread[a] *= 2
    step, budget = {}, 32
    for r in reversed(ctx.reduce_axes):
        s = max(1, min(ctx.extents[r], budget))
        step[r] = s
        budget = max(1, budget // s)
    cfg = {"block": {a: block[a] for a in ctx.out_axes}, "thread": thread, "step": step}
    while staged_bytes(ctx, cfg) > ctx.smem_limit:
        big = max(cfg["step"], key=lambda r: cfg["step"][r], default=None)
        if big is None or cfg["step"][big] == 1:
            break
        cfg["step"][big] = -(-cfg["step"][big] // 2)
    # Still too big with unit steps: a strided conv's halo grows with the output tile (a stride-32 patchify
    # conv stages 1 + 32*(b-1) input rows per b outputs), so halve the block axis that saves the most.
    while staged_bytes(ctx, cfg) > ctx.smem_limit:
        def halved(a):
            trial = {**cfg, "block": {**cfg["block"], a: cfg["block"][a] // 2}}
            return staged_bytes(ctx, trial)
        shrinkable = [a for a in ctx.out_axes if cfg["block"][a] > 1]
        if not shrinkable:
            break
        a = min(shrinkable, key=lambda x: (halved(x), -cfg["block"][x]))
        cfg["block"][a] //= 2
        cfg["thread"][a] = min(cfg["thread"][a], cfg["block"][a])
    return cfg


def resolve_config(ctx: ComputeContext, rtile: dict | None) -> dict:
    if not rtile:
        return default_config(ctx)
    block = {a: int(rtile.get("block", {}).get(a, 1)) for a in ctx.out_axes}
    thread = {a: int(rtile.get("thread", {}).get(a, 1)) for a in ctx.out_axes}
    step = {r: int(rtile.get("step", {}).get(r, min(16, ctx.extents[r]))) for r in ctx.reduce_axes}
    for a in ctx.out_axes:
        if block[a] < 1 or thread[a] < 1 or block[a] % thread[a]:
            raise ctx.fail(f"rtile: block tile {block[a]} of axis '{a}' is not a multiple of its thread tile "
                           f"{thread[a]}")
    if any(s < 1 for s in step.values()):
        raise ctx.fail("rtile: reduce steps must be positive")
    cfg = {"block": block, "thread": thread, "step": step}
    threads = math.prod(block[a] // thread[a] for a in ctx.out_axes)
    if threads > ctx.spec.max_threads_per_block:
        raise ctx.fail(f"rtile needs {threads} threads per block (at most {ctx.spec.max_threads_per_block})")
    cluster = {a: int(c) for a, c in (rtile.get("cluster") or {}).items() if int(c) > 1}
    if cluster:
        a, c = next(iter(cluster.items()))
        most = ctx.spec.max_cluster_blocks   # the portable cluster size on sm_90; 1: the arch has none
        if len(cluster) > 1 or a not in ctx.out_axes or c > most or -(-ctx.extents[a] // block[a]) % c:
            raise ctx.fail(f"rtile: cluster {cluster} must be one output axis whose block count it divides, "
                           f"at most {most} blocks on {ctx.spec.arch}")
        cfg["cluster"] = cluster
    return cfg


def cluster_of(cfg: dict) -> tuple:
    """``(axis, blocks)`` of the config's cluster, ``(None, 1)`` without one."""
    for a, c in (cfg.get("cluster") or {}).items():
        return a, c
    return None, 1


def multicast(ctx: ComputeContext, acc, axis) -> bool:
    """Whether ``acc``'s box is loaded from global memory and the same in every block of a cluster along
    ``axis`` (no index moves with it). A box the staging hook computes (a conv chain's P tile) is not."""
    computes = getattr(ctx, "computes", None)
    if axis is None or (computes is not None and computes(acc)):
        return False
    return all(coefs.get(axis, 0) == 0 for coefs, _ in access_affines(ctx, acc))


def shares_along(ctx: ComputeContext, axis, cfg: dict | None = None) -> bool:
    """Whether a cluster along ``axis`` would share anything under ``cfg``: one of ``ctx``'s boxes, or one
    the staging hook loads itself (a conv chain's P operands, ``fused_conv.py``)."""
    inner = getattr(ctx, "hook_shares", None)
    return any(multicast(ctx, acc, axis) for acc in ctx.distinct_accesses()) or bool(inner and inner(axis, cfg))


def _sizes(ctx: ComputeContext, cfg: dict) -> dict:
    sizes = dict(cfg["block"])
    sizes.update(cfg["step"])
    return sizes


def access_affines(ctx, access) -> list:
    """``affine`` of each index of ``access``, cached on ``ctx`` by the access's identity (the entry keeps
    it alive): welder's conv-chain search boxes the same few accesses under thousands of tile sizes."""
    cache = ctx.__dict__.setdefault("_box_affines", {})
    hit = cache.get(id(access))
    if hit is None or hit[0] is not access:
        hit = cache[id(access)] = (access, [affine(ix) for ix in access.indices])
    return hit[1]


def staged_box(ctx: ComputeContext, access, sizes: dict) -> list:
    """Per input dim: (coefs, const, box extent, offset) where lo = const + Σ c·origin + offset. The coefs
    dicts are shared between calls (``access_affines``): read them, never change them."""
    out = []
    for aff in access_affines(ctx, access):
        coefs, const = aff
        extent = 1 + sum(abs(c) * (sizes[a] - 1) for a, c in coefs.items())
        offset = sum(c * (sizes[a] - 1) for a, c in coefs.items() if c < 0)
        out.append((coefs, const, extent, offset))
    return out


def staged_dims(box: list) -> tuple:
    """(rows, padded cols) of the staged box: rows padded by one element against bank conflicts (the rule
    Roller counts shared memory by, ``cost_model.staged_dims``)."""
    return cost_staged_dims([b[2] for b in box])


def staged_bytes(ctx: ComputeContext, cfg: dict) -> int:
    sizes = _sizes(ctx, cfg)
    total = 0
    for acc in ctx.distinct_accesses():
        rows, cols = staged_dims(staged_box(ctx, acc, sizes))
        total += rows * cols * itemsize(ctx.load_dtype(acc))
    return total


def lower_tiled(ctx: ComputeContext, name: str, rtile: dict | None):
    """The ``kernel.func`` of the generic tiled kernel for ``ctx`` with tile config ``rtile``."""
    cfg = resolve_config(ctx, rtile)
    B, T, S = cfg["block"], cfg["thread"], cfg["step"]
    E = ctx.extents
    sizes = _sizes(ctx, cfg)
    if staged_bytes(ctx, cfg) > ctx.smem_limit:
        raise ctx.fail(f"tile config needs {staged_bytes(ctx, cfg)} B of shared memory (limit {ctx.smem_limit})")
    outs, reds = ctx.out_axes, ctx.reduce_axes
    nblk = {a: -(-E[a] // B[a]) for a in outs}
    tdim = {a: B[a] // T[a] for a in outs}
    threads = math.prod(tdim.values())
    it = ctx.idx_t
    kb = KernelBuilder()
    accesses = ctx.distinct_accesses()
    boxes = [staged_box(ctx, acc, sizes) for acc in accesses]
    for j, (acc, box) in enumerate(zip(accesses, boxes)):
        kb.shared(f"k_s{j}", ctx.load_dtype(acc), staged_dims(box))
    origin = {a: f"k_o_{_n(a)}" for a in outs + reds}
    cax, csize = cluster_of(cfg)
    # A cluster is csize consecutive blockIdx.x, so its axis varies fastest in the block index.
    border = [a for a in outs if a != cax] + ([cax] if cax else [])
    unflatten(kb, BlockIdx(), [f"k_b_{_n(a)}" for a in border], [nblk[a] for a in border], it)
    shared_boxes = [j for j, acc in enumerate(accesses) if csize > 1 and multicast(ctx, acc, cax)]
    clustered = csize > 1 and shares_along(ctx, cax, cfg)
    if clustered:
        cluster.declare(kb, threads, csize)
    for a in outs:
        kb.let(origin[a], it, Binary("*", Var(f"k_b_{_n(a)}"), Const(B[a])))
    unflatten(kb, ThreadIdx(), [f"k_c_{_n(a)}" for a in outs], [tdim[a] for a in outs], "i32")
    nacc = math.prod(T.values())
    kb.local("k_acc", ctx.acc_dtype, [nacc], init=ctx.identity())

    # The k-stage loops stay rolled where the target bounds unrolled bodies (AMD, unroll.py): AMDGPU's LLVM
    # unrolls a short constant trip count by itself and keeps every stage's loads live (an 8-thread FC kernel
    # of 16 stages took 256 VGPRs, and spilled inside an rProgram's 256-register budget).
    stage_unroll = 1 if getattr(ctx.spec, "unrolled_body_regs", 0) else 0

    def reduce_loops(axes):
        if axes:
            with kb.loop(origin[axes[0]], 0, E[axes[0]], step=S[axes[0]], unroll=stage_unroll):
                reduce_loops(axes[1:])
            return
        # A conv chain (fused_conv.py) computes its producer's tile here instead of loading it.
        stage = getattr(ctx, "stage_access", None)
        for j, (acc, box) in enumerate(zip(accesses, boxes)):
            if j in shared_boxes:   # this block's share; the peers load the rest
                stage_share(ctx, kb, j, acc, box, origin, threads)
            elif stage is None or not stage(kb, j, acc, box, origin, threads):
                stage_box(ctx, kb, j, acc, box, origin, threads)
        cluster.share_barriers(kb, [shared_entry(j, boxes[j]) for j in shared_boxes], threads, csize)
        _compute(ctx, kb, cfg, accesses, boxes, origin, tdim)
        kb.barrier()

    reduce_loops(reds)
    if hasattr(ctx, "stage_epilogue"):   # welder's fused epilogue: broadcast operands staged once per block
        ctx.stage_epilogue(kb, cfg, origin, threads)
    _epilogue(ctx, kb, cfg, origin, tdim)
    if hasattr(ctx, "finish_epilogue"):   # a conv chain's pooling tail (fused_pool.py) reduces the tile
        ctx.finish_epilogue(kb, cfg, origin, threads)
    plain = {k: v for k, v in cfg.items() if k != "cluster"}
    return kb.func(name, [math.prod(nblk.values())], [threads], ctx.params(), kind="tiled",
                   cluster=csize if clustered else None, flops=ctx.flops(),
                   bytes_modelled=modelled_bytes(ctx, cfg),
                   bytes_unclustered=modelled_bytes(ctx, plain) if clustered else None,
                   config={k: dict(v) for k, v in cfg.items()})


def _n(axis: str) -> str:
    return ComputeContext.axis_var(axis)[3:]


def _all(conds) -> object:
    """``c0 && c1 && ...`` of condition trees, or None for none."""
    out = None
    for c in conds:
        out = c if out is None else Binary("&&", out, c)
    return out


def _slot(name: str, rows, col):
    """``name[rows][col]``: an element of a 2-D staged array."""
    return Index(Index(Var(name), as_kexpr(rows)), as_kexpr(col))


def _local_index(names, dims):
    """The tile-local row index of coordinates ``names`` over ``dims`` (their last dim is the column)."""
    return linear_index(names[:-1], dims[:-1]) if len(dims) > 1 else Const(0)


def stage_box(ctx, kb, j, acc, box, origin, threads, start=ThreadIdx(), step=None, own=None) -> None:
    """Cooperatively copy access ``j``'s box for the current block and step into ``k_s{j}`` (elements
    ``start``, ``start + step``, ...: a multicast box's share is every ``csize``-th run of ``threads``;
    ``own(names)``, when given, is the condition on the box coordinates ``names`` under which this block
    loads an element: a halo-shared box's own part, ``cluster.py``)."""
    shape = ctx.shapes[ctx.input_of(acc)]
    dims = [b[2] for b in box]
    n = math.prod(dims)
    dtype = ctx.load_dtype(acc)
    with kb.loop("k_e", start, n, step=step or threads), contextlib.ExitStack() as stack:
        names = [f"k_d{i}" for i in range(len(dims))]
        unflatten(kb, "k_e", names, dims, "i32")
        if own is not None:
            stack.enter_context(kb.cond(own(names)))
        gidx, preds = [], []
        for i, ((coefs, const, _, offset), dim) in enumerate(zip(box, shape)):
            lo = affine_text(coefs, const + offset, lambda a: origin[a])
            g = Var(f"k_g{i}")
            kb.let(g.name, ctx.idx_t, Binary("+", as_kexpr(lo), Var(names[i])) if lo != "0" else names[i])
            gidx.append(g)
            preds += [Binary(">=", g, Const(0)), Binary("<", g, Const(dim))]
        target = _slot(f"k_s{j}", _local_index(names, dims), names[-1] if dims else 0)
        kb.load(render(target), dtype, ctx.names[acc.tensor], linear_index(gidx, shape), _all(preds),
                ctx.literal(ctx.pad, dtype))


def stage_share(ctx, kb, j, acc, box, origin, threads) -> None:
    """Stage this block's share of multicast box ``j`` (``cluster.py``'s runs of ``threads`` elements)."""
    start, step = cluster.share_loop(threads)
    stage_box(ctx, kb, j, acc, box, origin, threads, start=start, step=step)


def shared_entry(j, box) -> tuple:
    """``cluster.share_barriers``' description of the staged array ``k_s{j}`` of ``box``."""
    return f"k_s{j}", [b[2] for b in box], staged_dims(box)[1]


def _compute(ctx, kb, cfg, accesses, boxes, origin, tdim) -> None:
    B, T, S, E = cfg["block"], cfg["thread"], cfg["step"], ctx.extents
    sizes = _sizes(ctx, cfg)
    reds, outs = ctx.reduce_axes, ctx.out_axes
    local = {a: ctx.axis_var(a) for a in outs + reds}
    smem = {}
    for j, (acc, box) in enumerate(zip(accesses, boxes)):
        dims = [b[2] for b in box]
        loc = [affine_text(coefs, -offset, lambda a: local[a]) for coefs, _, _, offset in box]
        smem[ctx.access_key(acc)] = render(_slot(f"k_s{j}", _local_index(loc, dims), loc[-1] if loc else 0))
    # Accesses read shared memory at tile-local coordinates; an axis the body uses as a value (CumSum's
    # ``select(r >= d1, ...)``) is the global coordinate.
    glob = {a: f"({origin[a]} + {local[a]})" for a in outs + reds}
    body = ctx.renderer(lambda a: smem[ctx.access_key(a)], lambda a: glob[a])(ctx.expr.body)

    points = math.prod(T[a] for a in outs)
    unroll = dict(zip(reds, unroll_flags(ctx.spec, [S[r] for r in reds], points, points,
                                         lambda s: -1 if s <= 16 else 0)))

    def red_loops(axes):
        if not axes:
            out_loops(outs, [])
            return
        r = axes[0]
        with kb.loop(local[r], 0, S[r], unroll=unroll[r]):
            guard = Binary("<", Binary("+", Var(origin[r]), Var(local[r])), Const(E[r])) if E[r] % S[r] else ""
            with kb.cond(guard):
                red_loops(axes[1:])

    def out_loops(axes, idx):
        if not axes:
            acc = render(Index(Var("k_acc"), linear_index([f"k_i_{_n(a)}" for a in outs], [T[a] for a in outs])))
            kb.assign(acc, CUDA.combine(ctx.combiner, ctx.acc_dtype, acc, body))
            return
        a = axes[0]
        with kb.loop(f"k_i_{_n(a)}", 0, T[a], unroll=-1):
            kb.let(local[a], "i32", _thread_coord(a, T, tdim))
            out_loops(axes[1:], idx)

    red_loops(reds)
    del sizes, B


def _epilogue(ctx, kb, cfg, origin, tdim) -> None:
    B, T, E = cfg["block"], cfg["thread"], ctx.extents
    outs = ctx.out_axes

    def loops(axes):
        if axes:
            a = axes[0]
            with kb.loop(f"k_i_{_n(a)}", 0, T[a], unroll=-1):
                kb.let(ctx.axis_var(a), ctx.idx_t, _thread_coord(a, T, tdim, Var(origin[a])))
                loops(axes[1:])
            return
        slot = Index(Var("k_acc"), linear_index([f"k_i_{_n(a)}" for a in outs], [T[a] for a in outs]))
        pred = _all(Binary("<", Var(ctx.axis_var(a)), Const(E[a])) for a in outs if E[a] % B[a])
        # The context's hook takes text: fused contexts (fusion/*) extend it with C strings.
        ctx.store_result(kb, render(linear_index([ctx.axis_var(a) for a in outs], ctx.out_shape)), render(slot),
                         render(pred) if pred is not None else None)

    loops(outs)


def _thread_coord(a, T, tdim, base=None):
    """A thread's coordinate along output axis ``a`` in its block tile (``base +`` it, when given): its
    column, plus ``k_i * tdim`` when each thread holds several elements along ``a``."""
    c = Var(f"k_c_{_n(a)}") if base is None else Binary("+", base, Var(f"k_c_{_n(a)}"))
    return Binary("+", c, Binary("*", Var(f"k_i_{_n(a)}"), Const(tdim[a]))) if T[a] > 1 else c


def modelled_bytes(ctx: ComputeContext, cfg: dict) -> int:
    """Global bytes the kernel moves: per block and reduce step, the in-bounds elements of every staged box
    (Roller's exact per-axis sum over the tile grid, :func:`~tilec.analysis.index_map.grid_footprint`),
    plus the output once."""
    sizes = _sizes(ctx, cfg)
    cax, csize = cluster_of(cfg)
    total = 0
    for acc in ctx.distinct_accesses():
        i = ctx.input_of(acc)
        nbytes = grid_footprint(ctx.expr, acc, sizes, ctx.extents, ctx.shapes[i]) * itemsize(ctx.dtypes[i])
        # A multicast box is the same in the csize blocks of a cluster and loaded once by them together.
        total += nbytes // csize if csize > 1 and multicast(ctx, acc, cax) else nbytes
    return total + ctx.out_bytes()


__all__ = ["cluster_of", "default_config", "lower_tiled", "modelled_bytes", "multicast", "resolve_config",
           "shared_entry", "shares_along", "stage_share", "tileable", "strides_of"]
