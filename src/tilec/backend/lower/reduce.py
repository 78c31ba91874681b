"""Reduction kernels (``+= max= min= *=`` that are not tiled contractions).

- ``reduce_serial``: one thread per output, a serial loop over the (small) reduce space.
- ``reduce``: one block per output; threads stride over the flattened reduce space, then warp shuffles and
  one shared-memory round combine the partials.
"""
from __future__ import annotations

import math

from .builder import KernelBuilder, unflatten
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
    from ..cstyle import CUDA
    return CUDA.combine(ctx.combiner, ctx.acc_dtype, a, b)


def _out_coords(ctx: ComputeContext, kb: KernelBuilder, flat: str) -> None:
    unflatten(kb, flat, [ctx.axis_var(a) for a in ctx.out_axes], [ctx.extents[a] for a in ctx.out_axes],
              ctx.idx_t)


def _serial(ctx: ComputeContext, name: str):
    total = math.prod(ctx.out_shape)
    threads = BLOCK_THREADS if total >= BLOCK_THREADS else max(32, -(-total // 32) * 32)
    kb = KernelBuilder()
    cast = "(long long)" if ctx.idx_t == "i64" else ""
    kb.let("k_t", ctx.idx_t, f"{cast}blockIdx.x * {threads} + threadIdx.x")
    with kb.cond(f"k_t < {total}"):
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
    threads = min(BLOCK_THREADS, max(32, -(-rtotal // 32) * 32))
    warps = threads // 32
    total = math.prod(ctx.out_shape)
    kb = KernelBuilder()
    if warps > 1:
        kb.shared("k_red", ctx.acc_dtype, [warps])
    cast = "(long long)" if ctx.idx_t == "i64" else ""
    kb.let("k_o", ctx.idx_t, f"{cast}blockIdx.x")
    _out_coords(ctx, kb, "k_o")
    kb.local("k_acc", ctx.acc_dtype, init=ctx.identity())
    with kb.loop("k_r", "threadIdx.x", rtotal, step=threads):
        unflatten(kb, "k_r", [ctx.axis_var(a) for a in ctx.reduce_axes],
                  [ctx.extents[a] for a in ctx.reduce_axes], ctx.idx_t)
        _accumulate(ctx, kb, "k_acc")
    kb.warp_reduce("k_acc", ctx.combiner, ctx.acc_dtype)
    if warps > 1:
        with kb.cond("(threadIdx.x & 31) == 0"):
            kb.assign("k_red[threadIdx.x >> 5]", "k_acc")
        kb.barrier()
        with kb.cond("threadIdx.x < 32"):
            kb.assign("k_acc", f"threadIdx.x < {warps} ? k_red[threadIdx.x] : {ctx.identity()}")
            kb.warp_reduce("k_acc", ctx.combiner, ctx.acc_dtype, width=_pow2(warps))
    ctx.store_result(kb, "k_o", "k_acc", pred="threadIdx.x == 0")
    return kb.func(name, [max(1, total)], [threads], ctx.params(), kind="reduce",
                   flops=ctx.flops(), bytes_modelled=_bytes(ctx))


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _bytes(ctx: ComputeContext) -> int:
    """Each access loaded once per point of the iteration space (an upper bound where pads are skipped)."""
    from ...ir.types import itemsize
    points = math.prod(ctx.extents.values())
    return points * sum(itemsize(ctx.dtypes[ctx.input_of(a)]) for a in ctx.distinct_accesses()) + ctx.out_bytes()
