"""The tf32 fragments of the sm_80 engine (``mma_engine``): f32 operands, ``mma.sync.m16n8k8.tf32`` (PTX ISA,
"Matrix Fragments for mma.m16n8k8" with .tf32): with g = lane / 4 and t = lane % 4, A's registers are
(row g, k t), (g + 8, t), (g, t + 4), (g + 8, t + 4) and B's (k t, col g), (t + 4, g).

Where k is an operand's contiguous axis (A [m][k], B [n][k]) those are ``ldmatrix`` (no .trans) on b16 pairs,
as CUTLASS's sm80 tf32 "TN" iterators do: an 8x8 b16 matrix is 8 rows of 4 f32 and gives lane l the 32-bit
word l % 4 of row l / 4, exactly one tf32 fragment register. Where k runs along the tile's rows (A [k][m],
B [k][n]: the usual weight layout) there is no 32-bit transposing ldmatrix, so each register is one 32-bit
shared load (LDS), as CUTLASS's congruous tf32 iterators do; the swizzle keeps them to two-way bank conflicts.

The tensor core ignores an operand's low 13 bits; every fragment register gets 0x1000 (half the unit of those
bits) added to its bit pattern first, so what the tensor core keeps is ``cvt.rna.tf32.f32``'s result (round to
nearest, ties away; an overflow rounds to Inf, Inf stays Inf) in one integer add instead of cvt.rna's
compare and add (CUTLASS's ``round_half_ulp_truncate``). Only a NaN whose payload lies wholly in the low 13
bits differs: it becomes Inf. The emulator drops the low bits as the hardware does, so it computes the same.
"""
from __future__ import annotations

K = 8   # the instruction's k


def a_ldmatrix(cfg):
    """A [m][k]: ldmatrix.x4 per (mi, kk): matrices (rows 0-7 | 8-15) x (k 0-3 | 4-7) = a[0..3]."""
    from .mma_engine import Fragments
    return Fragments("k_wm + k_lane % 16", "k_lane / 16 * 4", "mi * 16", "kk", cfg.bk // K, "tl_ldmatrix_x4", K)


def b_ldmatrix(cfg):
    """B [n][k]: ldmatrix.x4 per (p, kk): matrices (n 0-7, k 0-3 | 4-7), (n 8-15, ...) = b[2p], b[2p + 1]."""
    from .mma_engine import Fragments
    return Fragments("k_wn + k_lane % 8 + k_lane / 16 * 8", "k_lane / 8 % 2 * 4", "p * 16", "kk", cfg.bk // K,
                     "tl_ldmatrix_x4", K)


def scalar_phases(op, cols_per_warp: int) -> int:
    """How many column phases of the swizzle one lane's shared loads of a k-row tile take (8 columns apart)."""
    from .mma_engine import span_elems
    return max(1, min(span_elems(op.cols, op.chunk) // K, cols_per_warp // K))


def scalar_offset_lines(op, tag: str, warp_off: str, cols_per_warp: int) -> list:
    """A k-row tile's per-lane shared offsets at k step 0: rows t and t + 4 (k), columns ``warp_off`` + g + 8 v
    (m or n) for each swizzle phase v; the k step and whole swizzle spans are added as constants."""
    from .mma_engine import swizzle
    v = scalar_phases(op, cols_per_warp)
    cell = swizzle(op.cols, "k_lane % 4 + j * 4", f"{warp_off} + k_lane / 4 + v * {K}", op.chunk)
    return [f"int k_{tag}_ld[2][{v}];", "#pragma unroll", "for (int j = 0; j < 2; ++j)", "  #pragma unroll",
            f"  for (int v = 0; v < {v}; ++v) k_{tag}_ld[j][v] = {cell};"]


def scalar_load(op, tag: str, smem: str, j: str, scol: str, cols_per_warp: int) -> str:
    """C text: the f32 bits at row kk + t + 4 ``j``, column offset ``scol`` (a multiple of 8) of the tile."""
    from .mma_engine import span_elems
    span = span_elems(op.cols, op.chunk)
    v = scalar_phases(op, cols_per_warp)
    pick = f"k_{tag}_ld[{j}][({scol}) % {span} / {K}]" if v > 1 else f"k_{tag}_ld[{j}][0]"
    return f"__float_as_uint({smem}[{pick} + ({scol}) / {span} * {span} + kk * {op.cols}])"


def offset_lines(a, b, cfg) -> list:
    """The per-lane shared offsets of both operands, hoisted out of the main loop."""
    from .mma_engine import fragment_offset_lines
    tm, tn = cfg.warp_tile
    out = fragment_offset_lines(a_ldmatrix(cfg), a, "a") if a.k_inner else scalar_offset_lines(a, "a", "k_wm", tm)
    return out + (fragment_offset_lines(b_ldmatrix(cfg), b, "b") if b.k_inner
                  else scalar_offset_lines(b, "b", "k_wn", tn))


def fragment_lines(a, b, cfg) -> list:
    """One k step's fragments (``unsigned a[MI][4], b[NI][2]``), loaded and rounded to tf32."""
    from .mma_engine import fragment_address
    tm, tn = cfg.warp_tile
    out = ["unsigned a[MI][4], b[NI][2];", "#pragma unroll"]
    if a.k_inner:
        address = fragment_address(a_ldmatrix(cfg), a, "a", "sa")
        out.append(f"for (int mi = 0; mi < MI; ++mi) tl_ldmatrix_x4(a[mi], {address});")
    else:
        load = scalar_load(a, "a", "sa", "i / 2", "mi * 16 + i % 2 * 8", tm)
        out += ["for (int mi = 0; mi < MI; ++mi)", "  #pragma unroll", f"  for (int i = 0; i < 4; ++i) a[mi][i] = {load};"]
    out.append("#pragma unroll")
    if b.k_inner:
        out += ["for (int p = 0; p < NI / 2; ++p) {", "  unsigned r[4];",
                f"  tl_ldmatrix_x4(r, {fragment_address(b_ldmatrix(cfg), b, 'b', 'sb')});",
                "  b[2 * p][0] = r[0], b[2 * p][1] = r[1], b[2 * p + 1][0] = r[2], b[2 * p + 1][1] = r[3];", "}"]
    else:
        out += ["for (int ni = 0; ni < NI; ++ni)", "  #pragma unroll",
                f"  for (int j = 0; j < 2; ++j) b[ni][j] = {scalar_load(b, 'b', 'sb', 'j', 'ni * 8', tn)};"]
    return out + ["// Round to tf32, to nearest, ties away (cvt.rna's result): add half of the 13 low bits' unit; the",
                  "// tensor core drops those bits (CUTLASS's round_half_ulp_truncate: one IADD, cvt.rna takes two).",
                  "#pragma unroll", "for (int mi = 0; mi < MI; ++mi)", "  #pragma unroll",
                  "  for (int i = 0; i < 4; ++i) a[mi][i] += 0x1000u;",
                  "#pragma unroll", "for (int ni = 0; ni < NI; ++ni)", "  #pragma unroll",
                  "  for (int j = 0; j < 2; ++j) b[ni][j] += 0x1000u;"]
