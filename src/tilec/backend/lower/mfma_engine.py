"""The AMD matrix-core (MFMA) engine: f16/bf16 (batched) matrix products ``C[b.., m, n] += A * B``, plain or with a
fused epilogue, on CDNA2/CDNA3 targets (``--arch mi250x|mi300x``), where the sm_80 engine (``mma_engine``) runs
them on NVIDIA GPUs (docs/amd.md, "Matrix cores").

The kernel is the classic LDS-staged MFMA GEMM (composable_kernel's ``blockwise_gemm_xdlops`` with a two-buffer
LDS pipeline), from the HIP prelude's ``tl_mfma_*`` (``__builtin_amdgcn_mfma_f32_{32x32x8,16x16x16}{f16,bf16_1k}``),
which the emulator runs with the ISA's lane layouts (``emu/emu_mfma.h``):

- a block computes a BM x BN tile of C with WM x WN wavefronts of 64 lanes, each a TM x TN wave tile of
  (TM / S) x (TN / S) MFMA tiles of S x S (S = 32: ``32x32x8``, 16 accumulators per lane; S = 16 where a wave
  tile is not a multiple of 32: ``16x16x16``, 4 per lane), accumulators in registers (the compiler puts them
  in AGPRs or VGPRs);
- per k tile (BK deep) the block reads A's and B's slices in chunks of 8 b16 into registers, zero outside the
  tensors: one 128-bit global load (``TL_LD4``) per chunk where the operand's contiguous extent is a multiple
  of 8 elements (its rows whole 16-byte chunks, so a chunk is wholly in or out), else 8 bounds-checked 16-bit
  loads (rows of any length: the tile then reads exactly its in-bounds elements, as the 128-bit path does);
  it writes them to LDS (``ds_write_b128``) in their global orientation, rows padded by 8 elements (16 bytes)
  against bank conflicts; two LDS buffers: the loads of k tile kt + 1 are issued before the MFMAs of k tile kt
  and stored to the other buffer after them, so one barrier per k tile suffices;
- a lane's MFMA operand is 4 consecutive k of one row of A (one column of B): one 64-bit LDS read where the
  tile's rows run along m (n) and its columns along k, else 4 16-bit reads down a column;
- the epilogue converts each accumulator to the output type (or evaluates the fused members on it) and
  stores it with bounds checks; consecutive lanes hold consecutive columns, so the stores coalesce.
"""
from __future__ import annotations

# The engine's shapes and what it takes are analysis-level facts (Roller's estimate reads them): re-exported.
from ...analysis.mfma_shape import (DTYPES, INST_K, MAX_WAVE_ACC, MAX_WAVES, PAD, MfmaConfig,  # noqa: F401
                                    plan, supports)
from . import mma_engine

CHUNK = 8            # b16 elements per 128-bit global load / LDS store
FN = {("f16", 32): "tl_mfma_32x32x8_f16", ("f16", 16): "tl_mfma_16x16x16_f16",
      ("bf16", 32): "tl_mfma_32x32x8_bf16", ("bf16", 16): "tl_mfma_16x16x16_bf16"}
ACC_T = {32: "tl_f32x16", 16: "tl_f32x4"}


def copy_lines(op: mma_engine.Operand, tag: str, base: str, threads: int) -> tuple:
    """(declarations, global-load statements, LDS-store statements) of one operand's k tile ``kt``: this thread's
    chunks of 8 b16 into 128-bit registers ``k_r{tag}``, zero outside the tensor, then into LDS buffer ``s{tag}``.
    A chunk is one 128-bit load where the operand's rows are whole 16-byte chunks, else 8 16-bit loads, each
    checked against the row's end (rows neither 16-byte aligned nor a whole number of chunks)."""
    per_row = op.cols // CHUNK
    chunks = op.rows * per_row
    n = -(-chunks // threads)
    stride = op.cols + PAD
    outer, inner = (x.replace("k_k0", f"kt * {op.cols if op.k_inner else op.rows}") for x in (op.outer, op.inner))
    k_ok = f"kt * {op.cols} + col < {op.k_ext}" if op.k_inner else f"kt * {op.rows} + r < {op.k_ext}"
    mn_ok = f"{outer} + r < {op.outer_ext}" if op.k_inner else f"{inner} + col < {op.inner_ext}"
    where = f"const int c = k_tid + i * {threads}, r = c / {per_row}, col = c % {per_row} * {CHUNK};"
    decl = [f"float4 k_r{tag}[{n}];"]
    store = ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{", f"  {where}"]
    if chunks % threads:
        store.append(f"  if (c < {chunks})")
    store.append(f"  {'  ' if chunks % threads else ''}*reinterpret_cast<float4*>(s{tag} + r * {stride} + col) = "
                 f"k_r{tag}[i];")
    store.append("}")
    if op.inner_ext % CHUNK:
        row_ok = f"{outer} + r < {op.outer_ext}"
        # Packed into 32-bit words by value, not through a pointer into k_r: that would put k_r in scratch.
        load = ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{", f"  {where}",
                f"  const bool ok = {'c < %d && ' % chunks if chunks % threads else ''}{row_ok};",
                f"  const long long e = {base} + (long long)({outer} + r) * {op.inner_ext} + {inner} + col;",
                "  unsigned w[4];",
                "  #pragma unroll",
                f"  for (int j = 0; j < {CHUNK}; ++j) {{",
                f"    const unsigned h = ok && {inner} + col + j < {op.inner_ext} ? "
                f"TL_LD(reinterpret_cast<const unsigned short*>({op.name}), e + j) : 0u;",
                "    w[j / 2] = j % 2 ? w[j / 2] | h << 16 : h;", "  }",
                f"  k_r{tag}[i] = make_float4(__uint_as_float(w[0]), __uint_as_float(w[1]), "
                "__uint_as_float(w[2]), __uint_as_float(w[3]));", "}"]
        return decl, load, store
    load = ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{", f"  {where}",
            f"  const bool ok = {'c < %d && ' % chunks if chunks % threads else ''}{mn_ok} && {k_ok};",
            f"  k_r{tag}[i] = ok ? TL_LD4({op.name}, {base} + (long long)({outer} + r) * {op.inner_ext} + {inner} "
            f"+ col) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);", "}"]
    return decl, load, store


def fragment_lines(op: mma_engine.Operand, tag: str, count: str, offset: str, inst: int) -> list:
    """One k step's operand registers ``{tag}[{count}]`` (tl_b16x4): lane l's 4 consecutive k of row (A) or column
    (B) ``{offset} + l % S`` of the wave's tile, at k ``kk + 4 (l / S)``."""
    stride = op.cols + PAD
    mn = f"{offset} + k_lane % {inst}"
    k = f"kk + k_lane / {inst} * 4"
    out = [f"tl_b16x4 {tag}[{count}];", "#pragma unroll", f"for (int x = 0; x < {count}; ++x) {{"]
    if op.k_inner:   # rows along m (n), k contiguous: one 64-bit read
        out.append(f"  {tag}[x] = *reinterpret_cast<const tl_b16x4*>(s{tag} + ({mn} + x * {inst}) * {stride} + {k});")
    else:            # rows along k: 4 reads down a column
        out += ["  #pragma unroll",
                f"  for (int j = 0; j < 4; ++j) {tag}[x][j] = s{tag}[({k} + j) * {stride} + {mn} + x * {inst}];"]
    return out + ["}"]


def kernel_source(ctx, mt: dict, cfg: MfmaConfig, lang) -> str:
    """The HIP body of the MFMA kernel for the matched product ``mt`` of ``ctx`` with shape ``cfg``."""
    m, n, k = mt["m"], mt["n"], mt["k"]
    E = ctx.extents
    dtype = ctx.dtypes[0]
    it = "long long" if ctx.idx_t == "i64" else "int"
    nt = 64 * cfg.waves
    tm, tn = cfg.wave_tile
    S = cfg.inst
    grid_m, grid_n = -(-E[m] // cfg.bm), -(-E[n] // cfg.bn)
    a, b = mma_engine.operands(mt, E, cfg, ctx.names)
    k_tiles = -(-E[k] // cfg.bk)
    a_elems, b_elems = cfg.lds_elems()
    adecl, aload, astore = copy_lines(a, "a", "k_abase", nt)
    bdecl, bload, bstore = copy_lines(b, "b", "k_bbase", nt)
    ind = lambda lines, d: ["  " * d + ln for ln in lines]   # noqa: E731
    fn = FN[(dtype, S)]
    src = [
        f"// mfma engine: block tile {cfg.bm}x{cfg.bn}, k tile {cfg.bk}, 2 LDS buffers; {cfg.waves_m}x{cfg.waves_n} "
        f"wavefronts of {tm}x{tn} ({S}x{S}x{INST_K[S]} {dtype}, f32 accumulators)",
        f"constexpr int MI = {tm // S}, NI = {tn // S};",
        f"constexpr int A_TILE = {a_elems}, B_TILE = {b_elems};   // elements of one buffer's tile (padded rows)",
        f"TL_SHARED(float4, k_smem, [{cfg.lds_bytes(dtype) // 16}]);",
        "short* const k_sa = reinterpret_cast<short*>(k_smem);   // [2][rows][cols + 8], b16 bit patterns",
        "short* const k_sb = k_sa + 2 * A_TILE;",
        "const int k_tid = threadIdx.x, k_lane = k_tid % 64, k_wave = k_tid / 64;",
        f"const int k_wm = k_wave / {cfg.waves_n} * {tm}, k_wn = k_wave % {cfg.waves_n} * {tn};",
        "const int k_bid = blockIdx.x;",
        f"const {it} k_batch = k_bid / {grid_m * grid_n};",
        f"const int k_m0 = (k_bid / {grid_n}) % {grid_m} * {cfg.bm}, k_n0 = k_bid % {grid_n} * {cfg.bn};",
        f"const {it} k_abase = {mma_engine.batch_base(mt['a_batched'], E[m] * E[k])}, "
        f"k_bbase = {mma_engine.batch_base(mt['b_batched'], E[k] * E[n])};",
        f"const {it} k_cbase = k_batch * {E[m] * E[n]};",
        *adecl, *bdecl,
        "// Read k tile kt's chunks into registers (zero outside the tensors) / write them to LDS buffer `buf`.",
        "auto k_load = [&](int kt) {", *ind(aload, 1), *ind(bload, 1), "};",
        "auto k_store = [&](int buf) {",
        "  short* const sa = k_sa + buf * A_TILE;", "  short* const sb = k_sb + buf * B_TILE;",
        *ind(astore, 1), *ind(bstore, 1), "};",
        f"{ACC_T[S]} k_acc[MI][NI];",
        "#pragma unroll",
        "for (int mi = 0; mi < MI; ++mi)",
        "  #pragma unroll",
        f"  for (int ni = 0; ni < NI; ++ni) k_acc[mi][ni] = {ACC_T[S]}{{}};",
        "k_load(0);",
        "k_store(0);",
        "__syncthreads();",
        f"for (int kt = 0; kt < {k_tiles}; ++kt) {{",
        f"  if (kt + 1 < {k_tiles}) k_load(kt + 1);   // in flight during this k tile's MFMAs",
        "  const short* const sa = k_sa + (kt & 1) * A_TILE;",
        "  const short* const sb = k_sb + (kt & 1) * B_TILE;",
        "  #pragma unroll",
        f"  for (int kk = 0; kk < {cfg.bk}; kk += {INST_K[S]}) {{",
        *ind(fragment_lines(a, "a", "MI", "k_wm", S), 2),
        *ind(fragment_lines(b, "b", "NI", "k_wn", S), 2),
        "    #pragma unroll",
        "    for (int mi = 0; mi < MI; ++mi)",
        "      #pragma unroll",
        f"      for (int ni = 0; ni < NI; ++ni) {fn}(k_acc[mi][ni], a[mi], b[ni]);",
        "  }",
        f"  if (kt + 1 < {k_tiles}) k_store((kt + 1) & 1);   // the buffer every wave finished reading last k tile",
        "  __syncthreads();",
        "}",
        f"// Epilogue: lane l holds column l % {S} of each MFMA tile, register r row "
        f"{'r / 4 * 8 + l / 32 * 4 + r % 4' if S == 32 else 'l / 16 * 4 + r'}.",
        "#pragma unroll",
        "for (int mi = 0; mi < MI; ++mi)",
        "  #pragma unroll",
        "  for (int ni = 0; ni < NI; ++ni)",
        *ind(fused_epilogue_lines(ctx, mt, cfg, lang) if ctx.fused
             else epilogue_lines(ctx, cfg, lang, it, E[m], E[n]), 2),
    ]
    return "\n".join(src) + "\n"


def _row_col(cfg: MfmaConfig) -> tuple:
    """C text: the global (row, column) of accumulator register ``r`` of MFMA tile (mi, ni) for this lane."""
    S = cfg.inst
    row = "r / 4 * 8 + k_lane / 32 * 4 + r % 4" if S == 32 else "k_lane / 16 * 4 + r"
    return f"k_m0 + k_wm + mi * {S} + {row}", f"k_n0 + k_wn + ni * {S} + k_lane % {S}"


def epilogue_lines(ctx, cfg: MfmaConfig, lang, it: str, m_ext: int, n_ext: int) -> list:
    """Store one MFMA tile's accumulators (k_acc[mi][ni]) as the output type, bounds-checked."""
    gm, gn = _row_col(cfg)
    out = ctx.out_dtype
    value = lang.from_f32[out].format("k_acc[mi][ni][r]") if out in lang.from_f32 else "k_acc[mi][ni][r]"
    return ["#pragma unroll", f"for (int r = 0; r < {cfg.inst * cfg.inst // 64}; ++r) {{",
            f"  const int gm = {gm}, gn = {gn};",
            f"  if (gm < {m_ext} && gn < {n_ext}) TL_ST({ctx.out_name}, k_cbase + ({it})gm * {n_ext} + gn, {value});",
            "}"]


def fused_epilogue_lines(ctx, mt: dict, cfg: MfmaConfig, lang) -> list:
    """A fused context's epilogue on one MFMA tile's accumulators, as ``mma_engine.fused_epilogue_lines`` does
    on mma.sync fragments: the output coordinates bound to the anchor's axis variables, the members evaluated
    on the f32 accumulator by the context's store hook, rendered in the target's language."""
    from ..cstyle import render_body
    from .builder import KernelBuilder, linearize, unflatten
    E = ctx.extents
    m, n, batch = mt["m"], mt["n"], mt["batch"]
    gm, gn = _row_col(cfg)
    kb = KernelBuilder()
    with kb.loop("r", 0, cfg.inst * cfg.inst // 64, unroll=-1):
        kb.let("gm", "i32", gm)
        kb.let("gn", "i32", gn)
        if batch:
            unflatten(kb, "k_batch", [ctx.axis_var(x) for x in batch], [E[x] for x in batch], ctx.idx_t)
        kb.let(ctx.axis_var(m), ctx.idx_t, "gm")
        kb.let(ctx.axis_var(n), ctx.idx_t, "gn")
        index = linearize([ctx.axis_var(x) for x in ctx.out_axes], ctx.out_shape)
        ctx.store_result(kb, index, "k_acc[mi][ni][r]", f"gm < {E[m]} && gn < {E[n]}")
    func = kb.func("k_epilogue", [1], [1], ctx.params())
    return [line[2:] for line in render_body(func, lang)]


def lower(ctx, name: str, rtile: dict, cfg: MfmaConfig, modelled_bytes: int):
    """The ``kernel.func`` of the MFMA kernel for ``ctx`` with shape ``cfg``."""
    from ..hip import language_for
    from .builder import KernelBuilder
    from .tiled_mma import match, tiled_for
    mt = match(ctx)
    dtype = ctx.dtypes[0]
    lang = language_for(tiled_for(ctx))
    tiles_k = -(-ctx.extents[mt["k"]] // cfg.bk)
    conf = {"block": {a: rtile["block"].get(a, 1) for a in ctx.out_axes}, "thread": dict(rtile.get("thread", {})),
            "step": {mt["k"]: cfg.bk}, "mma": [cfg.inst, cfg.inst, INST_K[cfg.inst]], "engine": "mfma",
            "warps": [cfg.waves_m, cfg.waves_n], "stages": cfg.stages,
            "mfma_per_wave": cfg.mfma_per_k_tile() * tiles_k}
    return KernelBuilder().func(
        name, [mma_engine.grid_blocks(ctx, mt, cfg)], [64 * cfg.waves], ctx.params(), kind="tiled_mma",
        flops=ctx.flops(), bytes_modelled=modelled_bytes, config=conf,
        source=kernel_source(ctx, mt, cfg, lang), smem_static=cfg.lds_bytes(dtype), tensor_core=dtype)
