"""Reduction kernels (``+= max= min= *=`` that are not tiled contractions).

- ``reduce_serial``: one thread per output, a serial loop over the (small) reduce space.
- ``reduce``: one block per output; threads stride over the flattened reduce space, then warp shuffles and
  one shared-memory round combine the partials.

Thread counts are multiples of the target's warp (``spec.warp_size``: 32 on NVIDIA, a 64-lane wavefront on AMD),
and the shuffles span the whole warp.
"""
from __future__ import annotations

import math

from ...ir.kexpr import Binary, BlockIdx, Cast, Const, Group, Index, Select, ThreadIdx, Var, as_kexpr
from ...ir.types import itemsize
from ..cstyle import CUDA
from .builder import KernelBuilder, thread_index, unflatten
from .context import ComputeContext

SERIAL_MAX = 64      # reduce extents up to this run serially, one thread per output
BLOCK_THREADS = 256


def lower_reduce(ctx: ComputeContext, name: str):
    """The ``kernel.func`` for a reduction; serial when the reduce space is tiny."""
    rtotal = math.prod(ctx.extents[a] for a in ctx.reduce_axes)
    if rtotal <= SERIAL_MAX:
        return _serial(ctx, name)
    return _block(ctx, name, rtotal)


def _accumulate(ctx: ComputeContext, kb: KernelBuilder, acc: str) -> None:
    """Load the accesses at the current axes and fold the body into ``acc``."""
    names = {}
    for j, a in enumerate(ctx.distinct_accesses()):
        names[ctx.access_key(a)] = f"k_v{j}"
        ctx.load_access(kb, a, f"k_v{j}")
    value = ctx.renderer(lambda a: names[ctx.access_key(a)])(ctx.expr.body)
    kb.assign(acc, ctx_combine(ctx, acc, value))


def ctx_combine(ctx: ComputeContext, a: str, b: str) -> str:
    """The context's combiner applied to ``a`` and ``b``, as C text."""
    return CUDA.combine(ctx.combiner, ctx.acc_dtype, a, b)


def _out_coords(ctx: ComputeContext, kb: KernelBuilder, flat: str) -> None:
    unflatten(kb, flat, [ctx.axis_var(a) for a in ctx.out_axes], [ctx.extents[a] for a in ctx.out_axes],
              ctx.idx_t)


def _serial(ctx: ComputeContext, name: str):
    total = math.prod(ctx.out_shape)
    warp = ctx.spec.warp_size
    threads = BLOCK_THREADS if total >= BLOCK_THREADS else max(warp, -(-total // warp) * warp)
    kb = KernelBuilder()
    kb.let("k_t", ctx.idx_t, thread_index(threads, "long long" if ctx.idx_t == "i64" else None))
    with kb.cond(Binary("<", Var("k_t"), Const(total))):
        _out_coords(ctx, kb, "k_t")
        kb.local("k_acc", ctx.acc_dtype, init=ctx.identity())
        _nested_reduce_loops(ctx, kb, ctx.reduce_axes)
        ctx.store_result(kb, "k_t", "k_acc")
    return kb.func(name, [max(1, -(-total // threads))], [threads], ctx.params(), kind="reduce_serial",
                   flops=ctx.flops(), bytes_modelled=_bytes(ctx))


def _nested_reduce_loops(ctx: ComputeContext, kb: KernelBuilder, axes) -> None:
    if not axes:
        _accumulate(ctx, kb, "k_acc")
        return
    ext = ctx.extents[axes[0]]
    with kb.loop(ctx.axis_var(axes[0]), 0, ext, unroll=-1 if ext <= 8 else 0):
        _nested_reduce_loops(ctx, kb, axes[1:])


def _block(ctx: ComputeContext, name: str, rtotal: int):
    warp = ctx.spec.warp_size
    threads = min(BLOCK_THREADS, max(warp, -(-rtotal // warp) * warp))
    warps = threads // warp
    total = math.prod(ctx.out_shape)
    kb = KernelBuilder()
    if warps > 1:
        kb.shared("k_red", ctx.acc_dtype, [warps])
    kb.let("k_o", ctx.idx_t, Cast("long long", BlockIdx()) if ctx.idx_t == "i64" else BlockIdx())
    _out_coords(ctx, kb, "k_o")
    kb.local("k_acc", ctx.acc_dtype, init=ctx.identity())
    tid = ThreadIdx()
    with kb.loop("k_r", tid, rtotal, step=threads):
        unflatten(kb, "k_r", [ctx.axis_var(a) for a in ctx.reduce_axes],
                  [ctx.extents[a] for a in ctx.reduce_axes], ctx.idx_t)
        _accumulate(ctx, kb, "k_acc")
    kb.warp_reduce("k_acc", ctx.combiner, ctx.acc_dtype, width=warp)
    if warps > 1:
        with kb.cond(Binary("==", Group(Binary("&", tid, Const(warp - 1))), Const(0))):   # each warp's lane 0
            kb.assign(Index(Var("k_red"), Binary(">>", tid, Const(warp.bit_length() - 1))), "k_acc")
        kb.barrier()
        with kb.cond(Binary("<", tid, Const(warp))):
            kb.assign("k_acc", Select(Binary("<", tid, Const(warps)), Index(Var("k_red"), tid),
                                      as_kexpr(ctx.identity())))
            kb.warp_reduce("k_acc", ctx.combiner, ctx.acc_dtype, width=_pow2(warps))
    ctx.store_result(kb, "k_o", "k_acc", pred="threadIdx.x == 0")   # text: the context's hook takes C strings
    return kb.func(name, [max(1, total)], [threads], ctx.params(), kind="reduce",
                   flops=ctx.flops(), bytes_modelled=_bytes(ctx))


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _bytes(ctx: ComputeContext) -> int:
    """Each access loaded once per point of the iteration space (an upper bound where pads are skipped)."""
    points = math.prod(ctx.extents.values())
    return points * sum(itemsize(ctx.dtypes[ctx.input_of(a)]) for a in ctx.distinct_accesses()) + ctx.out_bytes()
