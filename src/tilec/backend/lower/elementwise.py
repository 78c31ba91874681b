"""Elementwise / broadcast kernels (any ``=`` expression): one thread per output element, or four per thread
with float4 loads and stores when the innermost axis is contiguous and aligned."""
from __future__ import annotations

import dataclasses
import math

from ...ir.kexpr import Binary, Const, Var
from ...ir.types import itemsize
from .builder import KernelBuilder, thread_index, unflatten
from .context import ComputeContext

THREADS = 256


def lower_elementwise(ctx: ComputeContext, name: str):
    """The ``kernel.func`` for an expression without reduce axes."""
    total = math.prod(ctx.out_shape)
    vec = 4 if _can_vectorize(ctx) else 1
    warp = ctx.spec.warp_size   # a small launch is still whole warps (wavefronts)
    threads = _threads(total, vec, warp)
    if -(-total // (threads * vec)) < ctx.spec.num_sms:
        threads, vec = _spread(ctx, total, vec)
    grid = max(1, -(-total // (threads * vec)))
    kb = KernelBuilder()
    kb.let("k_t", ctx.idx_t, thread_index(threads, "long long" if ctx.idx_t == "i64" else None))
    if vec == 4:
        _vector_body(ctx, kb, total)
    else:
        with kb.cond(Binary("<", Var("k_t"), Const(total))):
            _scalar_body(ctx, kb, "k_t")
    return kb.func(name, [grid], [threads], ctx.params(), kind="elementwise",
                   flops=ctx.flops(), bytes_modelled=_bytes(ctx, vec))


def _threads(total: int, vec: int, warp: int) -> int:
    """``THREADS`` per block, or the whole warps a smaller launch needs."""
    return THREADS if total >= THREADS * vec else max(warp, -(-total // vec // warp) * warp)


def _spread(ctx: ComputeContext, total: int, vec: int) -> tuple:
    """``(threads, vec)`` for a launch too small to give every SM a block: the block size (halved down to a
    warp) and vector width (float4 where legal, or one element a thread) that the latency model
    (``analysis/latency.candidate_estimate``, issue #18) times fastest; on ties the wider, then the larger.
    A 1024-element op was one block of 256 float4 threads on one SM (8 warps in flight); one element a
    thread puts 32 warps on four SMs."""
    from ...analysis.latency import candidate_estimate
    spec, warp = ctx.spec, ctx.spec.warp_size
    unique = sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in list(ctx.op.operands) + [ctx.op.result])
    best = None
    for v in sorted({vec, 1}, reverse=True):
        nbytes, t = _bytes(ctx, v), _threads(total, v, warp)
        while True:
            est = candidate_estimate(spec, blocks=-(-total // (t * v)), threads=t, smem=0, regs=32,
                                     flops=ctx.flops(), global_bytes=nbytes, unique_bytes=unique)
            if best is None or est.seconds < best[0]:
                best = (est.seconds, t, v)
            if t // 2 < warp or t % (2 * warp):
                break
            t //= 2
    return best[1], best[2]


def _scalar_body(ctx: ComputeContext, kb: KernelBuilder, flat: str) -> None:
    unflatten(kb, flat, [ctx.axis_var(a) for a in ctx.out_axes], [ctx.extents[a] for a in ctx.out_axes],
              ctx.idx_t)
    names = {}
    for j, acc in enumerate(ctx.distinct_accesses()):
        names[ctx.access_key(acc)] = f"k_v{j}"
        ctx.load_access(kb, acc, f"k_v{j}")
    value = ctx.renderer(lambda a: names[ctx.access_key(a)])(ctx.expr.body)
    ctx.store_result(kb, flat, value)


def _can_vectorize(ctx: ComputeContext) -> bool:
    """float4 when everything is f32, the innermost axis has a multiple-of-4 extent, and every access either
    ignores it or indexes its innermost (contiguous, aligned) dim with exactly it."""
    if ctx.fused or not ctx.out_axes or ctx.out_dtype != "f32" or any(d != "f32" for d in ctx.dtypes):
        return False
    inner = ctx.out_axes[-1]
    if ctx.extents[inner] % 4 or math.prod(ctx.out_shape) < 4 * THREADS:
        return False
    if _uses_axis_value(ctx.expr.body, inner):
        return False  # e.g. Trilu's select(d1 - d0 <= 0, ...): each lane needs its own d1, not the first's
    for acc in ctx.expr.accesses:
        uses = [_mentions(ix, inner) for ix in acc.indices]
        if not any(uses):
            continue
        last = acc.indices[-1] if acc.indices else None
        shape = ctx.shapes[ctx.input_of(acc)]
        if (type(last).__name__ != "AxisRef" or last.name != inner or any(uses[:-1])
                or shape[-1] != ctx.extents[inner]):
            return False
    return True


def _mentions(node, axis: str) -> bool:
    if type(node).__name__ == "AxisRef":
        return node.name == axis
    return any(_mentions(c, axis) for c in _children(node))


def _uses_axis_value(node, axis: str) -> bool:
    """Whether ``axis`` appears in the expression outside the index of an access (as a value)."""
    if type(node).__name__ == "Access":
        return False
    return _mentions(node, axis) if type(node).__name__ == "AxisRef" else \
        any(_uses_axis_value(c, axis) for c in _children(node))


def _children(node):
    for f in dataclasses.fields(node):
        v = getattr(node, f.name)
        if isinstance(v, (list, tuple)):
            yield from (x for x in v if dataclasses.is_dataclass(x))
        elif dataclasses.is_dataclass(v):
            yield v


def _vector_body(ctx: ComputeContext, kb: KernelBuilder, total: int) -> None:
    inner = ctx.out_axes[-1]
    with kb.cond(Binary("<", Var("k_t"), Const(total // 4))):
        kb.let("k_e", ctx.idx_t, Binary("*", Var("k_t"), Const(4)))
        unflatten(kb, "k_e", [ctx.axis_var(a) for a in ctx.out_axes], [ctx.extents[a] for a in ctx.out_axes],
                  ctx.idx_t)
        names = {}
        for j, acc in enumerate(ctx.distinct_accesses()):
            key = ctx.access_key(acc)
            if any(_mentions(ix, inner) for ix in acc.indices):
                index, pred = ctx.index_and_pred(acc)
                pad = ctx.literal(ctx.pad, "f32")
                kb.local(f"k_v{j}", "f32x4")
                kb.load(f"k_v{j}", "f32x4", ctx.names[acc.tensor], index, pred or None,
                        f"make_float4({pad}, {pad}, {pad}, {pad})", vec=4)
                names[key] = [f"k_v{j}.{c}" for c in "xyzw"]
            else:
                ctx.load_access(kb, acc, f"k_v{j}")
                names[key] = [f"k_v{j}"] * 4
        lanes = [ctx.renderer(lambda a, c=c: names[ctx.access_key(a)][c])(ctx.expr.body) for c in range(4)]
        kb.store(ctx.out_name, "k_e", f"make_float4({', '.join(lanes)})", vec=4)


def _bytes(ctx: ComputeContext, vec: int) -> int:
    """Every thread loads each access once per element (vector or not): exact for in-bounds accesses, an
    upper bound where a predicate skips padded ones."""
    total = math.prod(ctx.out_shape)
    per = sum(itemsize(ctx.dtypes[ctx.input_of(a)]) for a in ctx.distinct_accesses())
    if vec == 4:
        inner = ctx.out_axes[-1]
        per = sum(itemsize(ctx.dtypes[ctx.input_of(a)]) * (1 if any(_mentions(i, inner) for i in a.indices) else 0.25)
                  for a in ctx.distinct_accesses())
    return int(total * per) + ctx.out_bytes()
