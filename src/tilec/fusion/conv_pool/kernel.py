"""Conv chains with a pooling tail (welder ``kind = "conv_pool"``): a conv chain (``fusion/conv_chain/kernel.py``) whose
result is only ever summed over some of its dims (a global average pool), fused with the per-block part of
that sum so the chain's full result never reaches global memory.

The kernel's last member is the partial-sum op the welder pass inserted (:mod:`.match`)::

    P[n, c, pb2, pb3] += X[n, c, pb2 * B2 + pi2, pb3 * B3 + pi3]

where ``B2, B3`` are the chain's block tile along the pooled dims, so one block of the chain owns exactly
the ``P`` elements of its kept coordinates at its own block index along the pooled dims. The block writes
its chain values into a shared tile ``k_red`` (points outside the result stay 0), and after a barrier each
kept coordinate is summed by one thread over the pooled coordinates in a fixed order: deterministic, no
atomics, whatever order the threads and blocks run in. A small ordinary reduction (the original pool, now
reading ``P``) finishes the sum in a second kernel.

Bytes: the conv chain's, minus its result's store, plus one store per ``P`` element."""
from __future__ import annotations

import math

from ...backend.lower.builder import linearize, unflatten
from ...backend.lower.cexpr import affine
from ...backend.lower.context import ComputeContext
from ...backend.lower.fused import SharedStager, kernel_parts
from ...backend.lower.tiled import lower_tiled
from ...ir.diagnostics import CompileError
from ...ir.types import itemsize
from ..conv_chain.kernel import CHAIN_KEYS, ChainContext, chain_config, set_chain_bytes


class PoolChainContext(ChainContext):
    """A conv chain whose result ``X`` is reduced per block over ``pooled`` dims (positions in X)."""

    def __init__(self, members: list, args: list, xval, pooled: list, kernel=None, pout=None):
        super().__init__(members, args, [xval], kernel)
        self.pooled = sorted(pooled)
        self.pout = pout   # the partial-sum op's result (None while the search scores configs)

    def partial_shape(self, cfg: dict) -> list:
        """``P``'s shape: the kept dims of X, and the number of blocks along each pooled dim."""
        return [-(-n // cfg["block"][a]) if d in self.pooled else n
                for d, (a, n) in enumerate(zip(self.out_axes, self.out_shape))]

    def p_points_per_thread(self, cfg: dict, threads: int) -> int:
        """P points per thread, counted twice so the chooser's limit (32) leaves the tail registers: chains
        with 22–29 P points per thread and their tail spilled in ptxas at 255 registers (random sweep)."""
        return 2 * super().p_points_per_thread(cfg, threads)

    def red_bytes(self, cfg: dict) -> int:
        return math.prod(cfg["block"][a] for a in self.out_axes) * 4

    def smem_fixed(self, cfg: dict) -> int:
        return super().smem_fixed(cfg) + self.red_bytes(cfg)

    def epilogue_bytes(self, cfg: dict | None = None) -> int:
        cfg = cfg if cfg is not None else self.cfg
        x = self.outs[0]
        stored = math.prod(x.type.shape) * itemsize(x.type.dtype)
        return super().epilogue_bytes(cfg) - stored + math.prod(self.partial_shape(cfg)) * 4

    # --- lowering hooks (tiled.py) -----------------------------------------------------------------------
    def _local(self, a: str) -> str:
        return f"({self.axis_var(a)}) - k_o_{_n(a)}"

    def stage_epilogue(self, kb, cfg: dict, origin: dict, threads: int) -> None:
        super().stage_epilogue(kb, cfg, origin, threads)
        n = math.prod(cfg["block"][a] for a in self.out_axes)
        kb.shared("k_red", "f32", [n])
        # Strided block loops stay rolled (``unroll=1``) here and below: nvcc unrolling them next to the
        # chain spilled a few registers in ptxas even far below the register limit.
        with kb.loop("k_z", "threadIdx.x", n, step=threads, unroll=1):
            kb.assign("k_red[k_z]", "0.0f")   # edge tiles: points past the result add nothing
        kb.barrier()

    def store_result(self, kb, index: str, value: str, pred: str | None = None) -> None:
        dims = [self.cfg["block"][a] for a in self.out_axes]
        slot = linearize([self._local(a) for a in self.out_axes], dims)
        super().store_result(SharedStager(kb, f"k_red[{slot}]"), index, value, pred)

    def finish_epilogue(self, kb, cfg: dict, origin: dict, threads: int) -> None:
        """Each kept coordinate of the tile: one thread sums the pooled coordinates in order, stores P."""
        B, axes = cfg["block"], self.out_axes
        kept = [d for d in range(len(axes)) if d not in self.pooled]
        kdims = [B[axes[d]] for d in kept]
        pdims = [B[axes[d]] for d in self.pooled]
        kb.barrier()
        with kb.loop("k_q", "threadIdx.x", math.prod(kdims), step=threads, unroll=1):
            unflatten(kb, "k_q", [f"k_kq{d}" for d in kept], kdims, "i32")
            kb.local("k_psum", "f32", init="0.0f")
            with kb.loop("k_r", 0, math.prod(pdims)):
                unflatten(kb, "k_r", [f"k_kq{d}" for d in self.pooled], pdims, "i32")
                slot = linearize([f"k_kq{d}" for d in range(len(axes))], [B[a] for a in axes])
                kb.assign("k_psum", f"k_psum + k_red[{slot}]")
            coords, preds = [], []
            for d, a in enumerate(axes):
                if d in self.pooled:
                    coords.append(f"k_b_{_n(a)}")
                else:
                    coords.append(f"{origin[a]} + k_kq{d}")
                    if self.extents[a] % B[a]:
                        preds.append(f"{coords[-1]} < {self.extents[a]}")
            kb.store("out0", linearize(coords, self.partial_shape(cfg)), "k_psum", " && ".join(preds) or None)


def _n(axis: str) -> str:
    return ComputeContext.axis_var(axis)[3:]


def pooled_dims(tail, block: dict, axes: list) -> list:
    """The X dims the partial-sum op pools, checked against the chain's block tile: ``X[.., pb * B + pi, ..]``
    with ``B`` the block tile of that dim, every other index the kept axis itself."""
    tctx = ComputeContext(tail)
    (acc,) = tctx.distinct_accesses()
    pooled = []
    for d, (ix, a) in enumerate(zip(acc.indices, axes)):
        coefs, const = affine(ix)
        outs = [x for x, c in coefs.items() if c and x in tctx.out_axes]
        reds = [x for x, c in coefs.items() if c and x in tctx.reduce_axes]
        if reds:
            if (const or len(outs) != 1 or len(reds) != 1 or coefs[outs[0]] != block[a] or coefs[reds[0]] != 1
                    or tctx.extents[reds[0]] != block[a]):
                raise CompileError(f"lower-cuda: conv_pool tail pools dim {d} with a step other than the tile's")
            pooled.append(d)
        elif const or len(outs) != 1 or coefs[outs[0]] != 1:
            raise CompileError(f"lower-cuda: conv_pool tail must keep dim {d} as is")
    return pooled


def lower_fused_pool(kernel, name: str):
    """The ``kernel.func`` of a ``conv_pool`` ``tile.kernel``: the chain, reduced per block into ``out0``."""
    members, args, outs = kernel_parts(kernel)
    tail = members[-1]
    cfg = kernel.attributes.get("tile") or {}
    if any(k not in cfg for k in CHAIN_KEYS):
        raise CompileError.at("lower-cuda: conv_pool tile.kernel needs tile = {block, thread, step, pstep}",
                              kernel.loc)
    cfg = chain_config(cfg)
    pooled = pooled_dims(tail, cfg["block"], _chain_axes(members[:-1]))
    ctx = PoolChainContext(members[:-1], args, tail.operands[0], pooled, kernel, outs[0])
    if list(ctx.partial_shape(cfg)) != list(outs[0].type.shape):
        raise CompileError.at("lower-cuda: conv_pool partial sums do not match the chain's block grid", kernel.loc)
    ctx.cfg_for_stage = ctx.cfg = cfg
    if ctx.smem_bytes(cfg) > ctx.smem_limit:
        raise CompileError.at(f"lower-cuda: conv_pool needs {ctx.smem_bytes(cfg)} B of shared memory", kernel.loc)
    func = lower_tiled(ctx, name, {k: cfg[k] for k in ("block", "thread", "step", "cluster") if k in cfg})
    set_chain_bytes(func, ctx, cfg)
    # The chain's flops plus one add per pooled point.
    func.attributes["flops"] = int(func.attributes.get("flops", 0)) + ctx.p.flops() + math.prod(ctx.out_shape)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in members)
    return func


def _chain_axes(members) -> list:
    """The chain consumer's output axes (X's dims, in order)."""
    c = [m for m in members if ComputeContext(m).combiner is not None][-1]
    return ComputeContext(c).out_axes
