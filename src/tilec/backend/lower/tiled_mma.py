"""The tensor-core variant of the tiled kernel: f16/bf16 (batched) matrix products, and f32 ones marked tf32.

Matches ``C[b.., m, n] += A[b.., m|k, k|m] * B[b.., k|n, n|k]`` (an operand may lack the batch axes:
broadcast; plain axes, or a constant 0 on a size-1 batch dim as a batch-1 export writes it; one reduce axis,
both inputs f16 or both bf16, or f32 with ``precision = "tf32"``, any float output) whose rTile is aligned to
the 16×16×16 mma shape: block m and n, and step k, multiples of 16.
Two kernels take it (tf32: only the engine, else the CUDA-core tiled kernel):

- the sm_80 engine (``mma_engine``: cp.async pipeline, ldmatrix from swizzled shared memory, mma.sync
  m16n8k16) on sm_80 and later, when every operand's contiguous extent is a multiple of 8 elements (whole
  16-byte chunks) and a warp grid keeps the block's accumulators in registers (:func:`engine_config`);
- otherwise the ``nvcuda::wmma`` kernel below (V100; operands with ragged rows): a block stages an A tile
  (BM×BK) and a B tile (BK×BN) in shared memory per k step (zero outside the tensors, so edge tiles need no
  special case), each warp runs ``mma_sync`` on its 16×16 fragments with fp32 accumulators, and the epilogue
  stages each fragment in a per-warp shared scratch so the global stores are row-contiguous and
  bounds-checked.

Both bodies are CUDA text (``source``): the primitives they call have no kernel-IR form.
"""
from __future__ import annotations

import math

from ...analysis.engine_shape import tf32_plan, warps_for  # noqa: F401 (re-exported)
from ...analysis.mma_tile import (MMA, PAD_AB, PAD_C, match_expr, smem_bytes,  # noqa: F401 (re-exported)
                                   tensor_core_dtype)
from ...ir.types import itemsize
from .context import ComputeContext

CTYPE = {"f16": "half", "bf16": "__nv_bfloat16", "f32": "float"}


def match(ctx: ComputeContext) -> dict | None:
    """``{"m", "n", "k", "batch", "a", "b", "a_kmajor", "b_nmajor", ...}`` when ``ctx`` is a tensor-core matmul
    (an f32 one when the precision pass marked it ``precision = "tf32"``)."""
    return match_expr(ctx.expr, ctx.dtypes, ctx.out_dtype, ctx.op.attributes.get("precision"), ctx.shapes,
                      ctx.out_shape)


def aligned(ctx: ComputeContext, rtile: dict | None) -> bool:
    """Whether ``rtile`` fits the tensor-core kernel (and the op matches)."""
    mt = match(ctx)
    if mt is None or not rtile or not _arch_has_tensor_cores(ctx):
        return False
    block, step = rtile.get("block", {}), rtile.get("step", {})
    bm, bn, bk = block.get(mt["m"], 0), block.get(mt["n"], 0), step.get(mt["k"], 0)
    if any(x <= 0 or x % s for x, s in zip((bm, bn, bk), MMA)):
        return False
    if not all(block.get(b, 1) == 1 for b in mt["batch"]):
        return False
    if _wgmma_plan(ctx, mt, rtile, tiled_for(ctx)) is not None:   # sm_90: its own shared memory (opt-in)
        return True
    if mt["dtype"] == "f32" or tiled_for(ctx).is_amd:   # tf32, AMD: the engine or CUDA cores (no wmma there)
        return engine_config(ctx, rtile) is not None
    return smem_bytes(bm, bn, bk, ctx.dtypes[0]) <= ctx.smem_limit


def _arch_has_tensor_cores(ctx: ComputeContext) -> bool:
    """Whether the GPU Roller tiled this op for has tensor cores for the dtype."""
    return tiled_for(ctx).tensor_core_flops(tensor_core_dtype(ctx.dtypes[0])) > 0


def tiled_for(ctx: ComputeContext):
    """The GPU Roller tiled this op for (its ``estimate.arch``); an op Roller never saw (no estimate) takes the
    module's target."""
    from ...analysis.hardware import get_arch, module_arch
    return get_arch((ctx.op.attributes.get("estimate") or {}).get("arch") or module_arch(ctx.op))


def engine_config(ctx: ComputeContext, rtile: dict):
    """The sm_80 engine's shape (``mma_engine.EngineConfig``) for ``ctx`` and an aligned ``rtile``, or None when
    the wmma kernel runs it instead: a GPU older than sm_80, an operand whose contiguous extent is not a
    multiple of 8 elements, or a block tile whose accumulators no warp grid keeps in registers."""
    from . import mma_engine
    mt = match(ctx)
    spec = tiled_for(ctx)
    if spec.is_amd:   # matrix cores: the MFMA engine (mfma_engine.MfmaConfig)
        return _mfma_plan(ctx, mt, rtile, spec)
    wg = _wgmma_plan(ctx, mt, rtile, spec)
    if wg is not None:   # an sm_90 target: the wgmma engine (wgmma_engine.WgmmaConfig) where it has a shape
        return wg
    if not mma_engine.supports(spec, mt, ctx.extents):
        return None
    bm, bn = rtile["block"][mt["m"]], rtile["block"][mt["n"]]
    if mt["dtype"] == "f32":
        return tf32_plan(mt, bm, bn, ctx.extents[mt["k"]], spec)
    return mma_engine.plan(bm, bn, ctx.extents[mt["k"]], warps_for(bm, bn, _threads_hint(mt, rtile)),
                           ctx.dtypes[0], spec)


def _wgmma_plan(ctx: ComputeContext, mt: dict, rtile: dict, spec):
    """The wgmma engine's shape on an sm_90 target (``wgmma_engine.plan``): the rTile's block tile where it
    is one of the engine's (Roller ranked those, analysis/wgmma_shape.py), else the engine's own; or None."""
    from . import wgmma_engine
    block = rtile.get("block", {})
    return wgmma_engine.plan(spec, mt, ctx.extents, ctx.dtypes[0], (block.get(mt["m"]), block.get(mt["n"])))


def _mfma_plan(ctx: ComputeContext, mt: dict, rtile: dict, spec):
    """The MFMA engine's shape on an AMD target (``mfma_engine.plan``), or None (CUDA-core code then)."""
    from . import mfma_engine
    if not mfma_engine.supports(spec, mt, ctx.extents):
        return None
    bm, bn = rtile["block"][mt["m"]], rtile["block"][mt["n"]]
    waves = max(1, _threads_hint(mt, rtile) // spec.warp_size)
    return mfma_engine.plan(bm, bn, ctx.extents[mt["k"]], ctx.dtypes[0], spec, waves)


def _threads_hint(mt: dict, rtile: dict) -> int:
    """The thread count Roller's rTile implies (block over thread tile, along m and n)."""
    thread = rtile.get("thread", {})
    bm, bn = rtile["block"][mt["m"]], rtile["block"][mt["n"]]
    return (bm // max(1, thread.get(mt["m"], 1))) * (bn // max(1, thread.get(mt["n"], 1)))


def lower_tiled_mma(ctx: ComputeContext, name: str, rtile: dict):
    """The ``kernel.func`` of the tensor-core kernel for ``ctx`` with an aligned ``rtile`` (see :func:`aligned`):
    the sm_80 engine where :func:`engine_config` gives a shape, else the wmma kernel."""
    cfg = engine_config(ctx, rtile)
    if cfg is not None:
        return lower_engine(ctx, name, rtile, cfg)
    return lower_wmma(ctx, name, rtile)


def lower_engine(ctx: ComputeContext, name: str, rtile: dict, cfg):
    """The ``kernel.func`` of the sm_80 engine kernel (``mma_engine``) with shape ``cfg``, of the MFMA
    engine's (``mfma_engine``) where ``cfg`` is one of its shapes (an AMD target), or of the wgmma engine's
    (``wgmma_engine``, an sm_90 target)."""
    from . import mfma_engine, mma_engine
    from .builder import KernelBuilder
    mt = match(ctx)
    from . import wgmma_engine
    if isinstance(cfg, wgmma_engine.WgmmaConfig):   # an sm_90 target (engine_config)
        return wgmma_engine.lower(ctx, name, rtile, mt, cfg)
    if isinstance(cfg, mfma_engine.MfmaConfig):
        return mfma_engine.lower(ctx, name, rtile, cfg, modelled_bytes(ctx, mt, cfg.bm, cfg.bn, cfg.bk))
    dtype = ctx.dtypes[0]
    conf = {"block": {a: rtile["block"].get(a, 1) for a in ctx.out_axes}, "thread": dict(rtile.get("thread", {})),
            "step": {mt["k"]: cfg.bk}, "mma": [16, 8, mma_engine.MMA_K[dtype]], "engine": "mma_sync",
            "warps": [cfg.warps_m, cfg.warps_n], "stages": cfg.stages}
    return KernelBuilder().func(
        name, [mma_engine.grid_blocks(ctx, mt, cfg)], [32 * cfg.warps], ctx.params(), kind="tiled_mma",
        flops=ctx.flops(), bytes_modelled=modelled_bytes(ctx, mt, cfg.bm, cfg.bn, cfg.bk), config=conf,
        source=mma_engine.kernel_source(ctx, mt, cfg), smem=cfg.smem_bytes(dtype) if cfg.dynamic else 0,
        smem_static=0 if cfg.dynamic else cfg.smem_bytes(dtype), tensor_core=tensor_core_dtype(dtype))


def lower_wmma(ctx: ComputeContext, name: str, rtile: dict):
    """The ``kernel.func`` of the wmma kernel (GPUs before sm_80, operands not 16-byte chunked)."""
    from .builder import KernelBuilder
    mt = match(ctx)
    m, n, k, batch = mt["m"], mt["n"], mt["k"], mt["batch"]
    E = ctx.extents
    bm, bn, bk = rtile["block"][m], rtile["block"][n], rtile["step"][k]
    thread = rtile.get("thread", {})
    hint = (bm // max(1, thread.get(m, 1))) * (bn // max(1, thread.get(n, 1)))
    nw = warps_for(bm, bn, hint)
    nt = 32 * nw
    fn = bn // 16
    fpw = (bm // 16) * fn // nw
    ab_t = CTYPE[ctx.dtypes[0]]
    out_t = CTYPE[ctx.out_dtype]
    ina, inb = ctx.names[mt["a"].tensor], ctx.names[mt["b"].tensor]
    grid_m, grid_n = -(-E[m] // bm), -(-E[n] // bn)
    nb = math.prod(E[b] for b in batch)
    sa, sb = bk + PAD_AB, bn + PAD_AB
    sc = 16 + PAD_C
    # Global strides: the batch axes are leading and shared by A, B and C (row-major, contiguous).
    a_rows = (E[m], E[k]) if not mt["a_kmajor"] else (E[k], E[m])
    b_rows = (E[k], E[n]) if not mt["b_nmajor"] else (E[n], E[k])
    a_idx = "(gr * {K} + gc)" if not mt["a_kmajor"] else "(gc * {M} + gr)"
    b_idx = "(gr * {N} + gc)" if not mt["b_nmajor"] else "(gc * {K} + gr)"
    a_idx, b_idx = a_idx.format(K=E[k], M=E[m]), b_idx.format(K=E[k], N=E[n])
    it = "long long" if ctx.idx_t == "i64" else "int"
    a_base = f"k_batch * {a_rows[0] * a_rows[1]}" if mt["a_batched"] else "0"   # 0: broadcast over the batch
    b_base = f"k_batch * {b_rows[0] * b_rows[1]}" if mt["b_batched"] else "0"
    zero = f"{ab_t}(0.0f)"
    src = f"""
using namespace nvcuda;
// {nw} warps, {fpw} 16x16 fragment(s) each; block tile {bm}x{bn}, k step {bk}
TL_SHARED({ab_t}, k_as, [{bm}][{sa}]);
TL_SHARED({ab_t}, k_bs, [{bk}][{sb}]);
TL_SHARED(float, k_cs, [{nw}][16][{sc}]);
const int k_tid = threadIdx.x, k_warp = k_tid / 32;
const int k_bid = blockIdx.x;
const {it} k_batch = k_bid / {grid_m * grid_n};
const int k_m0 = (k_bid / {grid_n}) % {grid_m} * {bm}, k_n0 = k_bid % {grid_n} * {bn};
const {it} k_abase = {a_base}, k_bbase = {b_base};
const {it} k_cbase = k_batch * {E[m] * E[n]};
wmma::fragment<wmma::accumulator, 16, 16, 16, float> k_acc[{fpw}];
for (int f = 0; f < {fpw}; ++f) wmma::fill_fragment(k_acc[f], 0.0f);
for (int k_k0 = 0; k_k0 < {E[k]}; k_k0 += {bk}) {{
  for (int e = k_tid; e < {bm * bk}; e += {nt}) {{
    const int r = e / {bk}, c = e % {bk}, gr = k_m0 + r, gc = k_k0 + c;
    k_as[r][c] = (gr < {E[m]} && gc < {E[k]}) ? TL_LD({ina}, k_abase + {a_idx}) : {zero};
  }}
  for (int e = k_tid; e < {bk * bn}; e += {nt}) {{
    const int r = e / {bn}, c = e % {bn}, gr = k_k0 + r, gc = k_n0 + c;
    k_bs[r][c] = (gr < {E[k]} && gc < {E[n]}) ? TL_LD({inb}, k_bbase + {b_idx}) : {zero};
  }}
  __syncthreads();
  for (int kk = 0; kk < {bk}; kk += 16) {{
    for (int f = 0; f < {fpw}; ++f) {{
      const int fi = k_warp + f * {nw}, fm = fi / {fn}, fc = fi % {fn};
      wmma::fragment<wmma::matrix_a, 16, 16, 16, {ab_t}, wmma::row_major> k_a;
      wmma::fragment<wmma::matrix_b, 16, 16, 16, {ab_t}, wmma::row_major> k_b;
      wmma::load_matrix_sync(k_a, &k_as[fm * 16][kk], {sa});
      wmma::load_matrix_sync(k_b, &k_bs[kk][fc * 16], {sb});
      wmma::mma_sync(k_acc[f], k_a, k_b, k_acc[f]);
    }}
  }}
  __syncthreads();
}}
// Epilogue: each warp stages one fragment at a time in its own 16x16 scratch, then stores it row by row.
for (int f = 0; f < {fpw}; ++f) {{
  const int fi = k_warp + f * {nw}, fm = fi / {fn}, fc = fi % {fn};
  wmma::store_matrix_sync(&k_cs[k_warp][0][0], k_acc[f], {sc}, wmma::mem_row_major);
  __syncwarp();
  for (int e = k_tid % 32; e < 256; e += 32) {{
    const int r = e / 16, c = e % 16, gm = k_m0 + fm * 16 + r, gn = k_n0 + fc * 16 + c;
    if (gm < {E[m]} && gn < {E[n]}) TL_ST({ctx.out_name}, k_cbase + ({it})gm * {E[n]} + gn, {out_t}(k_cs[k_warp][r][c]));
  }}
  __syncwarp();
}}
"""
    kb = KernelBuilder()
    cfg = {"block": {a: rtile["block"].get(a, 1) for a in ctx.out_axes}, "thread": dict(thread),
           "step": {k: bk}, "mma": list(MMA)}
    return kb.func(name, [nb * grid_m * grid_n], [nt], ctx.params(), kind="tiled_mma", flops=ctx.flops(),
                   bytes_modelled=modelled_bytes(ctx, mt, bm, bn, bk), config=cfg, source=src,
                   smem_static=smem_bytes(bm, bn, bk, ctx.dtypes[0], nw),
                   tensor_core=tensor_core_dtype(ctx.dtypes[0]))


def modelled_bytes(ctx: ComputeContext, mt: dict, bm: int, bn: int, bk: int) -> int:
    """In-bounds elements of every staged A and B tile, plus the output once (exact: the tile grid is a
    product of per-axis clipped extents)."""
    E = ctx.extents
    m, n, k = mt["m"], mt["n"], mt["k"]
    nb = math.prod(E[b] for b in mt["batch"])
    gm, gn = -(-E[m] // bm), -(-E[n] // bn)
    elem = itemsize(ctx.dtypes[0])
    a = nb * gn * E[m] * E[k] * elem      # every block row of the grid reads all of A's rows once per column
    b = nb * gm * E[k] * E[n] * elem
    return a + b + ctx.out_bytes()
