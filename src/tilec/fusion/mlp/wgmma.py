"""Back-to-back GEMMs on Hopper's warpgroup MMA (sm_90, f16/bf16; issue #21): ``H = e1(X · W1)``,
``Y = e2(H · W2)`` in one kernel, the hidden never leaving the chip, built as FlashAttention-3 builds
attention (:mod:`..attention.wgmma`: S = Q·Kᵀ from shared memory, P·V with P from registers) from the
prelude's sm_90 primitives, which the emulator runs exactly (docs/hopper.md).

A block owns ``rows`` = 64·c rows of X (c consumer warpgroups, 64 rows each: wgmma's M) and ``bn`` (<= 192:
:data:`BNS`) columns of Y; where N2 is wider the columns are tiled across blocks and each such block recomputes
the hidden of its rows (priced as such: FLOPs and bytes count every recomputation).
1. A producer warpgroup's first thread loads the block's rows of X once by TMA (one box per 64 columns,
   128-byte swizzled, zero fill past the ends), then streams, per hidden chunk of 64 columns, W1's
   64 x 64 k tiles through a ring of ``stages`` (its ``full`` / ``empty`` mbarriers) and the chunk's
   64 x ``bn`` slab of W2 through a second ring of two. Weights stored [k][n] are MN-major operands.
2. A consumer warpgroup computes the chunk's 64 x 64 H = X·W1 by SS wgmma (m64n64k16, both operands in shared
   memory), releasing each W1 stage when the next k tile's wgmma group is issued (``wait_group 1``);
3. evaluates e1 (bias, GELU, ...) on the f32 accumulators (the members rendered on each element, as the GEMM
   engine's fused epilogue), packs them to f16/bf16 k16 A fragments (the D layout is the A-from-registers
   layout: :func:`..wgmma_parts.pack_a_fragments`), and
4. accumulates Y += H_chunk · W2[chunk, :] by RS wgmma (m64n{bn}k16, A from registers), then releases the W2
   stage. After the last chunk, e2 (bias, residual) runs on Y's accumulators and stores it.
Hidden columns past N1 are X·0 = 0 (W1's zero fill; their e1 is skipped) times W2's zero-filled rows; rows
past R are never stored. With two consumers the producer gives registers to them (``setmaxnreg``).

Multicast (``cluster`` = C = 2, as the GEMM engine's, lower/wgmma_engine.py): C row tiles of one column tile
form a thread-block cluster (``__cluster_dims__``) and share W1 and W2: each producer loads 64 / C k rows of
every weight box with ``.multicast::cluster`` to every block, so each block's ``full`` barriers receive C
parts; a stage is refilled only when every consumer warp of every block has released it (lane r arrives on
block r's ``empty`` barrier), and each producer waits for its stages' final releases before it exits. The row
tiles are padded to whole clusters (a padded tile has no rows: its X box is all zero fill, nothing stored).

Not yet: a row tail (LayerNorm) or the one-GEMM ``split = 0`` form on this path (those groups keep the
split), overlap of chunk h's second product with chunk h + 1's first (each is waited for before its
accumulators are used), X streamed instead of resident (K1 is bounded by shared memory: 64·c·K1·2 bytes).

Bytes, as emitted (the emulator counts TMA boxes' in-bounds bytes): X once per column tile, W1 once per
cluster and column tile, W2 once per cluster, e1's loads once per hidden element per column tile, e2's loads
and Y."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from ...analysis.engine_shape import sm_version
from ...analysis.latency import candidate_estimate
from ...analysis.welder.graph import permuting_layout
from ...analysis.wgmma_shape import CONSUMER_REGS, PRODUCER_REGS
from ...backend.arch_features import MARK
from ...backend.cstyle import CUDA, render_body
from ...backend.lower.builder import KernelBuilder, linearize
from ...backend.lower.fused import SharedStager, kernel_params
from ...ir.diagnostics import CompileError
from ...ir.types import itemsize
from ..wgmma_parts import ATOM, SLACK, pack_a_fragments

ENGINE = "wgmma"
ROWS = 64            # rows of one consumer warpgroup: wgmma's M
CHUNK = 64           # hidden columns per step: the first product's N, the second's K (4 k16 A fragments)
# Output columns per block (bn / 2 f32 accumulators a thread). Not 256, wgmma's largest N: Y's 128 accumulators
# beside the hidden chunk's 32 + 16 and e1's GELU spilled 80 bytes in ptxas (sm_90a, 1 or 2 consumers); 192 does not.
BNS = (192, 128, 64)
TILE = ATOM * ATOM * 2      # bytes of a 64 x 64 b16 box: a W1 stage (a W2 stage holds bn / 64 of them)
STAGES = (4, 3, 2)   # the W1 ring, deepest first while shared memory allows
CLUSTERS = (1, 2)    # row tiles per thread-block cluster sharing the weights (TMA multicast, as the engine's)
DTYPES = ("f16", "bf16")
OVERHEAD_REGS = 40   # a lone consumer's registers beyond Y's, H's accumulators and H's fragments
WG = {"f16": "tl_wgmma_f16", "bf16": "tl_wgmma_bf16"}


def eligible(graph, members: list, cut: int, tail: int, spec) -> str | None:
    """The operand type (f16 / bf16) when the back-to-back group ``members`` (G2 at ``cut``, no row tail) runs on
    this kernel: an sm_90 target (wgmma is sm_90a's), both GEMMs' operands of that one type, rows of whole
    16-byte chunks (TMA strides), no permuting layout member; else None."""
    if sm_version(spec) != 90 or cut == 0 or tail != len(members):
        return None
    g1, g2 = graph.nodes[members[0]], graph.nodes[members[cut]]
    types = {v.type.dtype for g in (g1, g2) for v in g.op.operands}
    if len(types) != 1 or next(iter(types)) not in DTYPES:
        return None
    dims = [v.type.shape[-1] for g in (g1, g2) for v in g.op.operands] + [g2.shape[-1]]
    if any(d * 2 % 16 for d in dims) or any(permuting_layout(graph.nodes[m]) is not None for m in members):
        return None
    return next(iter(types))


@dataclass(frozen=True)
class Shape:
    """One kernel's shape: consumer warpgroups, output columns per block, W1 ring depth, X's 64-column atoms."""

    consumers: int
    bn: int
    stages: int
    atoms: int
    cluster: int = 1   # C > 1: C row tiles of one column tile share W1 and W2 by TMA multicast

    @property
    def part(self) -> int:
        """k rows of each 64 x 64 weight box a block of the cluster loads for every block (all 64 alone)."""
        return ATOM // self.cluster

    @property
    def rows(self) -> int:
        return ROWS * self.consumers

    @property
    def threads(self) -> int:
        return 128 * (1 + self.consumers)

    @property
    def smem(self) -> int:
        """X's rows, the W1 and W2 rings, their mbarriers (X's, two per stage), the alignment slack."""
        return SLACK + self.rows * self.atoms * 128 + self.stages * TILE + 2 * self.bn * 128 + \
            8 * (1 + 2 * self.stages + 4)

    @property
    def regs(self) -> int:
        """Registers per thread on average (setmaxnreg's split with two consumers, as the GEMM engine's)."""
        if self.consumers > 1:
            return (PRODUCER_REGS + self.consumers * CONSUMER_REGS) // (1 + self.consumers)
        return min(255, -(-(self.bn // 2 + CHUNK // 2 + CHUNK // 4 + OVERHEAD_REGS) // 8) * 8)

    @property
    def inflight(self) -> int:
        """Bytes the producer keeps in flight: the W1 ring but the stage being read, and a W2 slab."""
        return (self.stages - 1) * TILE + self.bn * 128


def grid(ctx, shape: Shape) -> tuple:
    """(row tiles, column tiles); the row tiles a whole number of clusters (the last ones past R: no rows)."""
    nr = -(-ctx.R // shape.rows)
    return -(-nr // shape.cluster) * shape.cluster, -(-ctx.N2 // shape.bn)


def flops(ctx, shape: Shape) -> int:
    """FLOPs as executed: the first product (and e1) once per column tile."""
    return ctx.s1.flops() * grid(ctx, shape)[1] + ctx.s2.flops()


def modelled_bytes(ctx, shape: Shape, dtype: str) -> int:
    """Global bytes of the kernel, as emitted (module docstring)."""
    nr, nt = grid(ctx, shape)
    a = itemsize(dtype)
    s1, s2 = ctx.s1, ctx.s2
    hval = s1.outs[0]
    e1 = s1.epilogue_bytes() + s1.out_bytes() - math.prod(hval.type.shape) * itemsize(hval.type.dtype)
    clusters = nr // shape.cluster   # each reads W1 and W2 once, a share per block
    return (nt * ctx.R * ctx.K1 * a + clusters * nt * ctx.K1 * ctx.N1 * a + clusters * ctx.N1 * ctx.N2 * a
            + nt * e1 + s2.epilogue_bytes() + s2.out_bytes())


def modelled_us(ctx, shape: Shape, spec, dtype: str) -> float:
    """The latency model's microseconds for one launch (``analysis/latency.candidate_estimate``: tensor cores of
    ``dtype``, the TMA pipeline's bytes in flight), rounded so that ties fall to the bytes."""
    nr, nt = grid(ctx, shape)
    unique = sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in list(ctx.args) + list(ctx.outs))
    est = candidate_estimate(spec, blocks=nr * nt, threads=shape.threads, smem=shape.smem, regs=shape.regs,
                             flops=flops(ctx, shape), global_bytes=modelled_bytes(ctx, shape, dtype),
                             unique_bytes=unique, tensor=True, dtype=dtype, inflight_bytes=shape.inflight)
    return round(est.seconds * 1e6, 4)


def choose(ctx, spec, dtype: str) -> dict | None:
    """The fastest shape by the latency model (ties: fewer bytes, more blocks) within the opt-in shared memory,
    as ``{shape, bytes, smem, blocks, waves, modelled_us}``; None when X's rows do not fit even one consumer's."""
    atoms = -(-ctx.K1 // ATOM)
    widest = -(-ctx.N2 // ATOM) * ATOM
    best = None
    for consumers, bn, cluster in itertools.product((2, 1), BNS, CLUSTERS):
        if (consumers > 1 and ctx.R <= ROWS) or bn > widest or (cluster > 1 and ctx.R <= ROWS * consumers):
            continue
        fits = [Shape(consumers, bn, s, atoms, cluster) for s in STAGES
                if Shape(consumers, bn, s, atoms, cluster).smem <= spec.smem_per_block_optin_bytes]
        if fits:
            shape = fits[0]
            nr, nt = grid(ctx, shape)
            q = modelled_bytes(ctx, shape, dtype)
            us = modelled_us(ctx, shape, spec, dtype)
            key = (us, q, -nr * nt, -bn, cluster)
            if best is None or key < best[0]:
                waves = -(-nr * nt // spec.num_sms)   # one block per SM: its shared memory
                best = (key, {"shape": shape, "bytes": q, "smem": shape.smem, "blocks": nr * nt, "waves": waves,
                              "modelled_us": us})
    return None if best is None else best[1]


# ---- the kernel ----------------------------------------------------------------------------------------

ROW = "k_m0 + k_wm + k_w * 16 + k_lane / 4"


def _epilogue(side, params: list, acc: str, cols: int, col0: str, R: int, N: int, sink=None) -> list:
    """``side``'s epilogue members on a 64 x ``cols`` accumulator array ``acc`` (register 4 ni + i of thread
    32 w + l: row 16 w + l / 4 + 8 (i / 2), column ``col0`` + 8 ni + 2 (l % 4) + i % 2), rows < R and columns
    < N only; ``sink`` wraps the builder its stores go through (None: the side's outputs)."""
    kb = KernelBuilder()
    with kb.loop("i", 0, 4, unroll=-1):
        kb.let("gm", "i32", f"{ROW} + i / 2 * 8")
        kb.let("gn", "i32", f"{col0} + ni * 8 + k_lane % 4 * 2 + i % 2")
        for a in side.out_axes[:-2]:
            kb.let(side.axis_var(a), side.idx_t, "0")
        kb.let(side.axis_var(side.out_axes[-2]), side.idx_t, "gm")
        kb.let(side.axis_var(side.out_axes[-1]), side.idx_t, "gn")
        index = linearize([side.axis_var(a) for a in side.out_axes], side.out_shape)
        side.store_result(sink(kb) if sink else kb, index, f"{acc}[ni * 4 + i]", f"gm < {R} && gn < {N}")
    func = kb.func("k_epilogue", [1], [1], params)
    return ["#pragma unroll", f"for (int ni = 0; ni < {cols // 8}; ++ni)",
            *("  " + line[2:] for line in render_body(func))]


def tensor_maps(ctx, params: list, shape: Shape, dtype: str) -> list:
    """X [R][K1] (K-major A: 64 columns x rows boxes), W1 [K1][N1] and W2 [N1][N2] (MN-major B: 64 x 64 boxes),
    innermost first; every leading dim of X is 1."""
    s1, s2 = ctx.s1, ctx.s2
    index = {p["name"]: i for i, p in enumerate(params)}
    one = lambda name, dims, box: {"arg": index[name], "dtype": dtype, "dims": dims, "box": box,   # noqa: E731
                                   "swizzle": 128}
    return [one(s1.names[s1.a_acc.tensor], [ctx.K1, ctx.R], [ATOM, shape.rows]),
            one(s1.names[s1.b_acc.tensor], [ctx.N1, ctx.K1], [ATOM, shape.part]),
            one(s2.names[s2.b_acc.tensor], [ctx.N2, ctx.N1], [ATOM, shape.part])]


def kernel_source(ctx, params: list, shape: Shape, dtype: str) -> str:
    """The CUDA body (module docstring's steps)."""
    ct = {"f16": "__half", "bf16": "__nv_bfloat16"}[dtype]
    rows, bn, S, c = shape.rows, shape.bn, shape.stages, shape.consumers
    nr, nt = grid(ctx, shape)
    nh, kt1 = -(-ctx.N1 // CHUNK), shape.atoms
    wg = WG[dtype]
    conv = lambda x: CUDA.convert(x, "f32", dtype)  # noqa: E731
    ind = lambda lines, n: ["  " * n + x for x in lines]  # noqa: E731
    rebalance = c > 1
    C, part = shape.cluster, shape.part
    x_loads = [f"tl_tma_load_2d(k_sx + {a * rows * ATOM}, k_tma0, k_xfull, {a * ATOM}, k_m0);" for a in range(kt1)]

    def weight_load(dst: str, tma: str, bar: str, n0: str, k0: str) -> str:
        """One 64 x 64 weight box, or in a cluster this block's ``part`` k rows of it for every block."""
        if C == 1:
            return f"tl_tma_load_2d({dst}, {tma}, {bar}, {n0}, {k0});"
        return (f"tl_tma_load_multicast_2d({dst} + k_rank * {part * ATOM}, {tma}, {bar}, {(1 << C) - 1}, {n0}, "
                f"{k0} + k_rank * {part});")
    w1_load = weight_load(f"k_sw1 + k_s * {ATOM * ATOM}", "k_tma1", "&k_full1[k_s]", f"h * {CHUNK}", f"kt * {ATOM}")
    w2_loads = [weight_load(f"k_sw2 + k_s2 * {bn * ATOM} + {j * ATOM * ATOM}", "k_tma2", "&k_full2[k_s2]",
                            f"k_n0 + {j * ATOM}", f"h * {CHUNK}") for j in range(bn // ATOM)]
    # In a cluster every consumer warp of every block releases a stage (lane r arrives on block r's barrier),
    # and the producer waits for the final releases before it exits (no remote arrive reaches a gone block).
    empty = 128 * c if C == 1 else C * 4 * c
    release = (lambda bar: f"tl_mbarrier_arrive({bar});") if C == 1 else \
        (lambda bar: f"if (k_lane < {C}) tl_mbarrier_arrive_cluster({bar}, k_lane);")   # the engine's release_line
    tail = [] if C == 1 else [
        f"    for (int i = 0; i < {S}; ++i) {{   // the producer tail: every block has released every stage",
        f"      if ({nh * kt1} + i >= {S}) tl_mbarrier_wait_parity(&k_empty1[k_s], k_ph ^ 1u);",
        f"      if (++k_s == {S}) k_s = 0, k_ph ^= 1u;",
        "    }",
        f"    for (int h = {nh}; h < {nh + 2}; ++h)",
        "      if (h >= 2) tl_mbarrier_wait_parity(&k_empty2[h & 1], ((h >> 1) + 1) & 1);"]
    src = [
        MARK,
        f"// mlp on wgmma: {c} consumer warpgroup(s) x {ROWS} rows of X (resident, TMA), {bn} columns of Y; per "
        f"{CHUNK}-column hidden chunk H = e1(X W1) by m64n{CHUNK}k16 (SS, W1 k tiles in a {S}-stage ring) and "
        f"Y += H W2 by m64n{bn}k16 (A from registers, W2 slabs in a 2-stage ring), {dtype} with f32 accumulators",
        "extern __shared__ __align__(1024) unsigned char k_dyn[];   // sized at launch, 1024 bytes of slack",
        "unsigned char* const k_smem = reinterpret_cast<unsigned char*>("
        "(reinterpret_cast<unsigned long long>(k_dyn) + 1023ull) & ~1023ull);   // the swizzle's period",
        f"{ct}* const k_sx = reinterpret_cast<{ct}*>(k_smem);   // [{kt1}][{rows}][64]: X's rows, K-major atoms",
        f"{ct}* const k_sw1 = k_sx + {rows * kt1 * ATOM};   // [{S}][64 k][64 n]: W1 k tiles, MN-major",
        f"{ct}* const k_sw2 = k_sw1 + {S * ATOM * ATOM};   // [2][{bn // ATOM}][64 k][64 n]: W2 slabs, MN-major",
        f"unsigned long long* const k_xfull = reinterpret_cast<unsigned long long*>(k_sw2 + {2 * bn * ATOM});",
        f"unsigned long long* const k_full1 = k_xfull + 1;   // [{S}] a W1 stage has landed",
        f"unsigned long long* const k_empty1 = k_full1 + {S};   // [{S}] the consumers are done with it",
        f"unsigned long long* const k_full2 = k_empty1 + {S};   // [2] a W2 slab has landed",
        "unsigned long long* const k_empty2 = k_full2 + 2;   // [2] the consumers are done with it",
        "const int k_tid = threadIdx.x;",
        (f"const int k_m0 = blockIdx.x / {nt} * {rows}, k_n0 = blockIdx.x % {nt} * {bn};   "
         "// column tiles of one row tile run side by side (X from L2)" if C == 1 else
         f"const int k_m0 = blockIdx.x % {nr} * {rows}, k_n0 = blockIdx.x / {nr} * {bn};   "
         f"// clusters of {C} row tiles of one column tile share W1 and W2"),
        "if (k_tid == 0) {",
        "  tl_mbarrier_init(k_xfull, 1);",
        f"  for (int i = 0; i < {S}; ++i) {{",
        "    tl_mbarrier_init(&k_full1[i], 1);   // the producer's arrive.expect_tx; the TMA bytes complete it",
        f"    tl_mbarrier_init(&k_empty1[i], {empty});   // every consumer thread (warp, in a cluster) releases it",
        "  }",
        "  for (int i = 0; i < 2; ++i) {",
        "    tl_mbarrier_init(&k_full2[i], 1);",
        f"    tl_mbarrier_init(&k_empty2[i], {empty});",
        "  }",
        "  tl_mbarrier_init_fence();",
        "}",
        "__syncthreads();" if C == 1 else
        "tl_cluster_sync();   // every block's barriers exist before a peer's multicast or remote arrive reaches them",
        "if (k_tid < 128) {   // producer warpgroup: its first thread issues the loads, in the consumers' order",
        *([f"  tl_setmaxnreg_dec<{PRODUCER_REGS}>();"] if rebalance else []),
        "  if (k_tid == 0) {",
        f"    tl_mbarrier_arrive_expect_tx(k_xfull, {kt1 * rows * 128});   // whole boxes, zero fill included",
        *ind(x_loads, 2),
        *([] if C == 1 else
          ["    const int k_rank = (int)tl_cluster_rank();   // this block's share of each weight box"]),
        "    int k_s = 0;",
        "    unsigned k_ph = 0;",
        "    #pragma unroll 1",
        f"    for (int h = 0; h < {nh}; ++h) {{",
        "      #pragma unroll 1",
        f"      for (int kt = 0; kt < {kt1}; ++kt) {{",
        f"        if (h * {kt1} + kt >= {S}) tl_mbarrier_wait_parity(&k_empty1[k_s], k_ph ^ 1u);   // stage free",
        f"        tl_mbarrier_arrive_expect_tx(&k_full1[k_s], {TILE});",
        f"        {w1_load}",
        f"        if (++k_s == {S}) k_s = 0, k_ph ^= 1u;",
        "      }",
        "      const int k_s2 = h & 1;",
        "      if (h >= 2) tl_mbarrier_wait_parity(&k_empty2[k_s2], ((h >> 1) + 1) & 1);   // slab free",
        f"      tl_mbarrier_arrive_expect_tx(&k_full2[k_s2], {bn * 128});",
        *ind(w2_loads, 3),
        "    }",
        *tail,
        "  }",
        "  return;",
        "}",
        *([f"tl_setmaxnreg_inc<{CONSUMER_REGS}>();"] if rebalance else []),
        "const int k_c = k_tid - 128, k_w = k_c / 32 % 4, k_lane = k_c % 32;",
        "// The consumer warpgroup through a lane-0 shuffle: warp-uniform, descriptors in uniform registers.",
        "const int k_cg = __shfl_sync(0xffffffffu, k_c / 128, 0);",
        f"const int k_wm = k_cg * {ROWS};   // this consumer warpgroup's rows of the block's",
        f"const unsigned long long k_dx = tl_wgmma_desc(k_sx + k_cg * {ROWS * ATOM}, 16, 1024, 128);",
        f"const unsigned long long k_dw1 = tl_wgmma_desc(k_sw1, {TILE}, 1024, 128);",
        f"const unsigned long long k_dw2 = tl_wgmma_desc(k_sw2, {TILE}, 1024, 128);   // LBO: 64-column boxes",
        f"float k_y[{bn // 2}];",
        "#pragma unroll",
        f"for (int i = 0; i < {bn // 2}; ++i) k_y[i] = 0.0f;",
        f"float k_h[{CHUNK // 2}];",
        "int k_s = 0, k_sp = 0;",
        "unsigned k_ph = 0;",
        "tl_mbarrier_wait_parity(k_xfull, 0);   // X's rows have landed",
        "#pragma unroll 1",
        f"for (int h = 0; h < {nh}; ++h) {{",
        "  // H chunk = X W1[:, chunk]: k tile kt's wgmma group issued, then kt - 1's waited for and its stage freed.",
        "  #pragma unroll 1",
        f"  for (int kt = 0; kt < {kt1}; ++kt) {{",
        "    tl_mbarrier_wait_parity(&k_full1[k_s], k_ph);",
        "    tl_wgmma_fence_operand(k_h);",
        "    tl_wgmma_fence();",
        "    #pragma unroll",
        "    for (int kk = 0; kk < 4; ++kk)",
        f"      {wg}<{CHUNK}, 0, 1>(k_h, k_dx + (kt * {rows * 8} + kk * 2), k_dw1 + (k_s * {TILE >> 4} + kk * 128), "
        "kt > 0 || kk > 0);",
        "    tl_wgmma_commit();",
        "    tl_wgmma_wait<1>();",
        "    tl_wgmma_fence_operand(k_h);",
        f"    if (kt > 0) {release('&k_empty1[k_sp]')}",
        "    k_sp = k_s;",
        f"    if (++k_s == {S}) k_s = 0, k_ph ^= 1u;",
        "  }",
        "  tl_wgmma_wait<0>();",
        "  tl_wgmma_fence_operand(k_h);",
        f"  {release('&k_empty1[k_sp]')}",
        "  // e1 on the accumulators (hidden columns past N1 keep X 0 = 0), then H as k16 A fragments.",
        *ind(_epilogue(ctx.s1, params, "k_h", CHUNK, f"h * {CHUNK}", ctx.R, ctx.N1,
                       lambda kb: SharedStager(kb, "k_h[ni * 4 + i]")), 1),
        *ind(pack_a_fragments("k_h", "k_p", CHUNK, conv), 1),
        "  // Y += H W2[chunk, :] (k_p and k_y are the wgmma's until its wait).",
        "  tl_mbarrier_wait_parity(&k_full2[h & 1], (h >> 1) & 1);",
        "  tl_wgmma_fence_operand(k_y);",
        "  tl_wgmma_fence();",
        *(f"  {wg}_rs<{bn}, 1>(k_y, k_p[{kk}], k_dw2 + ((h & 1) * {bn * 8} + {kk * 128}), 1);" for kk in range(4)),
        "  tl_wgmma_commit();",
        "  tl_wgmma_wait<0>();",
        "  tl_wgmma_fence_operand(k_y);",
        f"  {release('&k_empty2[h & 1]')}",
        "}",
        "// e2 on Y's accumulators, stored.",
        *_epilogue(ctx.s2, params, "k_y", bn, "k_n0", ctx.R, ctx.N2)]
    return "\n".join(src) + "\n"


def lower(ctx, kernel, name: str, tile: dict, spec):
    """The ``kernel.func`` of the ``mlp`` ``tile.kernel`` whose ``tile`` says ``engine = "wgmma"`` (the shape
    :func:`choose` picked: ``rows``, ``bn``, ``stages``)."""
    dtype = ctx.s1.dtypes[ctx.s1.input_of(ctx.s1.a_acc)]
    if dtype not in DTYPES or ctx.tail is not None or list(ctx.s2.outs) != list(ctx.outs):
        raise CompileError.at("lower-cuda: a wgmma mlp kernel takes f16/bf16 GEMMs without a row tail", kernel.loc)
    shape = Shape(int(tile["rows"]) // ROWS, int(tile["bn"]), int(tile["stages"]), -(-ctx.K1 // ATOM),
                  int(tile.get("cluster", 1)))
    if shape.smem > spec.smem_per_block_optin_bytes:
        raise CompileError.at(f"lower-cuda: wgmma mlp kernel needs {shape.smem} B of shared memory", kernel.loc)
    params = kernel_params(kernel)
    nr, nt = grid(ctx, shape)
    config = {"engine": ENGINE, "rows": shape.rows, "bn": shape.bn, "stages": shape.stages, "split": tile["split"],
              "warpgroups": shape.consumers, "chunk": CHUNK, "wgmma": [[ROWS, CHUNK, 16], [ROWS, shape.bn, 16]],
              "pipeline": "tma", "producer": True, "tiles": [nr, nt], "inflight_bytes": shape.inflight,
              "cluster": shape.cluster}
    func = KernelBuilder().func(
        name, [nr * nt], [shape.threads], params, kind="mlp", flops=flops(ctx, shape),
        bytes_modelled=modelled_bytes(ctx, shape, dtype), source=kernel_source(ctx, params, shape, dtype),
        config=config, smem=shape.smem, smem_static=0, tensor_maps=tensor_maps(ctx, params, shape, dtype),
        cluster=shape.cluster if shape.cluster > 1 else None, tensor_core=dtype)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in ctx.s1.members +
                                         ctx.s2.members)
    return func
