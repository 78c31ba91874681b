"""Shared-level conv chains (welder ``kind = "conv_chain"``): a producer convolution P with its elementwise
epilogue (bias, BN, ReLU/Clip) fused into a consumer reduction C (a convolution or a pooling window) with
its own epilogue, the intermediate tile kept in shared memory (DESIGN §4, "shared").

C is lowered by the generic tiled kernel (``backend/lower/tiled.py``): per block tile and reduce step, every access of
C is staged in shared memory and folded from there. The one access that reads P's chain is not loaded
from global memory: :meth:`ChainContext.stage_access` *computes* that box instead (the P tile, whose halo
overlaps the neighbouring blocks' and is recomputed by each, Welder's trade of a little recompute for no
global round trip). The P tile is computed the way the tiled kernel computes C: P's own reduce axes are
walked in ``pstep`` steps, P's operand boxes staged in shared memory, each thread folding the P-tile
points ``threadIdx.x + i · threads``. P's epilogue then runs per point; points outside P's result (C's
padding, the overhang of edge tiles) hold C's ``pad`` instead. Only C's chain writes global memory.

Outside epilogue operands (per-channel BN scale/shift, on either side) whose box over the tile holds at
most half its points are staged once per tile, like ``backend/lower/fused.py`` does; other outside operands are loaded
per in-bounds point. :meth:`ChainContext.chain_bytes` counts every load exactly as emitted (the in-bounds
part of every staged box over the grid of blocks and steps), which is what the emulator measures.

The kernel's ``tile`` attribute holds the chain config: C's ``block``/``thread``/``step`` and P's ``pstep``."""
from __future__ import annotations

import math

import numpy as np

from ...analysis.index_map import grid_footprint, grid_sum
from ...backend.cstyle import CUDA, compute_dtype
from ...backend.lower import cluster
from ...backend.lower.builder import linearize, unflatten
from ...backend.lower.cexpr import affine, affine_text
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import FusedContext, bind_names, kernel_parts
from ...backend.lower.unroll import unroll_flags
from ...backend.lower.tiled import (access_affines, staged_box, staged_bytes, staged_dims, stage_box, cluster_of,
                                    lower_tiled, multicast, shared_entry, stage_share)
from ...ir.diagnostics import CompileError
from ...ir.types import itemsize

# The chain config's parts (the kernel's ``tile`` attribute); ``cluster`` is optional.
CHAIN_KEYS = ("block", "thread", "step", "pstep")


def chain_config(tile: dict) -> dict:
    """The chain config from a kernel's ``tile`` attribute: C's block/thread/step, P's pstep, and the
    thread-block cluster if there is one."""
    cfg = {k: {a: int(v) for a, v in dict(tile[k]).items()} for k in CHAIN_KEYS}
    if tile.get("cluster"):
        cfg["cluster"] = {a: int(v) for a, v in dict(tile["cluster"]).items()}
    return cfg


def set_chain_bytes(func, ctx, cfg: dict) -> None:
    """The chain kernel's modelled bytes, and without its cluster when it has one (Rammer's twin)."""
    func.attributes["bytes_modelled"] = ctx.chain_bytes(cfg)
    if func.attributes.get("cluster", 1) > 1:
        func.attributes["bytes_unclustered"] = ctx.chain_bytes({k: v for k, v in cfg.items() if k != "cluster"})


def chain_attr(cfg: dict) -> dict:
    """The inverse of :func:`chain_config`: the config's parts as a ``tile`` attribute."""
    return {k: dict(cfg[k]) for k in CHAIN_KEYS + ("cluster",) if cfg.get(k)}


def _half_box(mctx, acc, sizes: dict) -> list | None:
    """The box of an affine access over a tile of ``sizes`` when it holds at most half the tile's points
    (a broadcast operand worth staging once per tile), else None."""
    if any(affine(ix) is None for ix in acc.indices):
        return None
    box = staged_box(mctx, acc, sizes)
    return box if math.prod(b[2] for b in box) * 2 <= math.prod(sizes[a] for a in mctx.out_axes) else None


def grid_footprint_of(ctx, acc, sizes: dict) -> int:
    """Bytes the tiled kernel's staging of ``acc`` loads over the whole grid (as ``tiled.modelled_bytes``)."""
    # Memoized on ctx: a pure function of the access and the tile sizes of the expr's axes (the only sizes
    # grid_footprint reads), and the chain search (match.choose) repeats them a lot.
    key = (ctx.access_key(acc), tuple(sizes[a] for a in ctx.expr.axes))
    memo = ctx.__dict__.setdefault("_footprints", {})
    if key not in memo:
        i = ctx.input_of(acc)
        memo[key] = grid_footprint(ctx.expr, acc, sizes, ctx.extents, ctx.shapes[i]) * itemsize(ctx.dtypes[i])
    return memo[key]


# Shared memos of ChainContexts (:meth:`ChainContext._memo`), by core: the newest SHARED_CORES kept.
_SHARED: dict = {}
SHARED_CORES = 64


def core_key(ops: list) -> str:
    """A structural key of ``ops`` (P's side and C's reduction): every op's name, attributes, operand and
    result types, and which operands are the same value (a member's result or the same outside value)."""
    ids: dict = {}

    def vid(v) -> int:
        return ids.setdefault(id(v), len(ids))
    parts = []
    for op in ops:
        operands = [(vid(v), tuple(v.type.shape), v.type.dtype) for v in op.operands]
        results = [(vid(r), tuple(r.type.shape), r.type.dtype) for r in op.results]
        parts.append(repr((op.name, sorted(op.attributes.items()), operands, results)))
    return "\n".join(parts)


def shared_memos(ops: list) -> dict:
    """The memo dict shared by every ChainContext whose core is ``ops`` (:func:`core_key`)."""
    key = core_key(ops)
    memo = _SHARED.pop(key, None)
    if memo is None:
        memo = {}
        while len(_SHARED) >= SHARED_CORES:
            _SHARED.pop(next(iter(_SHARED)))
    _SHARED[key] = memo   # most recently used last
    return memo


def clear_shared_memos() -> None:
    """Forget every shared memo (tests compare against contexts that compute everything afresh)."""
    _SHARED.clear()


def _inbounds(los: list, exts: list, shape) -> np.ndarray:
    """Elements of the boxes ``[lo, lo + ext)`` (``lo`` arrays broadcast over a grid) inside ``shape``."""
    count = np.int64(1)
    for lo, ext, dim in zip(los, exts, shape):
        count = count * np.maximum(np.minimum(lo + ext, dim) - np.maximum(lo, 0), 0)   # not np.clip: slower
    return count


class ChainContext(FusedContext):
    """C's context inside a conv chain: FusedContext's epilogue over the C members, plus the P tile."""

    def __init__(self, members: list, args: list, outs: list, kernel=None):
        nonelem = [i for i, m in enumerate(members) if ComputeContext(m).combiner is not None]
        if len(nonelem) != 2 or nonelem[0] != 0:
            raise CompileError("lower-cuda: a conv chain needs exactly two reductions, the first one first")
        c = nonelem[1]
        ComputeContext.__init__(self, members[c])
        self.kernel, self.args, self.outs = kernel, args, outs
        self.members = members[c:]
        self.pmembers = members[:c]
        bind_names(self, self.members[0], args)
        self.tails = []
        for m in self.members[1:]:
            mctx = ComputeContext(m)
            bind_names(mctx, m, args)
            self.tails.append(mctx)
        self.ptails = []
        for m in self.pmembers[1:]:
            mctx = ComputeContext(m)
            bind_names(mctx, m, args)
            self.ptails.append(mctx)
        self.p = ComputeContext(self.pmembers[0])
        bind_names(self.p, self.pmembers[0], args)
        self.out_name = "out_unused"
        self.layouts, self.staged, self.cfg = {}, {}, None
        pval = self.pmembers[-1].result
        reads = [a for a in self.distinct_accesses() if self.members[0].operands[self.input_of(a)] is pval]
        if len(reads) != 1:
            raise CompileError("lower-cuda: a conv chain's consumer must read its producer through one access")
        self.p_acc = reads[0]
        self.p_key = self.access_key(self.p_acc)
        self.cfg_for_stage = None   # the chain config, set before lowering (it has P's steps)
        # The memos of what depends on P's side and C's reduction only (not on C's epilogue), shared with
        # every other ChainContext of the same core: Welder's search asks the chain search for [P.., C],
        # [P.., C, bias], [P.., C, bias, relu], ... and identical blocks of a network repeat the core. A
        # subclass may count differently, so it keeps its own.
        self._shared = shared_memos(self.pmembers + [self.members[0]]) if type(self) is ChainContext else {}
        self._footprints = self._shared.setdefault("footprints", {})   # grid_footprint_of's memo

    def outside(self, value) -> bool:
        return any(value is a for a in self.args)

    # --- thread-block clusters (tiled.py) --------------------------------------------------------------------
    def computes(self, acc) -> bool:
        """The P tile is computed by each block, never loaded, so never multicast."""
        return self.access_key(acc) == self.p_key

    def _p_moves(self, pacc, axis) -> list:
        """Per dim of P's operand box ``pacc``: the terms by which its origin moves per block along C's
        ``axis`` (P's origin along each P output axis is C's box of P's tile along that dim)."""
        cbox = access_affines(self, self.p_acc)
        outs = self.p.out_axes
        return [[c * cbox[outs.index(b)][0].get(axis, 0) for b, c in coefs.items() if b in outs]
                for coefs, _ in access_affines(self.p, pacc)]

    def p_multicast(self, pacc, axis) -> bool:
        """Whether P's operand box ``pacc`` is the same in every block of a cluster along C's ``axis``: none
        of the P output axes it indexes has a C box that moves with ``axis``."""
        # Memoised per access and axis: it does not depend on the config, and the chain search asks for
        # every config and cluster option.
        memo = self.__dict__.setdefault("_p_multicasts", {})
        key = (self.p.access_key(pacc), axis)
        if key not in memo:
            memo[key] = axis is not None and not any(t for terms in self._p_moves(pacc, axis) for t in terms)
        return memo[key]

    def c_multicast(self, acc, axis) -> bool:
        """:func:`~tilec.backend.lower.tiled.multicast` of one of C's accesses, memoised per access and axis
        (it does not depend on the config)."""
        memo = self.__dict__.setdefault("_c_multicasts", {})
        key = (self.access_key(acc), axis)
        if key not in memo:
            memo[key] = multicast(self, acc, axis)
        return memo[key]

    def p_halo(self, pacc, axis, cfg: dict, csize: int):
        """The :class:`~.cluster.Halo` of P's operand box ``pacc`` under a cluster of ``csize`` blocks along
        C's ``axis`` (P's input rows of a chain tiled along its rows: each block's box is its neighbour's
        shifted by the block tile), or None when the box does not slide along exactly one dim with an
        overlap only the direct neighbours share."""
        if axis is None or csize < 2:
            return None
        shifts = [sum(terms) * cfg["block"][axis] for terms in self._p_moves(pacc, axis)]
        moving = [d for d, sh in enumerate(shifts) if sh]
        if len(moving) != 1:
            return None
        d = moving[0]
        extent = staged_box(self.p, pacc, self.p_sizes(cfg))[d][2]
        halo = cluster.Halo(d, shifts[d], extent, csize)
        return halo if halo.valid() else None

    def hook_shares(self, axis, cfg: dict | None = None) -> bool:
        # Lowering passes the tiled kernel's config, which has no P steps: the chain's own config has them.
        cfg = self.cfg_for_stage or cfg
        return any(self.p_multicast(pa, axis) or (cfg is not None and self.p_halo(pa, axis, cfg, 2))
                   for pa in self.p.distinct_accesses())

    # --- the P tile ------------------------------------------------------------------------------------------
    def p_box(self, cfg: dict) -> list:
        key = (tuple(cfg["block"].items()), tuple(cfg["step"].items()))
        return self._memo("p_box", key, lambda: self._p_box(cfg), shared=True)

    def _p_box(self, cfg: dict) -> list:
        sizes = dict(cfg["block"])
        sizes.update(cfg["step"])
        return staged_box(self, self.p_acc, sizes)

    def p_sizes(self, cfg: dict) -> dict:
        """P's staging sizes: the P tile (one extent per P output axis) and P's reduce steps."""
        sizes = {a: b[2] for a, b in zip(self.p.out_axes, self.p_box(cfg))}
        sizes.update(cfg["pstep"])
        return sizes

    def _memo(self, name: str, key, make, shared: bool = False):
        """``make()`` cached under ``(name, key)``: the plans below depend only on parts of the config, and
        the chain search asks for them for every (block, step, pstep) it tries. Callers get a fresh list.
        ``shared``: the value depends on the core only (P's side and C's reduction, :func:`shared_memos`)."""
        memo = self._shared.setdefault("plans", {}) if shared else self.__dict__.setdefault("_plans", {})
        if (name, key) not in memo:
            memo[name, key] = make()
        value = memo[name, key]
        return list(value) if isinstance(value, list) else value

    def p_epilogue_plan(self, cfg: dict) -> list:
        """``[(member i, ctx, access, box or None)]`` of P's epilogue's outside accesses (box: staged)."""
        # p_box reads only the block and the C steps.
        key = (tuple(cfg["block"].items()), tuple(cfg["step"].items()))
        return self._memo("p_epilogue", key, lambda: self._p_epilogue_plan(cfg))

    def _p_epilogue_plan(self, cfg: dict) -> list:
        tile = {a: b[2] for a, b in zip(self.p.out_axes, self.p_box(cfg))}
        plan = []
        for i, (m, mctx) in enumerate(zip(self.pmembers[1:], self.ptails), start=1):
            sizes = {a: tile[b] for a, b in zip(mctx.out_axes, self.p.out_axes)}
            for acc in mctx.distinct_accesses():
                if self.outside(m.operands[mctx.input_of(acc)]):
                    plan.append((i, mctx, acc, _half_box(mctx, acc, sizes)))
        return plan

    def staging_plan(self, cfg: dict) -> list:
        """C's epilogue: stage every outside affine access holding at most half the tile (no budget here:
        the chooser rejects configs whose whole shared memory does not fit)."""
        return self._memo("staging", tuple(cfg["block"].items()), lambda: self._staging_plan(cfg))

    def _staging_plan(self, cfg: dict) -> list:
        plan = []
        for i, (m, mctx) in enumerate(zip(self.members[1:], self.tails), start=1):
            sizes = {a: cfg["block"][b] for a, b in zip(mctx.out_axes, self.out_axes)}
            for acc in mctx.distinct_accesses():
                if self.outside(m.operands[mctx.input_of(acc)]):
                    box = _half_box(mctx, acc, sizes)
                    if box is not None:
                        rows, cols = staged_dims(box)
                        plan.append((i, mctx, acc, box, rows * cols * itemsize(mctx.load_dtype(acc))))
        return plan

    def smem_bytes(self, cfg: dict) -> int:
        """Static shared memory of the whole kernel under ``cfg``: :meth:`smem_fixed` + :meth:`smem_p`."""
        return self.smem_fixed(cfg) + self.smem_p(cfg)

    def smem_fixed(self, cfg: dict) -> int:
        """The shared memory that does not depend on P's steps (C's staged boxes, P's and C's epilogues'): the
        chain search computes it once per block and C step, while it halves P's steps until the tile fits."""
        key = (tuple(cfg["block"].items()), tuple(cfg["step"].items()))
        total = self._memo("smem_core", key, lambda: self._smem_core(cfg), shared=True)
        return total + self._memo("smem_epilogue", key[0], lambda: sum(p[4] for p in self.staging_plan(cfg)))

    def smem_p(self, cfg: dict) -> int:
        """The shared memory of P's operand boxes under ``cfg`` (P's tile and P's steps)."""
        psizes = self.p_sizes(cfg)
        return self._memo("smem_p", tuple(psizes.items()), lambda: self._smem_p(psizes), shared=True)

    def _smem_p(self, psizes: dict) -> int:
        total = 0
        for acc in self.p.distinct_accesses():
            rows, cols = staged_dims(staged_box(self.p, acc, psizes))
            total += rows * cols * itemsize(self.p.load_dtype(acc))
        return total

    def _smem_core(self, cfg: dict) -> int:
        """C's staged boxes and P's epilogue's: what does not depend on C's epilogue."""
        total = staged_bytes(self, cfg)
        for i, mctx, acc, box in self.p_epilogue_plan(cfg):
            if box is not None:
                rows, cols = staged_dims(box)
                total += rows * cols * itemsize(mctx.load_dtype(acc))
        return total

    def epilogue_bytes(self, cfg: dict | None = None) -> int:
        # FusedContext's count reads only the block of a given config (staging_plan, _staged_bytes).
        if cfg is None:
            return super().epilogue_bytes(cfg)
        count = super().epilogue_bytes
        return self._memo("epilogue", tuple(cfg["block"].items()), lambda: count(cfg))

    def p_points_per_thread(self, cfg: dict, threads: int) -> int:
        return -(-math.prod(b[2] for b in self.p_box(cfg)) // threads)

    def stage_access(self, kb, j, acc, box, origin, threads) -> bool:
        """tiled.py's staging hook: compute the P tile into ``k_s{j}`` instead of loading it."""
        if self.access_key(acc) != self.p_key:
            return False
        p, cfg = self.p, self.cfg_for_stage
        cax, csize = cluster_of(cfg)
        it = self.idx_t
        dims = [b[2] for b in box]
        npts = math.prod(dims)
        nper = -(-npts // threads)
        lo = []
        for d, (coefs, const, _, offset) in enumerate(box):
            lo.append(kb.let(f"k_plo{d}", it, affine_text(coefs, const + offset, lambda a: origin[a])))
        porigin = {a: lo[d] for d, a in enumerate(p.out_axes)}
        porigin.update({r: f"k_po_{_n(r)}" for r in p.reduce_axes})
        psizes = self.p_sizes(cfg)
        paccs = p.distinct_accesses()
        pboxes = [staged_box(p, a, psizes) for a in paccs]
        for q, (pa, pb) in enumerate(zip(paccs, pboxes)):
            kb.shared(f"k_sp{q}", p.load_dtype(pa), staged_dims(pb))
        kb.local("k_pacc", p.acc_dtype, [nper], init=p.identity())
        local = {r: f"k_pl_{_n(r)}" for r in p.reduce_axes}
        for d, a in enumerate(p.out_axes):
            local[a] = f"k_pt{d}"

        def point(body_fn):
            with kb.loop("k_pi", 0, nper, unroll=-1):
                kb.let("k_pp", "i32", f"threadIdx.x + k_pi * {threads}")
                with kb.cond(f"k_pp < {npts}" if npts % threads else ""):
                    unflatten(kb, "k_pp", [f"k_pt{d}" for d in range(len(dims))], dims, "i32")
                    body_fn()

        def fold():
            refs = {}
            for q, (pa, pb) in enumerate(zip(paccs, pboxes)):
                loc = [affine_text(coefs, -offset, lambda a: local[a]) for coefs, _, _, offset in pb]
                pd = [b[2] for b in pb]
                rows = linearize(loc[:-1], pd[:-1]) if len(pd) > 1 else "0"
                refs[p.access_key(pa)] = f"k_sp{q}[{rows}][{loc[-1] if loc else '0'}]"
            # An axis used as a value (not an index of the P tile) is P's global coordinate.
            glob = {a: f"({porigin[a]} + {local[a]})" for a in local}
            body = p.renderer(lambda a: refs[p.access_key(a)], lambda a: glob[a])(p.expr.body)
            kb.assign("k_pacc[k_pi]", CUDA.combine(p.combiner, p.acc_dtype, "k_pacc[k_pi]", body))

        # Only the per-thread point loop must unroll (it indexes k_pacc); unrolling the reduce loops
        # around it too multiplies the body past what nvcc unrolls, and k_pacc goes to local memory.
        unroll = dict(zip(p.reduce_axes, unroll_flags(self.spec, [cfg["pstep"][r] for r in p.reduce_axes], nper,
                                                      nper, lambda s: -1 if s * nper <= 64 else 1)))

        def red_loops(axes):
            if not axes:
                point(fold)
                return
            r = axes[0]
            step, ext = cfg["pstep"][r], p.extents[r]
            with kb.loop(local[r], 0, step, unroll=unroll[r]):
                with kb.cond(f"{porigin[r]} + {local[r]} < {ext}" if ext % step else ""):
                    red_loops(axes[1:])

        def steps(axes):
            if axes:
                with kb.loop(porigin[axes[0]], 0, p.extents[axes[0]], step=cfg["pstep"][axes[0]]):
                    steps(axes[1:])
                return
            shared = []
            for q, (pa, pb) in enumerate(zip(paccs, pboxes)):
                halo = self.p_halo(pa, cax, cfg, csize)
                if csize > 1 and self.p_multicast(pa, cax):   # P's weights: one load per cluster
                    stage_share(p, kb, f"p{q}", pa, pb, porigin, threads)
                    shared.append(shared_entry(f"p{q}", pb))
                elif halo is not None:   # P's input rows: the core here, the halo from the neighbours
                    stage_box(p, kb, f"p{q}", pa, pb, porigin, threads, own=lambda n, h=halo: h.owned(n[h.dim]))
                    shared.append(shared_entry(f"p{q}", pb) + (halo,))
                else:
                    stage_box(p, kb, f"p{q}", pa, pb, porigin, threads)
            cluster.share_barriers(kb, shared, threads, csize)
            red_loops(list(p.reduce_axes))
            kb.barrier()

        steps(list(p.reduce_axes))
        staged = self._stage_p_epilogue(kb, cfg, lo, threads)
        pad = self.literal(self.pad, self.load_dtype(acc))

        def finish():
            gname = {a: f"k_pg{d}" for d, a in enumerate(p.out_axes)}
            for d, a in enumerate(p.out_axes):
                kb.let(gname[a], it, f"{lo[d]} + k_pt{d}")
            inb = " && ".join(f"{gname[a]} >= 0 && {gname[a]} < {n}" for a, n in zip(p.out_axes, p.out_shape))
            kb.local("k_pv", self.load_dtype(acc), init=pad)
            with kb.cond(inb):
                val = self._p_epilogue(kb, staged, lambda a: gname[a])
                kb.assign("k_pv", val)
            rows = linearize([f"k_pt{d}" for d in range(len(dims) - 1)], dims[:-1]) if len(dims) > 1 else "0"
            kb.assign(f"k_s{j}[{rows}][k_pt{len(dims) - 1}]", "k_pv")

        point(finish)
        return True

    def _stage_p_epilogue(self, kb, cfg, lo, threads) -> dict:
        staged = {}
        for n, (i, mctx, acc, box) in enumerate(self.p_epilogue_plan(cfg)):
            if box is None:
                continue
            kb.shared(f"k_spe{n}", mctx.load_dtype(acc), staged_dims(box))
            morigin = {a: lo[self.p.out_axes.index(b)] for a, b in zip(mctx.out_axes, self.p.out_axes)}
            stage_box(mctx, kb, f"pe{n}", acc, box, morigin, threads)
            staged[(i, mctx.access_key(acc))] = (f"k_spe{n}", box, morigin)
        if staged:
            kb.barrier()
        return staged

    def _p_epilogue(self, kb, staged: dict, pname) -> str:
        """Evaluate P's epilogue members at P coordinates named by ``pname``; the last member's value."""
        vals = {id(self.pmembers[0].result): "k_pacc[k_pi]"}
        last = "k_pacc[k_pi]"
        for i, (m, mctx) in enumerate(zip(self.pmembers[1:], self.ptails), start=1):
            table = {a: pname(b) for a, b in zip(mctx.out_axes, self.p.out_axes)}
            axis = table.__getitem__
            names = {}
            for q, acc in enumerate(mctx.distinct_accesses()):
                v = m.operands[mctx.input_of(acc)]
                key = mctx.access_key(acc)
                if id(v) in vals:
                    names[key] = vals[id(v)]
                elif (i, key) in staged:
                    sname, box, morigin = staged[(i, key)]
                    loc = [f"({affine_text(c, k, axis)}) - ({affine_text(c, k + off, lambda a: morigin[a])})"
                           for c, k, _, off in box]
                    bd = [b[2] for b in box]
                    rows = linearize(loc[:-1], bd[:-1]) if len(bd) > 1 else "0"
                    names[key] = f"{sname}[{rows}][{loc[-1] if loc else '0'}]"
                else:
                    names[key] = f"k_pe{i}_{q}"
                    mctx.load_access(kb, acc, f"k_pe{i}_{q}", axis)
            body = mctx.renderer(lambda a, n=names, c=mctx: n[c.access_key(a)], axis)(mctx.expr.body)
            kb.let(f"k_pf{i}", compute_dtype(m.result.type.dtype), body)
            vals[id(m.result)] = last = f"k_pf{i}"
        return last

    # --- bytes -----------------------------------------------------------------------------------------------
    def chain_bytes(self, cfg: dict) -> int:
        """Global bytes of the kernel under ``cfg``, exactly as emitted (what the emulator counts)."""
        plain = {k: v for k, v in cfg.items() if k != "cluster"}
        return self.chain_bytes_many(plain, [cfg.get("cluster")])[0]

    def chain_bytes_many(self, cfg: dict, clusters: list) -> list:
        """:meth:`chain_bytes` of ``cfg`` under each of ``clusters`` (None, or ``{axis: blocks}``): the grid
        of box origins is built once, and only the shared boxes are counted again per cluster."""
        sizes = dict(cfg["block"])
        sizes.update(cfg["step"])
        opts = [next(iter(c.items())) if c else (None, 1) for c in clusters]
        base = self.out_bytes() + self.epilogue_bytes(cfg)
        totals = [base] * len(opts)
        for acc in self.distinct_accesses():
            if self.access_key(acc) != self.p_key:
                fp = grid_footprint_of(self, acc, sizes)
                # A multicast box is the same in the csize blocks of a cluster: loaded once by them.
                totals = [t + (fp // cs if cs > 1 and self.c_multicast(acc, ax) else fp)
                          for t, (ax, cs) in zip(totals, opts)]
        key = (tuple(cfg["block"].items()), tuple(cfg["step"].items()), tuple(cfg["pstep"].items()), tuple(opts))
        p_part = self._memo("p_bytes", key, lambda: self._p_bytes(cfg, opts), shared=True)
        return [t + q for t, q in zip(totals, p_part)]

    def _p_bytes(self, cfg: dict, opts: list) -> list:
        """The bytes P's side loads (its operand boxes and its epilogue's outside operands), per cluster
        option ``(axis, blocks)`` of ``opts``: what :meth:`chain_bytes_many` adds to C's side."""
        sizes = dict(cfg["block"])
        sizes.update(cfg["step"])
        totals = [0] * len(opts)
        # The grid of (C block, C step, P step) origins, one numpy dim each.
        axes = [("c", a) for a in self.out_axes + self.reduce_axes] + [("p", r) for r in self.p.reduce_axes]
        steps = dict(sizes)
        ext = dict(self.extents)
        origins = {}
        for k, (side, a) in enumerate(axes):
            e = ext[a] if side == "c" else self.p.extents[a]
            s = steps[a] if side == "c" else cfg["pstep"][a]
            shape = [1] * len(axes)
            shape[k] = -1
            origins[(side, a)] = np.arange(0, e, s, dtype=np.int64).reshape(shape)
        zero = np.zeros([1] * len(axes), dtype=np.int64)
        pbox = self.p_box(cfg)
        plo = [const + off + sum((c * origins[("c", a)] for a, c in coefs.items()), zero)
               for coefs, const, _, off in pbox]
        pext = [b[2] for b in pbox]
        grid = [o.size for o in origins.values()]
        cgrid = grid[:len(self.out_axes) + len(self.reduce_axes)]
        psizes = self.p_sizes(cfg)
        p_at = {a: plo[d] for d, a in enumerate(self.p.out_axes)}
        for acc in self.p.distinct_accesses():
            los, exts = [], []
            for coefs, const, e, off in staged_box(self.p, acc, psizes):
                los.append(const + off + sum((c * (p_at[a] if a in p_at else origins[("p", a)])
                                              for a, c in coefs.items()), zero))
                exts.append(e)
            shape, size = self.p.shapes[self.p.input_of(acc)], itemsize(self.p.dtypes[self.p.input_of(acc)])
            full = grid_sum(_inbounds(los, exts, shape), grid)
            for i, (ax, cs) in enumerate(opts):
                count = full
                if cs > 1 and self.p_multicast(acc, ax):
                    count = full // cs
                elif (halo := self.p_halo(acc, ax, cfg, cs)) is not None:   # each block loads what it owns
                    first, own = halo.owned_range((origins[("c", ax)] // cfg["block"][ax]) % cs)
                    hlos, hexts = list(los), list(exts)
                    hlos[halo.dim], hexts[halo.dim] = los[halo.dim] + first, own
                    count = grid_sum(_inbounds(hlos, hexts, shape), grid)
                totals[i] += count * size
        points = None
        for i, mctx, acc, box in self.p_epilogue_plan(cfg):
            size = itemsize(mctx.dtypes[mctx.input_of(acc)])
            if box is None:
                if points is None:
                    n = _inbounds(plo, pext, self.p.out_shape)
                    points = grid_sum(n, grid) // math.prod(grid[len(cgrid):])
                totals = [t + points * size for t in totals]
                continue
            mp = {a: p_at[b] for a, b in zip(mctx.out_axes, self.p.out_axes)}
            los = [const + off + sum((c * mp[a] for a, c in coefs.items()), zero) for coefs, const, _, off in box]
            n = _inbounds(los, [b[2] for b in box], mctx.shapes[mctx.input_of(acc)])
            add = grid_sum(n, grid) // math.prod(grid[len(cgrid):]) * size
            totals = [t + add for t in totals]
        return totals


def _n(axis: str) -> str:
    return ComputeContext.axis_var(axis)[3:]


def lower_fused_conv(kernel, name: str):
    """The ``kernel.func`` of a shared-level conv-chain ``tile.kernel``."""
    members, args, outs = kernel_parts(kernel)
    ctx = ChainContext(members, args, outs, kernel)
    cfg = kernel.attributes.get("tile") or {}
    if any(k not in cfg for k in CHAIN_KEYS):
        raise CompileError.at("lower-cuda: conv_chain tile.kernel needs tile = {block, thread, step, pstep}",
                              kernel.loc)
    cfg = chain_config(cfg)
    ctx.cfg_for_stage = cfg
    if ctx.smem_bytes(cfg) > ctx.smem_limit:
        raise CompileError.at(f"lower-cuda: conv chain needs {ctx.smem_bytes(cfg)} B of shared memory", kernel.loc)
    rtile = {k: cfg[k] for k in ("block", "thread", "step", "cluster") if k in cfg}
    func = lower_tiled(ctx, name, rtile)
    set_chain_bytes(func, ctx, cfg)
    func.attributes["flops"] = int(func.attributes.get("flops", 0)) + ctx.p.flops()
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in members)
    return func
