"""Implicit-GEMM convolution on wgmma for sm_90 (issue #21, docs/hopper.md): the sm_80 engine's implicit GEMM
(``mma_conv``: M = F, N = batch x output pixels, K = R x S x C over a channels-last input) with the wgmma
engine's warp-specialised pipeline (``wgmma_engine``).

- A, the [F][R*S*C] weight, is K-major and loads as the wgmma engine loads any [m][k] operand: one TMA box
  (64 k x BM rows, 128B-swizzled) per k tile, zero-filled past F and K, signalled by complete_tx;
- B, the im2col matrix, is gathered by the whole producer warpgroup as ``mma_conv`` gathers it: per pixel row
  of the stage tile and 16-byte chunk of 8 channels under one tap, one ``cp.async`` (zero-filled in the
  padding, past the last pixel and past K), each thread's pixels' window pointers and tap masks computed once
  (``mma_conv.plan_lines`` / ``issue_lines``). The destination is ``tl_swizzle_b16<64>``: chunk c of row r at
  r * 128 + (c ^ r % 8) * 16, which is wgmma's 128-byte swizzle of a K-major tile on a 1024-aligned base. TMA's
  im2col mode is not emulated, and cp.async's mbarrier arrive (cp.async.mbarrier.arrive) neither, so each
  producer thread completes its copies with ``cp.async.wait_group``, orders them for the async proxy
  (``fence.proxy.async``: wgmma reads shared memory through it) and arrives on the stage's ``full`` barrier
  (128 arrivals; the first thread's ``expect_tx`` adds A's box bytes). A thread keeps :func:`lag` k tiles of
  copies in flight before it waits, the most that cannot deadlock (the consumers release a stage one k tile
  after its own, so a stage whose arrive is further behind would wait on itself);
- consumer warpgroups run the wgmma engine's main loop unchanged (4 chained m64nBNk16 per k tile, one group in
  flight, the stage released one k tile later), and the epilogue stores C[f, q] to the NCHW output or runs a
  fused context's members (bias, BN, ReLU, casts) on the accumulators with (n, f, o0, o1) bound;
- multicast (:func:`clustered`, issue #21): consecutive blocks are pixel tiles of one channel tile, so they
  read the same weight tile; where the pixel tiles come in whole clusters of ``wgmma_shape.MULTICAST``, pairs
  of blocks form a cluster (``__cluster_dims__(2, 1, 1)``) and each producer's thread 0 loads BM / 2 of the
  weight rows with ``.multicast::cluster`` to both, as the GEMM engine shares A (``wgmma_engine``: ``empty``
  counts both blocks' consumer warps, lane r of each releases on block r's barrier, the last stage is
  released too, thread 0 waits for every stage's final release before it exits, a cluster barrier after the
  barriers' init). B stays per block: it is gathered by ``cp.async``, which has no multicast.

Selected by ``mma_conv.lower`` for an sm_90 target where :func:`plan` gives a shape (f16/bf16; tf32 convs and
shapes no tile fits stay on the mma.sync implicit GEMM). The kernel carries ``arch_features.MARK`` (sm_90a).
"""
from __future__ import annotations

import dataclasses

from ...analysis import wgmma_shape
from ...analysis.hardware import GPUSpec
from ...analysis.mma_tile import tensor_core_dtype
from ...analysis.wgmma_shape import CONSUMER_REGS
from ...ir.types import itemsize
from ..arch_features import MARK
from . import mma_conv, wgmma_engine
from .mma_engine import CTYPE, Operand, sm_version
from .wgmma_engine import WG_FN, WgmmaConfig

BK = 64               # k tile: one 128-byte swizzled row of f16/bf16 (8 chunks of 8 channels)
PRODUCER_THREADS = 128


def plan(cg: mma_conv.ConvGemm, spec: GPUSpec) -> WgmmaConfig | None:
    """The wgmma engine's shape for the implicit GEMM on ``spec`` (``wgmma_engine.plan`` on A = [F][K] and
    B = [N][K], both K-major), or None: not sm_90, not f16/bf16 (tf32 stays on mma.sync), or no tile fits."""
    if sm_version(spec) != 90 or cg.dtype not in ("f16", "bf16"):
        return None
    return wgmma_engine.plan(spec, cg.mt(), cg.extents, cg.dtype)


def clustered(cg: mma_conv.ConvGemm, spec: GPUSpec, cfg: WgmmaConfig) -> WgmmaConfig:
    """``cfg`` in clusters of ``wgmma_shape.MULTICAST`` blocks along N (pixel tiles of one channel tile) that
    share the weight tile by TMA multicast, where the target has clusters and the pixel tiles come in whole
    clusters (the grid is channel-tile-major: a cluster never spans two channel tiles); else ``cfg``. The
    weight's global bytes are then read once per cluster (never more traffic), at the price of one predicated
    remote arrive per consumer thread and k tile and the producer tail."""
    c = wgmma_shape.MULTICAST
    grid_n = -(-cg.extents["N"] // cfg.bn)
    if cfg.cluster != 1 or spec.max_cluster_blocks < c or grid_n % c or cfg.bm % (8 * c):
        return cfg
    return dataclasses.replace(cfg, cluster=c)


def lag(cfg: WgmmaConfig) -> int:
    """k tiles of cp.async a producer thread keeps in flight before it waits for the oldest and arrives: the
    producer refills a stage once the consumers released it, which they do while they consume the next k tile,
    so the arrive of k tile t must come before the producer waits to refill t + 1's stage: lag <= stages - 2."""
    return max(0, cfg.stages - 2)


def register_split(cfg: WgmmaConfig, taps: int) -> tuple:
    """(producer, consumer) ``setmaxnreg`` counts with two consumer warpgroups: the producer keeps its B copy
    plan (per chunk: pointer and tap mask, 3 registers, or 4 past ``mma_conv.MASK_TAPS`` taps, as
    ``mma_conv._registers`` counts) plus 40, the consumers share the rest of the 64K registers
    (1 x P + 2 x C <= 512), at most the wgmma engine's 232."""
    chunks = cfg.bn * (BK // 8) // PRODUCER_THREADS
    producer = -(-(40 + (3 if taps <= mma_conv.MASK_TAPS else 4) * chunks) // 8) * 8
    return producer, min(CONSUMER_REGS, (512 - producer) // 2 // 8 * 8)


def b_operand(cg: mma_conv.ConvGemm, cfg: WgmmaConfig, name: str) -> Operand:
    """B's stage tile as ``mma_conv``'s copy plan reads it: BN pixel rows of 64 k (one swizzled 128-byte row)."""
    E = cg.extents
    return Operand(name, "k_n0", "k_k0", E["N"], E["K"], cfg.bn, BK, True, E["K"])


def kernel_source(ctx, cg: mma_conv.ConvGemm, cfg: WgmmaConfig) -> str:
    """The CUDA body of the implicit-GEMM wgmma kernel for ``ctx`` (module docstring)."""
    E = cg.extents
    dtype, ctype = cg.dtype, CTYPE[cg.dtype]
    it = "long long" if ctx.idx_t == "i64" else "int"
    grid_m, grid_n = -(-E["M"] // cfg.bm), -(-E["N"] // cfg.bn)
    k_tiles = -(-E["K"] // BK)
    s, d = cfg.stages, lag(cfg)
    a_bytes = cfg.bm * 128
    b = b_operand(cg, cfg, ctx.names[cg.x.tensor])
    ragged = E["K"] % BK != 0
    a_map = wgmma_engine.operand_maps(cg.mt(), E, cfg, ctx.names, BK)[0]
    (coords,), (a_off,) = a_map.loads, a_map.offsets
    rebalance = cfg.consumers > 1
    c = cfg.cluster
    a_load = (f"tl_tma_load_multicast_2d(k_st + {a_off}, k_tma0, &k_full[k_s], {hex((1 << c) - 1)}, "
              f"{', '.join(coords)});   // this block's share of the weight tile, to every block of the cluster"
              if c > 1 else f"tl_tma_load_2d(k_st, k_tma0, &k_full[k_s], {', '.join(coords)});")
    p_regs, c_regs = register_split(cfg, cg.r * cg.s)
    ind = lambda lines, n: ["  " * n + ln for ln in lines]   # noqa: E731
    src = [
        MARK,
        f"// wgmma implicit-GEMM conv: block tile {cfg.bm} channels x {cfg.bn} pixels, k tile {BK}, {s}-stage "
        f"pipeline (A by TMA, B gathered by cp.async, {d} k tile(s) in flight per producer thread); "
        f"{cfg.consumers} consumer warpgroup(s) of 64x{cfg.bn} (wgmma m64n{cfg.bn}k16 {dtype}, f32 accumulators)"
        + (f"; clusters of {c} pixel tiles share the weight tile (TMA multicast)" if c > 1 else ""),
        *wgmma_engine.smem_lines(cfg.stage_bytes, a_bytes, s),
        "const int k_bid = blockIdx.x;",
        f"const int k_m0 = k_bid / {grid_n} % {grid_m} * {cfg.bm}, k_n0 = k_bid % {grid_n} * {cfg.bn};",
        "if (k_tid == 0) {",
        f"  for (int i = 0; i < {s}; ++i) {{",
        f"    tl_mbarrier_init(&k_full[i], {PRODUCER_THREADS});   // every producer thread's B copies; A's TMA bytes",
        f"    tl_mbarrier_init(&k_empty[i], {128 * cfg.consumers});   // every consumer thread releases the stage"
        if c < 2 else
        f"    tl_mbarrier_init(&k_empty[i], {c * 4 * cfg.consumers});   // every consumer warp of every block of"
        " the cluster releases the stage",
        "  }",
        "  tl_mbarrier_init_fence();",
        "}",
        "__syncthreads();" if c < 2 else
        "tl_cluster_sync();   // every block's barriers exist before a peer's multicast or remote arrive reaches them",
        f"if (k_tid < {PRODUCER_THREADS}) {{   // producer warpgroup: A by TMA (thread 0), B by every thread",
        *([f"  tl_setmaxnreg_dec<{p_regs}>();"] if rebalance else []),
        "  // B's copy plan: this thread's pixels (window corner pointer, taps inside the input), computed once.",
        *ind(mma_conv.plan_lines(cg, b, PRODUCER_THREADS), 1),
        *(["  const int k_rank = (int)tl_cluster_rank();   // this block's share of the weight tile"] if c > 1 else []),
        "  int k_s = 0;",
        "  unsigned k_ph = 0;",
        f"  for (int kt = 0; kt < {k_tiles}; ++kt) {{",
        f"    if (kt >= {s}) tl_mbarrier_wait_parity(&k_empty[k_s], k_ph ^ 1u);   // its last reader is done",
        "    unsigned char* const k_st = k_smem + k_s * STAGE;",
        "    if (k_tid == 0) {",
        "      tl_mbarrier_expect_tx(&k_full[k_s], A_BYTES);   // the whole box, zero fill included",
        f"      {a_load}",
        "    }",
        f"    {ctype}* const k_sb = reinterpret_cast<{ctype}*>(k_st + A_BYTES);",
        *ind(mma_conv.issue_lines(cg, b, b.name, "k_sb", PRODUCER_THREADS, BK, ragged), 2),
        "    tl_cp_async_commit();",
        f"    if (kt >= {d}) {{   // k tile kt - {d} has landed: make it visible to wgmma and arrive",
        f"      tl_cp_async_wait<{d}>();",
        "      tl_fence_proxy_async();",
        f"      tl_mbarrier_arrive(&k_full[(kt - {d}) % {s}]);",
        "    }",
        f"    if (++k_s == {s}) k_s = 0, k_ph ^= 1u;",
        "  }",
        *([] if d == 0 else [
            "  tl_cp_async_wait_all();",
            "  tl_fence_proxy_async();",
            f"  for (int kt = {max(0, k_tiles - d)}; kt < {k_tiles}; ++kt) tl_mbarrier_arrive(&k_full[kt % {s}]);"]),
        *([] if c < 2 else [
            f"  if (k_tid == 0) for (int i = 0; i < {s}; ++i) {{   // the producer tail: every block has released"
            " every stage",
            f"    if ({k_tiles} + i >= {s}) tl_mbarrier_wait_parity(&k_empty[k_s], k_ph ^ 1u);",
            f"    if (++k_s == {s}) k_s = 0, k_ph ^= 1u;",
            "  }"]),
        "  return;",
        "}",
        *([f"tl_setmaxnreg_inc<{c_regs}>();"] if rebalance else []),
        "const int k_c = k_tid - 128, k_w = k_c / 32 % 4, k_lane = k_c % 32;",
        "// The consumer warpgroup, read back from lane 0 so ptxas knows it is warp-uniform (wgmma_engine).",
        "const int k_cg = __shfl_sync(0xffffffffu, k_c / 128, 0);",
        "const int k_wm = k_cg * 64;   // this consumer warpgroup's 64 output channels of the block tile",
        "const unsigned long long k_da = tl_wgmma_desc(k_smem + k_cg * 8192, 16, 1024, 128);",
        "const unsigned long long k_db = tl_wgmma_desc(k_smem + A_BYTES, 16, 1024, 128);",
        f"float k_acc[{cfg.bn // 2}];",
        "#pragma unroll",
        f"for (int i = 0; i < {cfg.bn // 2}; ++i) k_acc[i] = 0.0f;",
        "unsigned k_ph = 0;   // the full barriers' phase parity in this round of stages",
        *wgmma_engine.consumer_k_loop(k_tiles, s, BK // 16, f"{WG_FN[dtype]}<{cfg.bn}, 0, 0>(k_acc, k_da + (j * "
                                      "(STAGE >> 4) + kk * 2), k_db + (j * (STAGE >> 4) + kk * 2), 1);", c),
        # in a cluster the last k tile's stage is released too: the peers' producer tails wait for it
        *([wgmma_engine.release_line(c, str((k_tiles - 1) % s))] if c > 1 else []),
        "// Epilogue: register 4 ni + i of thread 32 w + l holds output channel 16 w + l / 4 + 8 (i / 2), pixel",
        "// 8 ni + 2 (l % 4) + i % 2 of the block tile.",
        "#pragma unroll",
        f"for (int ni = 0; ni < {cfg.bn // 8}; ++ni)",
        *ind(epilogue_lines(cg, ctx, it), 1),
    ]
    return "\n".join(src) + "\n"


GM = f"{wgmma_engine.ROW} + i / 2 * 8"
GN = f"{wgmma_engine.COL} + i % 2"


def epilogue_lines(cg: mma_conv.ConvGemm, ctx, it: str) -> list:
    """One n8 column block of the accumulators to the NCHW output (C[f, q] at (n F + f) P + p), or through a
    fused context's store hook with the anchor's (n, f, o0, o1) bound (``mma_conv.epilogue_lines``' way)."""
    pix, E = cg.oh * cg.ow, cg.extents
    inside = f"gm < {E['M']} && gn < {E['N']}"
    if not ctx.fused:
        return ["#pragma unroll", "for (int i = 0; i < 4; ++i) {", f"  const int gm = {GM}, gn = {GN};",
                f"  if ({inside}) TL_ST({ctx.out_name}, ({it})(gn / {pix}) * {cg.f * pix} + ({it})gm * {pix} + "
                f"gn % {pix}, {CTYPE[ctx.out_dtype]}(k_acc[ni * 4 + i]));", "}"]
    return mma_conv.fused_store_lines(cg, ctx, GM, GN, "k_acc[ni * 4 + i]")


def lower(ctx, name: str, cg: mma_conv.ConvGemm, cfg: WgmmaConfig):
    """The ``kernel.func`` of the implicit-GEMM wgmma kernel (dynamic shared memory; A's tensor map in
    ``tensor_maps``); its bytes are ``mma_conv.modelled_bytes`` (the same loads, TMA's zero fill unread)."""
    from .builder import KernelBuilder
    from .tiled_mma import tiled_for
    E = cg.extents
    params = ctx.params()
    cfg = clustered(cg, tiled_for(ctx), cfg)
    conf = {"block": {"M": cfg.bm, "N": cfg.bn}, "step": {"K": BK}, "implicit_gemm": [E["M"], E["N"], E["K"]],
            "mma": [64, cfg.bn, 16], "engine": "wgmma", "tile": [cfg.bm, cfg.bn],
            "warpgroups": [cfg.consumers, 1], "stages": cfg.stages}
    if cfg.cluster > 1:
        conf["cluster"] = {"N": cfg.cluster}
    saved = wgmma_shape.multicast_saved_bytes(cg.mt(), E, cfg, itemsize(cg.dtype))   # the weight once per cluster
    a_map = wgmma_engine.operand_maps(cg.mt(), E, cfg, ctx.names, BK)[0]
    return KernelBuilder().func(
        name, [-(-E["M"] // cfg.bm) * -(-E["N"] // cfg.bn)], [cfg.threads], params, kind="tiled_mma",
        flops=ctx.flops(), bytes_modelled=mma_conv.modelled_bytes(cg, ctx, cfg) - saved, config=conf,
        source=kernel_source(ctx, cg, cfg), smem=cfg.smem_bytes, smem_static=0,
        tensor_maps=wgmma_engine.tensor_map_attrs((a_map,), params, cg.dtype),
        cluster=cfg.cluster if cfg.cluster > 1 else None, tensor_core=tensor_core_dtype(cg.dtype))


__all__ = ["clustered", "lag", "lower", "plan", "register_split"]
