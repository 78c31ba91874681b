"""Implicit-GEMM convolution on the sm_80 tensor-core engine (``mma_engine``; issue #17, DESIGN §9).

A channels-last convolution (the ``conv-layout`` pass's form)

    Y[n, f, o0, o1] += X[n, o0*s0 + k0*d0 - p0, o1*s1 + k1*d1 - p1, c] * W[f, k0, k1, c]

is the product C[m, q] = sum_k A[m, k] B[q, k] with M = F (output channels), N = batch x output pixels
(q = (n, o0, o1) flattened), K = R x S x C (k = (k0, k1, c) flattened, c fastest): A is the re-laid-out weight
[F][R][S][C], read as the engine reads any [m][k] operand, and B[q][k] is the im2col matrix, never stored.
The engine's main loop, ldmatrix fragments and mma.sync are the GEMM's; only B's copies differ, as in
CUTLASS's analytic fprop iterator (cutlass/conv/threadblock/conv2d_fprop_activation_tile_access_iterator_
analytic.h):

- with C a multiple of the chunk (8 f16/bf16, 4 f32), 8 consecutive k of one pixel are 8 consecutive channels
  of one input pixel, contiguous and 16-byte aligned in NHWC: one ``cp.async``, zero-filled (src-size 0) where
  the window tap falls in the padding, past the last pixel or past K;
- a thread's chunks are fixed rows (pixels) of the stage tile: a pointer to each one's window corner in the
  input and a mask of its taps inside the input (one bit per tap of the R x S window) are computed once
  before the main loop; per k tile a thread splits its column k into (tap, channel) once, and each chunk is
  its pointer plus one offset, valid where its mask has the tap's bit (7x7 and larger windows check the
  tap's row and column against H and W instead);
- the epilogue stores C[f, q] to the NCHW output at ((n F + f) P + p), P = OH x OW, or runs a fused
  epilogue's members (bias, BN, ReLU, casts) on the accumulators with (n, f, o0, o1) bound.

The block tile is chosen here (:func:`choose_tile`), not by Roller, whose rTile is for the NCHW loop nest: the
one with the least modelled time among power-of-two tiles, time ~ padded FLOPs / wave efficiency x (1 +
32 (1/BM + 1/BN)) (the last factor: operand traffic per FLOP of a BM x BN tile); stages follow from
shared memory as for every engine kernel.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...analysis.conv_form import conv_form
from ...analysis.mma_tile import OUT_DTYPES, tensor_core_dtype
from ...ir.types import itemsize
from . import mma_engine

TILE_SIZES = (16, 32, 64, 128, 256)
MAX_TILE = 256 * 128
OVERHEAD = 32     # operand elements per output of a BM x BN tile: (BM + BN) K / (BM BN K) ~ 1/BN + 1/BM
MASK_TAPS = 32    # window taps a 32-bit mask per pixel holds (7x7 and larger keep row/column checks)
MAX_REGS = 160    # accumulators + B plan registers (:func:`_registers`) a tile may keep: ptxas stays under 255


@dataclass(frozen=True)
class ConvGemm:
    """A channels-last convolution as an implicit GEMM (M = F, N = NB x OH x OW, K = R x S x C)."""
    x: object          # the input's Access (NHWC)
    w: object          # the weight's Access ([F][R][S][C])
    dtype: str         # operand type: f16, bf16, or f32 (tf32)
    nb: int
    h: int
    w_: int
    c: int
    f: int
    r: int
    s: int
    oh: int
    ow: int
    window: tuple      # ((s0, d0, p0), (s1, d1, p1))

    @property
    def extents(self) -> dict:
        return {"M": self.f, "N": self.nb * self.oh * self.ow, "K": self.r * self.s * self.c}

    def mt(self) -> dict:
        """The engine's matched-product dict: A = the weight [m][k], B = im2col [n][k], no batch axes."""
        return {"m": "M", "n": "N", "k": "K", "batch": [], "a": self.w, "b": self.x, "a_kmajor": False,
                "b_nmajor": True, "a_batched": False, "b_batched": False, "dtype": self.dtype}


def match(ctx) -> ConvGemm | None:
    """The :class:`ConvGemm` of ``ctx`` when the engine runs it: a channels-last 2-D convolution of f16/bf16
    operands (f32 marked tf32), C a multiple of the 16-byte chunk, on an sm_80+ target."""
    from .tiled_mma import tiled_for
    form = conv_form(ctx.expr)
    if form is None or not form.nhwc:
        return None
    tf32 = ctx.op.attributes.get("precision") == "tf32" and set(ctx.dtypes) == {"f32"} and ctx.out_dtype == "f32"
    if not (tf32 or set(ctx.dtypes) in ({"f16"}, {"bf16"})) or ctx.out_dtype not in OUT_DTYPES:
        return None
    if mma_engine.sm_version(tiled_for(ctx)) < 80:
        return None
    nb, h, w, c = ctx.shapes[ctx.input_of(form.x)]
    f, r, s, _ = ctx.shapes[ctx.input_of(form.w)]
    _, _, oh, ow = ctx.out_shape
    if c % mma_engine.chunk_of(ctx.dtypes[0]):
        return None
    return ConvGemm(form.x, form.w, ctx.dtypes[0], nb, h, w, c, f, r, s, oh, ow, form.window)


def choose_tile(cg: ConvGemm, spec) -> mma_engine.EngineConfig | None:
    """The engine shape with the least modelled time (module docstring), ties to the larger tile."""
    E = cg.extents
    best = None
    for bm in TILE_SIZES:
        for bn in TILE_SIZES:
            if bm * bn > MAX_TILE or (bm > 16 and bm >= 2 * E["M"]) or (bn > 16 and bn >= 2 * E["N"]):
                continue
            cfg = mma_engine.plan(bm, bn, E["K"], min(8, max(4, bm * bn // 4096)), cg.dtype, spec)
            if cfg is None or _registers(cfg, cg.dtype, cg.r * cg.s) > MAX_REGS:
                continue
            gm, gn = -(-E["M"] // bm), -(-E["N"] // bn)
            blocks = gm * gn
            waves = -(-blocks // spec.num_sms)
            cost = gm * bm * gn * bn * waves * spec.num_sms / blocks * (1 + OVERHEAD * (1 / bm + 1 / bn))
            key = (cost, -bm * bn, -bm)
            if best is None or key < best[0]:
                best = (key, cfg)
    return best[1] if best else None


def _registers(cfg, dtype: str, taps: int) -> int:
    """A thread's accumulators plus the registers its B copy plan keeps across the main loop, per chunk: the
    pixel's input pointer and tap mask (3), or its corner row, column and 64-bit offset (4) past
    :data:`MASK_TAPS` taps. ptxas spilled a 64x256 tile of 4 warps (128 + 16 x 4: 144 B on sm_80) and kept
    128x128 (128 + 8 x 4) in 252 registers."""
    chunks = -(-cfg.bn * (cfg.bk // mma_engine.chunk_of(dtype)) // (32 * cfg.warps))
    return cfg.acc_per_thread + (3 if taps <= MASK_TAPS else 4) * chunks


def _rows(op, threads: int) -> tuple:
    """(strided, chunks per thread, C text of chunk i's tile row, of its column): the engine's copy layout."""
    per_row = op.cols // op.chunk
    n = -(-op.rows * per_row // threads)
    if mma_engine.strided(op, threads):
        return True, n, f"k_tid / {per_row} + i * {threads // per_row}", "k_b_col"
    return False, n, f"(k_tid + i * {threads}) / {per_row}", f"(k_tid + i * {threads}) % {per_row} * {op.chunk}"


def plan_lines(cg: ConvGemm, op, threads: int) -> list:
    """B's copy plan: per chunk of this thread, its shared offset, a pointer to its pixel's window corner in
    the input, and which of the R x S taps fall inside the input (a bit each; none for a row past the last
    pixel). Past :data:`MASK_TAPS` taps the corner's row and column are kept instead (the row far negative
    for a row past the last pixel, so every tap check fails)."""
    (s0, d0, p0), (s1, d1, p1) = cg.window
    per_row = op.cols // op.chunk
    pix, taps = cg.oh * cg.ow, cg.r * cg.s
    strided, n, row, col = _rows(op, threads)
    ctype = mma_engine.CTYPE[cg.dtype]
    if taps <= MASK_TAPS:
        out = [f"unsigned k_b_mask[{n}];", f"const {ctype}* k_b_ptr[{n}];"]
    else:
        out = [f"int k_b_h[{n}], k_b_w[{n}];", f"long long k_b_src[{n}];"]
    if strided:
        out += [f"const int k_b_col = k_tid % {per_row} * {op.chunk};",
                f"const int k_b_dst = {mma_engine.swizzle(op.cols, f'k_tid / {per_row}', 'k_b_col', op.chunk)};"]
    else:
        out += [f"int k_b_dst[{n}], k_b_col[{n}];"]
    out += ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{",
            f"  const int r = {row}, q = k_n0 + r;   // the output pixel (image, row, column) flattened",
            f"  const int img = q / {pix}, oh = q % {pix} / {cg.ow}, ow = q % {cg.ow};"]
    base = f"(long long)img * {cg.h * cg.w_ * cg.c}"
    if taps <= MASK_TAPS:
        out += [f"  const int h0 = oh * {s0} - {p0}, w0 = ow * {s1} - {p1};",
                "  unsigned mask = 0u;",
                "  #pragma unroll",
                f"  for (int t = 0; t < {taps}; ++t)",
                f"    mask |= ((unsigned)(h0 + t / {cg.s} * {d0}) < {cg.h}u && (unsigned)(w0 + t % {cg.s} * {d1}) < "
                f"{cg.w_}u ? 1u : 0u) << t;",
                f"  k_b_mask[i] = q < {op.outer_ext} ? mask : 0u;",
                f"  k_b_ptr[i] = {op.name} + ({base} + ((long long)h0 * {cg.w_} + w0) * {cg.c});"]
    else:
        out += [f"  k_b_h[i] = q < {op.outer_ext} ? oh * {s0} - {p0} : -(1 << 28);",
                f"  k_b_w[i] = ow * {s1} - {p1};",
                f"  k_b_src[i] = {base} + ((long long)k_b_h[i] * {cg.w_} + k_b_w[i]) * {cg.c};"]
    if not strided:
        out += [f"  k_b_col[i] = {col};", f"  k_b_dst[i] = {mma_engine.swizzle(op.cols, 'r', 'k_b_col[i]', op.chunk)};"]
    return out + ["}"]


def issue_lines(cg: ConvGemm, op, name: str, smem: str, threads: int, bk: int, k_ragged: bool) -> list:
    """B's copies of k tile ``kt``: per chunk, k = (tap, channel), one 16-byte cp.async of 8 (f32: 4) channels
    of the input pixel under the tap, zero-filled where the tap is in the padding and past K."""
    (_, d0, _), (_, d1, _) = cg.window
    chunks = op.rows * (op.cols // op.chunk)
    strided, n, _, _ = _rows(op, threads)
    k = f"kt * {bk} + {'k_b_col' if strided else 'k_b_col[i]'}"
    past = f"k < {op.k_ext} && " if k_ragged else ""
    if cg.r * cg.s <= MASK_TAPS:
        tap = [f"const int k = {k}, tap = k / {cg.c};",
               f"const int koff = (tap / {cg.s} * {d0 * cg.w_} + tap % {cg.s} * {d1}) * {cg.c} + k % {cg.c};"]
        src, valid = "k_b_ptr[i], koff", f"{past}(k_b_mask[i] >> tap & 1u) != 0u"
    else:
        tap = [f"const int k = {k};", f"const int kr = k / {cg.s * cg.c}, ks = k / {cg.c} % {cg.s};",
               f"const long long koff = (long long)(kr * {d0 * cg.w_} + ks * {d1}) * {cg.c} + k % {cg.c};"]
        src = f"{name}, k_b_src[i] + koff"
        valid = (f"{past}(unsigned)(k_b_h[i] + kr * {d0}) < {cg.h}u && (unsigned)(k_b_w[i] + ks * {d1}) < "
                 f"{cg.w_}u")
    if strided:
        rows = threads // (op.cols // op.chunk)
        return ["{", *("  " + t for t in tap), "  #pragma unroll", f"  for (int i = 0; i < {n}; ++i)",
                f"    tl_cp_async_16({smem} + k_b_dst + i * {rows * op.cols}, {src}, {valid});", "}"]
    guard = f"if (k_tid + i * {threads} < {chunks}) " if chunks % threads else ""
    return ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{", *("  " + t for t in tap),
            f"  {guard}tl_cp_async_16({smem} + k_b_dst[i], {src}, {valid});", "}"]


def epilogue_lines(cg: ConvGemm, ctx) -> list:
    """One mma tile's accumulators to the NCHW output (C[f, q] at (n F + f) P + p), or through a fused
    context's store hook with the anchor's (n, f, o0, o1) bound."""
    pix, E = cg.oh * cg.ow, cg.extents
    it = "long long" if ctx.idx_t == "i64" else "int"
    gm = "k_m0 + k_wm + mi * 16 + k_lane / 4 + i / 2 * 8"
    gn = "k_n0 + k_wn + ni * 8 + k_lane % 4 * 2 + i % 2"
    inside = f"gm < {E['M']} && gn < {E['N']}"
    if not ctx.fused:
        value = f"{mma_engine.CTYPE[ctx.out_dtype]}(k_acc[mi][ni][i])"
        return ["#pragma unroll", "for (int i = 0; i < 4; ++i) {", f"  const int gm = {gm};", f"  const int gn = {gn};",
                f"  if ({inside}) TL_ST({ctx.out_name}, ({it})(gn / {pix}) * {cg.f * pix} + ({it})gm * {pix} + "
                f"gn % {pix}, {value});", "}"]
    return fused_store_lines(cg, ctx, gm, gn, "k_acc[mi][ni][i]")


def fused_store_lines(cg: ConvGemm, ctx, gm: str, gn: str, acc: str) -> list:
    """The four accumulators ``acc`` (in ``i``) at output channel ``gm``, pixel ``gn`` through a fused context's
    store hook, the anchor's (n, f, o0, o1) bound; shared by the mma.sync and wgmma conv epilogues."""
    from ..cstyle import render_body
    from .builder import KernelBuilder, linearize
    pix, E = cg.oh * cg.ow, cg.extents
    n, f, o0, o1 = ctx.out_axes
    kb = KernelBuilder()
    with kb.loop("i", 0, 4, unroll=-1):
        kb.let("gm", "i32", gm)
        kb.let("gn", "i32", gn)
        kb.let(ctx.axis_var(n), ctx.idx_t, f"gn / {pix}")
        kb.let(ctx.axis_var(f), ctx.idx_t, "gm")
        kb.let(ctx.axis_var(o0), ctx.idx_t, f"gn % {pix} / {cg.ow}")
        kb.let(ctx.axis_var(o1), ctx.idx_t, f"gn % {cg.ow}")
        index = linearize([ctx.axis_var(a) for a in ctx.out_axes], ctx.out_shape)
        ctx.store_result(kb, index, acc, f"gm < {E['M']} && gn < {E['N']}")
    func = kb.func("k_epilogue", [1], [1], ctx.params())
    return [line[2:] for line in render_body(func)]


def modelled_bytes(cg: ConvGemm, ctx, cfg) -> int:
    """Exactly the bytes the copies load: every block column reads all of the weight's F rows, every block
    row the taps inside the input of its pixels (C channels each); plus the output once."""
    E = cg.extents
    gm, gn = -(-E["M"] // cfg.bm), -(-E["N"] // cfg.bn)
    taps = 1
    for size, out, k, (st, d, p) in zip((cg.h, cg.w_), (cg.oh, cg.ow), (cg.r, cg.s), cg.window):
        pos = np.arange(out)[:, None] * st + np.arange(k)[None, :] * d - p
        taps *= int(((pos >= 0) & (pos < size)).sum())
    elem = itemsize(cg.dtype)
    return gn * E["M"] * E["K"] * elem + gm * cg.nb * taps * cg.c * elem + ctx.out_bytes()


def lower(ctx, name: str, cg: ConvGemm, cfg):
    """The ``kernel.func`` of the implicit-GEMM engine kernel for ``ctx`` with shape ``cfg`` (on sm_90, the
    wgmma variant where it has a shape: ``wgmma_conv``)."""
    from . import wgmma_conv
    from .builder import KernelBuilder
    from .tiled_mma import tiled_for
    wg = wgmma_conv.plan(cg, tiled_for(ctx))
    if wg is not None:
        return wgmma_conv.lower(ctx, name, cg, wg)
    E = cg.extents
    conf = {"block": {"M": cfg.bm, "N": cfg.bn}, "step": {"K": cfg.bk}, "implicit_gemm": [E["M"], E["N"], E["K"]],
            "mma": [16, 8, mma_engine.MMA_K[cg.dtype]], "engine": "mma_sync", "warps": [cfg.warps_m, cfg.warps_n],
            "stages": cfg.stages}
    blocks = -(-E["M"] // cfg.bm) * -(-E["N"] // cfg.bn)
    smem = cfg.smem_bytes(cg.dtype)
    return KernelBuilder().func(
        name, [blocks], [32 * cfg.warps], ctx.params(), kind="tiled_mma", flops=ctx.flops(),
        bytes_modelled=modelled_bytes(cg, ctx, cfg), config=conf,
        source=mma_engine.kernel_source(ctx, cg.mt(), cfg, conv=cg), smem=smem if cfg.dynamic else 0,
        smem_static=0 if cfg.dynamic else smem, tensor_core=tensor_core_dtype(cg.dtype))


def engine(ctx):
    """``(ConvGemm, EngineConfig)`` when the engine runs ``ctx`` as an implicit GEMM, else None."""
    from .tiled_mma import tiled_for
    cg = match(ctx)
    if cg is None:
        return None
    cfg = choose_tile(cg, tiled_for(ctx))
    return (cg, cfg) if cfg is not None else None


__all__ = ["ConvGemm", "choose_tile", "engine", "lower", "match"]
