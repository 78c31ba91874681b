"""The sm_80 tensor-core engine: a multi-stage ``cp.async`` pipeline, ``ldmatrix`` from XOR-swizzled shared
memory and ``mma.sync.m16n8k16`` with f32 accumulators (DESIGN §9), for an f16/bf16 (batched) matrix product
``C[b.., m, n] += A * B`` whose operands may each be stored either way round.

The shape of the kernel follows CUTLASS's sm80 multistage main loop (cutlass/gemm/collective/
sm80_mma_multistage.hpp) built from the prelude's primitives (``tl_cp_async_16``, ``tl_ldmatrix_x4[_trans]``,
``tl_mma_m16n8k16_*``), which the emulator runs with the PTX ISA's register layouts:

- a block computes a BM x BN tile of C; its warps form a WM x WN grid, each warp a TM x TN warp tile of
  (TM/16) x (TN/8) mma tiles whose f32 accumulators stay in registers;
- per k tile (BK deep) the block copies A's BM x BK and B's BK x BN slices to shared memory with 16-byte
  ``cp.async`` (128-bit global loads, no registers), ``stages`` k tiles in flight; a chunk outside the tensor
  is zero-filled (src-size 0), so edge tiles need no other case, as long as every operand's contiguous extent
  is a multiple of 8 elements (a chunk is in or out as a whole; :func:`supports`);
- each operand tile is stored as its global rows ([m][k] or [k][m] for A, [k][n] or [n][k] for B), 16-byte
  chunks XOR-swizzled by row (``tl_swizzle_b16``), so the 8 rows an ``ldmatrix`` phase reads hit 8 different
  bank groups; ``ldmatrix`` (``.trans`` where the tile's rows run along k) gives each lane exactly the
  registers ``mma.sync`` wants;
- the epilogue converts each lane's accumulators to the output type and stores them with bounds checks.

The stage count comes from the target's shared memory (``smem_per_block_optin_bytes``), the shared memory is
dynamic, and its launch takes the opt-in past 48 KB (``backend/launch_resources``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis.engine_shape import EngineConfig, chunk_of, plan, sm_version, supports  # noqa: F401 (re-exported)
from . import mma_tf32

CHUNK = 8            # b16 elements per 16-byte cp.async / ldmatrix row (f32: 4, :func:`chunk_of`)
MMA_FN = {"f16": "tl_mma_m16n8k16_f16f32", "bf16": "tl_mma_m16n8k16_bf16f32", "f32": "tl_mma_m16n8k8_tf32f32"}
MMA_K = {"f16": 16, "bf16": 16, "f32": 8}   # the instruction's k: m16n8k16 (f16/bf16), m16n8k8 (tf32 on f32 data)
CTYPE = {"f16": "half", "bf16": "__nv_bfloat16", "f32": "float"}


def swizzle(cols: int, row: str, col: str, chunk: int) -> str:
    """C text: the swizzled offset (in elements) of (``row``, ``col``) in a [rows][``cols``] tile of 16-byte
    chunks (``tl_swizzle_b16``). A 4-byte element is the pair of b16 columns 2c, 2c + 1 of a tile twice as
    wide, so the chunk index and the XOR pattern are the same and the offset halves."""
    if chunk == CHUNK:
        return f"tl_swizzle_b16<{cols}>({row}, {col})"
    return f"(tl_swizzle_b16<{cols * 2}>({row}, ({col}) * 2) >> 1)"


@dataclass(frozen=True)
class Operand:
    """How one input tile is staged: the global tensor's rows (``outer``) and contiguous axis (``inner``), which
    of them is k, and its shared tile's [rows][cols] shape per stage."""
    name: str          # the kernel parameter
    outer: str         # C expression: the global row of tile row r's first element (before + r)
    inner: str         # C expression: the global column of the tile's column 0
    outer_ext: int
    inner_ext: int
    rows: int
    cols: int
    k_inner: bool      # the tile's rows run along m/n and its columns along k
    k_ext: int         # K
    chunk: int = CHUNK   # elements per 16-byte chunk

    @property
    def elems(self) -> int:
        return self.rows * self.cols


def operands(mt: dict, extents: dict, cfg: EngineConfig, names: dict, chunk: int = CHUNK) -> tuple:
    """The A and B :class:`Operand` of the matched product at block offsets ``k_m0``/``k_n0`` and k ``k_k0``."""
    m, n, k = mt["m"], mt["n"], mt["k"]
    E = extents
    ina, inb = names[mt["a"].tensor], names[mt["b"].tensor]
    if mt["a_kmajor"]:   # A[k][m]
        a = Operand(ina, "k_k0", "k_m0", E[k], E[m], cfg.bk, cfg.bm, False, E[k], chunk)
    else:                # A[m][k]
        a = Operand(ina, "k_m0", "k_k0", E[m], E[k], cfg.bm, cfg.bk, True, E[k], chunk)
    if mt["b_nmajor"]:   # B[n][k]
        b = Operand(inb, "k_n0", "k_k0", E[n], E[k], cfg.bn, cfg.bk, True, E[k], chunk)
    else:                # B[k][n]
        b = Operand(inb, "k_k0", "k_n0", E[k], E[n], cfg.bk, cfg.bn, False, E[k], chunk)
    return a, b


def span_elems(cols: int, chunk: int = CHUNK) -> int:
    """Columns one swizzle pattern spans (``tl_swizzle_b16``): adding a multiple of it to a column adds the
    same to the offset, so only the column modulo it needs a register of its own."""
    chunks = cols // chunk
    return chunk * min(chunks, 8)


def strided(op: Operand, threads: int) -> bool:
    """Whether the block's threads cover one operand's stage tile in whole rounds of whole rows, each round
    a multiple of the swizzle's 8-row period below the last: then a thread's chunks share one column and one
    swizzle, and chunk i is the first one plus constants (i rounds of rows) in shared and global memory."""
    per_row = op.cols // op.chunk
    return threads % per_row == 0 and (threads // per_row) % 8 == 0 and (op.rows * per_row) % threads == 0


def mn_ragged(op: Operand) -> bool:
    """Whether the block tile overhangs the tensor along the operand's m or n axis."""
    return (op.outer_ext % op.rows if op.k_inner else op.inner_ext % op.cols) != 0


def strided_plan_lines(op: Operand, tag: str, base: str, ctype: str) -> list:
    """The strided copy plan (:func:`strided`): this thread's first chunk, at k tile 0."""
    per_row = op.cols // op.chunk
    outer, inner = (x.replace("k_k0", "0") for x in (op.outer, op.inner))
    return [f"const int k_{tag}_r0 = k_tid / {per_row}, k_{tag}_c0 = k_tid % {per_row} * {op.chunk};",
            f"const int k_{tag}_dst = {swizzle(op.cols, f'k_{tag}_r0', f'k_{tag}_c0', op.chunk)};",
            f"const {ctype}* const k_{tag}_ptr = {op.name} + {base} + (long long)({outer} + k_{tag}_r0) * "
            f"{op.inner_ext} + {inner} + k_{tag}_c0;"]


def strided_issue_lines(op: Operand, tag: str, smem: str, threads: int, bk: int, k_ragged: bool) -> list:
    """The strided issue (:func:`strided`): chunk i is ``i`` rounds of rows below the thread's first one; only
    the checks the shapes need (a block tile overhanging m or n, a ragged last k tile) are emitted."""
    per_row = op.cols // op.chunk
    rows = threads // per_row
    n = op.rows // rows
    step = bk if op.k_inner else bk * op.inner_ext
    checks = []
    if mn_ragged(op):
        checks.append(f"{op.outer} + k_{tag}_r0 + i * {rows} < {op.outer_ext}" if op.k_inner
                      else f"{op.inner} + k_{tag}_c0 < {op.inner_ext}")
    if k_ragged:
        checks.append(f"kt * {bk} + k_{tag}_c0 < {op.k_ext}" if op.k_inner
                      else f"kt * {bk} + k_{tag}_r0 + i * {rows} < {op.k_ext}")
    valid = " && ".join(checks) or "true"
    return ["#pragma unroll", f"for (int i = 0; i < {n}; ++i)",
            f"  tl_cp_async_16({smem} + k_{tag}_dst + i * {rows * op.cols}, k_{tag}_ptr, "
            f"i * {rows * op.inner_ext} + (long long)kt * {step}, {valid});"]


def copy_plan_lines(op: Operand, tag: str, base: str, threads: int, k_ragged: bool, ctype: str) -> list:
    """This thread's 16-byte chunks of one operand's stage tile, computed once before the main loop: shared
    offset (swizzled), global offset at k tile 0, whether the chunk's m/n position lies inside the tensor, and
    (K not a multiple of the k tile) its k position within the tile."""
    per_row = op.cols // op.chunk
    chunks = op.rows * per_row
    n = -(-chunks // threads)
    it = "long long"
    if strided(op, threads):
        return strided_plan_lines(op, tag, base, ctype)
    kpos = "col" if op.k_inner else "r"
    mn_ok = (f"{op.outer} + r < {op.outer_ext}" if op.k_inner else f"{op.inner} + col < {op.inner_ext}")
    out = [f"int k_{tag}_dst[{n}];", f"{it} k_{tag}_src[{n}];", f"bool k_{tag}_in[{n}];"]
    if k_ragged:
        out.append(f"int k_{tag}_k[{n}];")
    out += ["#pragma unroll", f"for (int i = 0; i < {n}; ++i) {{",
            f"  const int c = k_tid + i * {threads}, r = c / {per_row}, col = c % {per_row} * {op.chunk};",
            f"  const int k_k0 = 0;",
            f"  k_{tag}_dst[i] = {swizzle(op.cols, 'r', 'col', op.chunk)};",
            f"  k_{tag}_src[i] = {base} + ({it})({op.outer} + r) * {op.inner_ext} + {op.inner} + col;",
            f"  k_{tag}_in[i] = c < {chunks} && {mn_ok};"]
    if k_ragged:
        out.append(f"  k_{tag}_k[i] = {kpos};")
    out.append("}")
    return out


def issue_lines(op: Operand, tag: str, smem: str, threads: int, bk: int, k_ragged: bool) -> list:
    """The statements of the load lambda that issue one operand's k tile ``kt``: one cp.async per chunk, its
    global offset advanced by whole k tiles (along a row, or by rows), zero-filled outside the tensor."""
    per_row = op.cols // op.chunk
    chunks = op.rows * per_row
    n = -(-chunks // threads)
    step = bk if op.k_inner else bk * op.inner_ext
    if strided(op, threads):
        return strided_issue_lines(op, tag, smem, threads, bk, k_ragged)
    valid = f"k_{tag}_in[i]" + (f" && kt * {bk} + k_{tag}_k[i] < {op.k_ext}" if k_ragged else "")
    body = f"tl_cp_async_16({smem} + k_{tag}_dst[i], {op.name}, k_{tag}_src[i] + (long long)kt * {step}, {valid});"
    out = ["#pragma unroll", f"for (int i = 0; i < {n}; ++i)"]
    if chunks % threads:   # the last round has fewer chunks than threads: the others must not write
        return out + [f"  if (k_tid + i * {threads} < {chunks}) {body}"]
    return out + ["  " + body]


@dataclass(frozen=True)
class Fragments:
    """Where a lane's ldmatrix rows are for one operand: ``lane_row``/``lane_col`` (C, per lane, warp offset
    included), ``srow`` (C over the unrolled loop variables, a multiple of 8 rows: added as is) and ``scol``
    (a multiple of 16 columns: its part below the swizzle span picks one of the precomputed offsets)."""
    lane_row: str
    lane_col: str
    srow: str
    scol: str
    scol_values: int   # how many values scol takes (0, step, 2 step, ...)
    fn: str
    step: int = 16     # scol's increment (tf32's k steps are 8 f32 wide)


def a_fragments(a: Operand, cfg: EngineConfig) -> Fragments:
    """A's ldmatrix.x4 per (mi, kk): the ISA's a[0..3] for rows k_wm + 16 mi .. + 15, k kk .. kk + 15."""
    tm = cfg.warp_tile[0]
    if a.k_inner:    # [m][k] rows: lanes 0-15 point at rows 0-15 at k, lanes 16-31 at k + 8
        return Fragments("k_wm + k_lane % 16", "k_lane / 16 * 8", "mi * 16", "kk", cfg.bk // 16, "tl_ldmatrix_x4")
    # [k][m] rows: matrix j = lane / 8 is (k + 8 (j / 2), m + 8 (j % 2)), transposed
    return Fragments("k_lane % 8 + k_lane / 16 * 8", "k_wm + k_lane / 8 % 2 * 8", "kk", "mi * 16", tm // 16,
                     "tl_ldmatrix_x4_trans")


def b_fragments(b: Operand, cfg: EngineConfig) -> Fragments:
    """B's ldmatrix.x4 per (p, kk): b[2p] and b[2p + 1] for columns k_wn + 16 p .. + 15, k kk .. kk + 15."""
    tn = cfg.warp_tile[1]
    if b.k_inner:    # [n][k] rows: matrix j is (n + 8 (j / 2), k + 8 (j % 2))
        return Fragments("k_wn + k_lane % 8 + k_lane / 16 * 8", "k_lane / 8 % 2 * 8", "p * 16", "kk", cfg.bk // 16,
                         "tl_ldmatrix_x4")
    # [k][n] rows: matrix j is (k + 8 (j % 2), n + 8 (j / 2)), transposed
    return Fragments("k_lane % 16", "k_wn + k_lane / 16 * 8", "kk", "p * 16", tn // 16, "tl_ldmatrix_x4_trans")


def fragment_offset_lines(f: Fragments, op: Operand, tag: str) -> list:
    """The per-lane ldmatrix offsets of one operand within a stage, one per swizzle phase of ``scol``."""
    span = span_elems(op.cols, op.chunk)
    v = max(1, min(span // f.step, f.scol_values))
    return [f"int k_{tag}_ld[{v}];", "#pragma unroll",
            f"for (int v = 0; v < {v}; ++v) k_{tag}_ld[v] = "
            f"{swizzle(op.cols, f.lane_row, f'{f.lane_col} + v * {f.step}', op.chunk)};"]


def fragment_address(f: Fragments, op: Operand, tag: str, smem: str) -> str:
    """C text: the lane's ldmatrix row address for the current unrolled (mi | p, kk)."""
    span = span_elems(op.cols, op.chunk)
    v = max(1, min(span // f.step, f.scol_values))
    pick = f"k_{tag}_ld[({f.scol}) % {span} / {f.step}]" if v > 1 else f"k_{tag}_ld[0]"
    return f"{smem} + {pick} + ({f.srow}) * {op.cols} + ({f.scol}) / {span} * {span}"


def smem_lines(cfg: EngineConfig, dtype: str) -> list:
    """The declaration of the stages' shared memory ``k_smem``, 16-byte aligned (cp.async, ldmatrix)."""
    if not cfg.dynamic:
        return [f"TL_SHARED(float4, k_smem, [{cfg.smem_bytes(dtype) // 16}]);"]
    # The kernel declares no static arrays, so the dynamic ones start at offset 0. As bytes: a wider type
    # would make ptxas align the static bytes of every kernel compiled in the same batch.
    return ["extern __shared__ unsigned char k_smem[];   // sized at launch (the kernel's smem attribute)"]


def kernel_source(ctx, mt: dict, cfg: EngineConfig, conv=None) -> str:
    """The CUDA body of the engine kernel for the matched product ``mt`` of ``ctx`` with shape ``cfg``;
    ``conv`` (``mma_conv.ConvGemm``): an implicit-GEMM convolution, whose B copies and epilogue it gives."""
    from . import mma_conv
    m, n, k = mt["m"], mt["n"], mt["k"]
    E = conv.extents if conv is not None else ctx.extents
    dtype = ctx.dtypes[0]
    ab_t, out_t = CTYPE[dtype], CTYPE[ctx.out_dtype]
    it = "long long" if ctx.idx_t == "i64" else "int"
    nt = 32 * cfg.warps
    tm, tn = cfg.warp_tile
    grid_m, grid_n = -(-E[m] // cfg.bm), -(-E[n] // cfg.bn)
    a, b = operands(mt, E, cfg, ctx.names, chunk_of(dtype))
    k_tiles = -(-E[k] // cfg.bk)
    ragged = E[k] % cfg.bk != 0
    s = cfg.stages
    fa, fb = a_fragments(a, cfg), b_fragments(b, cfg)
    ind = lambda lines, d: ["  " * d + ln for ln in lines]   # noqa: E731
    mma = f"m16n8k16 {dtype}" if dtype != "f32" else "m16n8k8 tf32"
    src = [
        f"// mma engine: block tile {cfg.bm}x{cfg.bn}, k tile {cfg.bk}, {s}-stage cp.async pipeline; "
        f"{cfg.warps_m}x{cfg.warps_n} warps of {tm}x{tn} ({mma}, f32 accumulators)",
        f"constexpr int MI = {tm // 16}, NI = {tn // 8};",
        f"constexpr int A_TILE = {a.elems}, B_TILE = {b.elems};   // elements of one stage's tile",
        *smem_lines(cfg, dtype),
        f"{ab_t}* const k_sa = reinterpret_cast<{ab_t}*>(k_smem);   // [{s}][{a.rows}][{a.cols}], chunks swizzled",
        f"{ab_t}* const k_sb = k_sa + {s} * A_TILE;                   // [{s}][{b.rows}][{b.cols}]",
        "const int k_tid = threadIdx.x, k_lane = k_tid % 32, k_warp = k_tid / 32;",
        f"const int k_wm = k_warp / {cfg.warps_n} * {tm}, k_wn = k_warp % {cfg.warps_n} * {tn};",
        "const int k_bid = blockIdx.x;",
        f"const {it} k_batch = k_bid / {grid_m * grid_n};",
        f"const int k_m0 = (k_bid / {grid_n}) % {grid_m} * {cfg.bm}, k_n0 = k_bid % {grid_n} * {cfg.bn};",
        f"const {it} k_abase = {batch_base(mt['a_batched'], E[m] * E[k])}, "
        f"k_bbase = {batch_base(mt['b_batched'], E[k] * E[n])};",
        f"const {it} k_cbase = k_batch * {E[m] * E[n]};",
        "// Copy plan: this thread's chunks of each stage (see issue below), computed once.",
        *copy_plan_lines(a, "a", "k_abase", nt, ragged, ab_t),
        *(mma_conv.plan_lines(conv, b, nt) if conv is not None
          else copy_plan_lines(b, "b", "k_bbase", nt, ragged, ab_t)),
        "// Issue k tile kt's copies into pipeline stage `stage` (zero-filled outside the tensors).",
        "auto k_load_tile = [&](int kt, int stage) {",
        f"  {ab_t}* const sa = k_sa + stage * A_TILE;",
        f"  {ab_t}* const sb = k_sb + stage * B_TILE;",
        *ind(issue_lines(a, "a", "sa", nt, cfg.bk, ragged), 1),
        *ind(mma_conv.issue_lines(conv, b, b.name, "sb", nt, cfg.bk, ragged) if conv is not None
             else issue_lines(b, "b", "sb", nt, cfg.bk, ragged), 1),
        "};",
        "// ldmatrix row offsets of this lane within a stage, one per swizzle phase (the rest is immediate).",
        *(fragment_offset_lines(fa, a, "a") + fragment_offset_lines(fb, b, "b") if dtype != "f32"
          else mma_tf32.offset_lines(a, b, cfg)),
        "float k_acc[MI][NI][4];",
        "#pragma unroll",
        "for (int mi = 0; mi < MI; ++mi)",
        "  #pragma unroll",
        "  for (int ni = 0; ni < NI; ++ni)",
        "    #pragma unroll",
        "    for (int i = 0; i < 4; ++i) k_acc[mi][ni][i] = 0.0f;",
        f"// Prologue: k tiles 0..{s - 2} in flight, one commit group each (empty past the end, so that",
        "// wait<stages - 2> always means 'k tile kt has landed').",
        "#pragma unroll",
        f"for (int kt = 0; kt < {s - 1}; ++kt) {{",
        f"  if (kt < {k_tiles}) k_load_tile(kt, kt);",
        "  tl_cp_async_commit();",
        "}",
        f"int k_read = 0, k_write = {s - 1};   // the stages computed on and refilled this iteration",
        f"for (int kt = 0; kt < {k_tiles}; ++kt) {{",
        f"  tl_cp_async_wait<{s - 2}>();",
        "  __syncthreads();   // k tile kt is visible to all; every warp is done with the stage refilled next",
        f"  if (kt + {s - 1} < {k_tiles}) k_load_tile(kt + {s - 1}, k_write);",
        "  tl_cp_async_commit();",
        f"  const {ab_t}* const sa = k_sa + k_read * A_TILE;",
        f"  const {ab_t}* const sb = k_sb + k_read * B_TILE;",
        "  #pragma unroll",
        f"  for (int kk = 0; kk < {cfg.bk}; kk += {MMA_K[dtype]}) {{",
        *ind(b16_fragment_lines(a, b, fa, fb) if dtype != "f32" else mma_tf32.fragment_lines(a, b, cfg), 2),
        "    #pragma unroll",
        "    for (int mi = 0; mi < MI; ++mi)",
        "      #pragma unroll",
        "      for (int ni = 0; ni < NI; ++ni)",
        f"        {MMA_FN[dtype]}(k_acc[mi][ni], a[mi], b[ni], k_acc[mi][ni]);",
        "  }",
        f"  k_read = k_read == {s - 1} ? 0 : k_read + 1;",
        f"  k_write = k_write == {s - 1} ? 0 : k_write + 1;",
        "}",
        "tl_cp_async_wait<0>();   // only empty groups can be left; no copy outlives the kernel",
        "// Epilogue: lane l holds rows l/4 and l/4 + 8, columns 2(l%4) and 2(l%4) + 1 of each mma tile.",
        "#pragma unroll",
        "for (int mi = 0; mi < MI; ++mi)",
        "  #pragma unroll",
        "  for (int ni = 0; ni < NI; ++ni)",
        *ind(mma_conv.epilogue_lines(conv, ctx) if conv is not None else fused_epilogue_lines(ctx, mt) if ctx.fused
             else epilogue_lines(ctx.out_name, out_t, it, E[m], E[n]), 2),
    ]
    return "\n".join(src) + "\n"


def b16_fragment_lines(a: Operand, b: Operand, fa: Fragments, fb: Fragments) -> list:
    """One k step's f16/bf16 fragments (``unsigned a[MI][4], b[NI][2]``): one ldmatrix.x4 per 16x16."""
    return ["unsigned a[MI][4], b[NI][2];",
            "#pragma unroll",
            f"for (int mi = 0; mi < MI; ++mi) {fa.fn}(a[mi], {fragment_address(fa, a, 'a', 'sa')});",
            "#pragma unroll",
            "for (int p = 0; p < NI / 2; ++p) {",
            "  unsigned r[4];",
            f"  {fb.fn}(r, {fragment_address(fb, b, 'b', 'sb')});",
            "  b[2 * p][0] = r[0], b[2 * p][1] = r[1], b[2 * p + 1][0] = r[2], b[2 * p + 1][1] = r[3];",
            "}"]


def epilogue_lines(out: str, out_t: str, it: str, m_ext: int, n_ext: int) -> list:
    """Store one mma tile's accumulators (k_acc[mi][ni]) as ``out_t``: a 2-byte type's column pairs in one
    4-byte store where N is even (the pair's first column is even, so it is aligned and wholly inside or
    outside), else element by element."""
    if n_ext % 2 or out_t == "float":
        return ["#pragma unroll", "for (int i = 0; i < 4; ++i) {",
                "  const int gm = k_m0 + k_wm + mi * 16 + k_lane / 4 + i / 2 * 8;",
                "  const int gn = k_n0 + k_wn + ni * 8 + k_lane % 4 * 2 + i % 2;",
                f"  if (gm < {m_ext} && gn < {n_ext}) TL_ST({out}, k_cbase + ({it})gm * {n_ext} + gn, "
                f"{out_t}(k_acc[mi][ni][i]));", "}"]
    pair_t = "unsigned"
    value = f"tl_pack_b16x2({out_t}(k_acc[mi][ni][2 * h]), {out_t}(k_acc[mi][ni][2 * h + 1]))"
    return ["#pragma unroll", "for (int h = 0; h < 2; ++h) {",
            "  const int gm = k_m0 + k_wm + mi * 16 + k_lane / 4 + h * 8;",
            "  const int gn = k_n0 + k_wn + ni * 8 + k_lane % 4 * 2;",
            f"  if (gm < {m_ext} && gn < {n_ext})",
            f"    TL_ST(reinterpret_cast<{pair_t}*>({out}), (k_cbase + ({it})gm * {n_ext} + gn) / 2, {value});", "}"]


def batch_base(batched: bool, elems: int) -> str:
    """C text: the offset of this block's batch entry in an operand of ``elems`` elements per entry (0 for an
    operand without batch axes, broadcast over them)."""
    return f"k_batch * {elems}" if batched else "0"


def fused_epilogue_lines(ctx, mt: dict) -> list:
    """A fused context's epilogue (``lower/fused.FusedContext``, Welder's ``epilogue`` kind) on one mma tile's
    accumulators: per lane and element, the output coordinates are bound to the anchor's axis variables and the
    context's store hook evaluates the other members (bias, activation, residual, casts) on the f32
    accumulator, as the CUDA-core tiled kernel's epilogue does, and stores the kernel's outputs; the members'
    loads and stores go through the kernel IR, rendered here as text."""
    from ..cstyle import render_body
    from .builder import KernelBuilder, linearize, unflatten
    E = ctx.extents
    m, n, batch = mt["m"], mt["n"], mt["batch"]
    kb = KernelBuilder()
    with kb.loop("i", 0, 4, unroll=-1):
        kb.let("gm", "i32", "k_m0 + k_wm + mi * 16 + k_lane / 4 + i / 2 * 8")
        kb.let("gn", "i32", "k_n0 + k_wn + ni * 8 + k_lane % 4 * 2 + i % 2")
        if batch:
            unflatten(kb, "k_batch", [ctx.axis_var(b) for b in batch], [E[b] for b in batch], ctx.idx_t)
        kb.let(ctx.axis_var(m), ctx.idx_t, "gm")
        kb.let(ctx.axis_var(n), ctx.idx_t, "gn")
        index = linearize([ctx.axis_var(a) for a in ctx.out_axes], ctx.out_shape)
        ctx.store_result(kb, index, "k_acc[mi][ni][i]", f"gm < {E[m]} && gn < {E[n]}")
    func = kb.func("k_epilogue", [1], [1], ctx.params())
    return [line[2:] for line in render_body(func)]


def grid_blocks(ctx, mt: dict, cfg: EngineConfig) -> int:
    """Blocks of the launch: one per (batch entry, BM x BN tile of C)."""
    E = ctx.extents
    nb = math.prod(E[x] for x in mt["batch"])
    return nb * -(-E[mt["m"]] // cfg.bm) * -(-E[mt["n"]] // cfg.bn)
