"""The sm_90 tensor-core engine: TMA loads into 128-byte-swizzled shared memory, an mbarrier pipeline and
``wgmma.mma_async`` m64nNk16 with f32 accumulators, warp-specialised (issue #21, docs/hopper.md), for the
f16/bf16 (batched, fused-epilogue) matrix products the sm_80 engine (``mma_engine``) serves; selected for an
sm_90 target where :func:`plan` gives a shape, else that engine runs them.

The shape follows CUTLASS's sm90 TMA warp-specialised mainloop (cutlass/gemm/collective/
sm90_mma_tma_gmma_ss_warpspecialized.hpp) built from the prelude's primitives, which the emulator runs with
the PTX ISA's layouts and completion rules:

- a block computes a BM x BN tile of C (BM = 64 or 128, BN = 64..256) with ``BM / 64`` consumer warpgroups,
  one 64 x BN slab each (``BN / 2`` f32 accumulators per thread), plus one producer warpgroup whose first
  thread issues the loads; with two consumers the producer gives registers back (``setmaxnreg.dec 40``) and
  the consumers take them (``inc 232``), as CUTLASS does;
- per k tile (64 deep: one 128-byte row of f16/bf16) the producer waits until the consumers have released
  the stage (``empty`` barrier), announces its bytes (``arrive.expect_tx``) and issues one TMA box per operand
  (or one per 64 columns of an operand stored m/n-contiguous), which land swizzled and complete the stage's
  ``full`` barrier; edges (M, N, K not multiples of the tile) are the TMA's zero fill, so the main loop has
  no bounds checks;
- a consumer waits on ``full``, issues 4 chained wgmma (k16 each) from shared-memory descriptors (K-major
  operands step 32 bytes along the swizzled row, m/n-major ones 2 x 8 rows), commits, waits for the previous
  k tile's group (``wait_group 1``: one group in flight) and releases that k tile's stage; its k loop is
  unrolled by the stage count, so each stage's descriptors and barriers are constants, and the warpgroup
  index comes through a shuffle so ptxas keeps the descriptors in uniform registers (CUTLASS's
  ``canonical_warp_group_idx``): ~23 instructions per k tile around its 4 HGMMA;
- the epilogue converts each thread's accumulators (the ISA's D fragment) to the output type and stores
  them with bounds checks, or evaluates a fused context's members on them, as the sm_80 engine does;
- multicast (``WgmmaConfig.cluster`` = C > 1, ``wgmma_shape.clustered``): C consecutive blocks form a
  thread-block cluster (``__cluster_dims__(C, 1, 1)``): n tiles of one m tile sharing the A tile, or (``shared
  = "b"``, the tile order then pairing m tiles) m tiles of one n tile sharing B. Each producer loads 1 / C of
  the shared tile (rows of a K-major one, k rows of each 64-column box of an m/n-contiguous one) with
  ``.multicast::cluster`` to every block, so each block's ``full`` barrier receives C parts of it and its own
  tile of the other operand; a stage is refilled only once every consumer warp of every block
  has released it (``empty`` counts C x 4 warps per consumer warpgroup; lane r of each warp arrives on block
  r's barrier through ``mapa``, CUTLASS's ClusterBarrier::arrive(cta_id)), the last k tile's stage included;
  and each producer waits for its stages' final releases before it exits (the producer tail), so no peer
  arrives on the shared memory of a block that is gone.

Tensor maps (``runtime/tensor_map.py``) are kernel parameters ``const __grid_constant__ TlTensorMap``
appended after the buffers; the kernel's ``tensor_maps`` attribute says how the runtime builds each one from
its buffer (plan.json carries it; ``runtime/executor`` encodes it through the device).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ...analysis import wgmma_shape
from ...analysis.hardware import GPUSpec
from ...analysis.mma_tile import tensor_core_dtype
from ...analysis.wgmma_shape import CONSUMER_REGS, PRODUCER_REGS, TILES, WgmmaConfig, bk_of
from ...ir.types import itemsize
from ..arch_features import MARK
from .mma_engine import CTYPE, grid_blocks

BK = 64              # k tile: one 128-byte swizzled row of a b16 operand
BOX = 64             # columns of one TMA box of an m/n-contiguous operand (128 bytes: the swizzle span)
WG_FN = {"f16": "tl_wgmma_f16", "bf16": "tl_wgmma_bf16", "f32": "tl_wgmma_tf32"}   # f32: a tf32-marked product
TMA_DTYPE = {"f16": "f16", "bf16": "bf16", "f32": "f32"}
WG_K = {"f16": 16, "bf16": 16, "f32": 8}   # the instruction's k: m64nNk16, m64nNk8 for tf32


def plan(spec: GPUSpec, mt: dict, extents: dict, dtype: str, tile: tuple | None = None) -> WgmmaConfig | None:
    """The engine's shape (``analysis/wgmma_shape.plan``) over this module's :data:`TILES`: Roller's block
    tile ``tile`` where it is one of them, else the engine's own choice; None where the engine does not
    apply (not sm_90, not f16/bf16/tf32 with K-major tf32 operands, rows not whole 16-byte chunks)."""
    return wgmma_shape.plan(spec, mt, extents, dtype, tile, TILES)


@dataclass(frozen=True)
class MapPlan:
    """How one operand is loaded: its tensor map (dims innermost first, with the batch dimension last when
    the operand is batched), the boxes per stage and where they go."""
    param: str
    dims: tuple
    box: tuple
    loads: tuple       # C coordinate lists (innermost first) of each box of k tile ``kt``
    offsets: tuple     # byte offset of each box within the operand's stage tile (an expression in ``k_rank``
                       # for a multicast share)


def operand_maps(mt: dict, extents: dict, cfg: WgmmaConfig, names: dict, bk: int = BK) -> tuple:
    """The A and B :class:`MapPlan` (coordinates use ``k_m0``, ``k_n0``, ``kt`` and ``k_batch``); ``bk``: the
    k tile (32 for tf32, whose operands are K-major). In a multicast cluster the shared operand's boxes are the
    block's share (``k_rank``: its rank in the cluster): a K-major tile's rows ``k_rank * R / C`` .. (R / C of
    them), an m/n-contiguous one's k rows ``k_rank * 64 / C`` .. of each 64-column box."""
    E = extents
    m, n, k = E[mt["m"]], E[mt["n"]], E[mt["k"]]
    nb = math.prod(E[b] for b in mt["batch"])

    def one(param, mn, mn0, rows, mn_major, batched, parts=1):
        extra, bextra, cextra = ((nb,), (1,), ("k_batch",)) if batched and nb > 1 else ((), (), ())
        if mn_major and parts > 1:   # a multicast share: k rows k_rank * part .. of each 64-column box
            part = BK // parts
            loads = tuple((f"{mn0} + {j * BOX}", f"kt * {BK} + k_rank * {part}") + cextra for j in range(rows // BOX))
            return MapPlan(param, (mn, k) + extra, (BOX, part) + bextra, loads,
                           tuple(f"{j * BOX * BK * 2} + k_rank * {part * 128}" for j in range(rows // BOX)))
        if mn_major:   # [k][mn]: boxes of 64 mn columns x 64 k rows
            loads = tuple((f"{mn0} + {j * BOX}", f"kt * {BK}") + cextra for j in range(rows // BOX))
            return MapPlan(param, (mn, k) + extra, (BOX, BK) + bextra, loads,
                           tuple(j * BOX * BK * 2 for j in range(rows // BOX)))
        if parts > 1:   # a multicast share: rows k_rank * part .. of the tile, 128 bytes each
            part = rows // parts
            return MapPlan(param, (k, mn) + extra, (bk, part) + bextra,
                           ((f"kt * {bk}", f"{mn0} + k_rank * {part}") + cextra,), (f"k_rank * {part * 128}",))
        return MapPlan(param, (k, mn) + extra, (bk, rows) + bextra, ((f"kt * {bk}", mn0) + cextra,), (0,))

    parts = {"a": 1, "b": 1, cfg.shared: cfg.cluster}
    a = one(names[mt["a"].tensor], m, "k_m0", cfg.bm, cfg.a_mn, mt["a_batched"], parts["a"])
    b = one(names[mt["b"].tensor], n, "k_n0", cfg.bn, cfg.b_mn, mt["b_batched"], parts["b"])
    return a, b


def tensor_map_attrs(maps: tuple, params: list, dtype: str) -> list:
    """The kernel's ``tensor_maps`` attribute: per map, the index of the buffer parameter it reads, its dims
    and box (innermost first), element type and swizzle (what ``runtime/tensor_map.from_attr`` encodes)."""
    index = {p["name"]: i for i, p in enumerate(params)}
    return [{"arg": index[mp.param], "dtype": TMA_DTYPE[dtype], "dims": list(mp.dims), "box": list(mp.box),
             "swizzle": 128} for mp in maps]


def descriptor_steps(cfg: WgmmaConfig) -> tuple:
    """(A's, B's) descriptor increment per k16 step, in the descriptor's 16-byte units: 32 bytes along a
    K-major operand's swizzled row, two 8-row groups (2 x 1024 bytes) of an m/n-major one."""
    return (128 if cfg.a_mn else 2), (128 if cfg.b_mn else 2)


def kernel_source(ctx, mt: dict, cfg: WgmmaConfig, grid: int = 0) -> str:
    """The CUDA body of the wgmma engine kernel for the matched product ``mt`` of ``ctx``; ``grid`` > 0: the
    persistent form (``wgmma_shape.persistent_grid``), each block looping over tiles ``blockIdx.x + i grid``."""
    E = ctx.extents
    m, n = mt["m"], mt["n"]
    dtype = ctx.dtypes[0]
    it = "long long" if ctx.idx_t == "i64" else "int"
    grid_m, grid_n = -(-E[m] // cfg.bm), -(-E[n] // cfg.bn)
    bk = bk_of(dtype)
    k_tiles = -(-E[mt["k"]] // bk)
    a, b = operand_maps(mt, E, cfg, ctx.names, bk)
    s = cfg.stages
    a_bytes = cfg.bm * 128
    da, db = descriptor_steps(cfg)
    ta, tb = int(cfg.a_mn), int(cfg.b_mn)
    # LBO: the stride between 64-column boxes of an m/n-major operand (unused by a swizzled K-major one: 16);
    # SBO: the stride between 8-row groups, 8 x 128 bytes either way.
    lbo_a, lbo_b = (BOX * BK * 2 if cfg.a_mn else 16), (BOX * BK * 2 if cfg.b_mn else 16)
    a_slab = BOX * BK * 2 if cfg.a_mn else 64 * 128   # one consumer's 64 rows of A: a box, or 64 swizzled rows
    rebalance = cfg.consumers > 1
    c = cfg.cluster
    loads = []
    for mp, base, tag in ((a, "0", "A"), (b, str(a_bytes), "B")):
        for coords, off in zip(mp.loads, mp.offsets):
            if c > 1 and tag.lower() == cfg.shared:   # the block's share of the tile, to every block of the cluster
                at = off if base == "0" else f"{base} + {off}"
                loads.append(f"      tl_tma_load_multicast_{len(coords)}d(k_st + {at}, k_tma{0 if tag == 'A' else 1}, "
                             f"&k_full[k_s], {hex((1 << c) - 1)}, {', '.join(coords)});")
                continue
            loads.append(f"      tl_tma_load_{len(coords)}d(k_st + {base} + {off}, k_tma{0 if tag == 'A' else 1}, "
                         f"&k_full[k_s], {', '.join(coords)});")
    ind = lambda lines, d: ["  " * d + ln for ln in lines]   # noqa: E731
    tiles = grid_blocks(ctx, mt, cfg)
    tile_of = f"const int k_m0 = (k_bid / {grid_n}) % {grid_m} * {cfg.bm}, k_n0 = k_bid % {grid_n} * {cfg.bn};"
    if c > 1 and cfg.shared == "b":   # a cluster's blocks are m tiles c i .. c i + c - 1 of one n tile
        tile_of = (f"const int k_m0 = (k_bid / {c * grid_n}) % {grid_m // c} * {c * cfg.bm} + k_bid % {c} * {cfg.bm}, "
                   f"k_n0 = k_bid / {c} % {grid_n} * {cfg.bn};   // clusters of {c} m tiles")
    where = [f"const {it} k_batch = k_bid / {grid_m * grid_n};",
             tile_of,
             f"const {it} k_cbase = k_batch * {E[m] * E[n]};"]
    tile_loop = f"for (int k_bid = blockIdx.x; k_bid < {tiles}; k_bid += gridDim.x) {{   // this block's tiles"
    wait = f"if (kt >= {s}) tl_mbarrier_wait_parity(&k_empty[k_s], k_ph ^ 1u);   // its last reader is done"
    loads_loop = [
        f"    for (int kt = 0; kt < {k_tiles}; ++kt) {{",
        f"      {wait.replace('kt >= ', 'k_it++ >= ') if grid else wait}",
        "      unsigned char* const k_st = k_smem + k_s * STAGE;",
        "      tl_mbarrier_arrive_expect_tx(&k_full[k_s], STAGE);   // the whole boxes, zero fill included",
        *loads,
        f"      if (++k_s == {s}) k_s = 0, k_ph ^= 1u;",
        "    }"]
    if grid:   # the stages run on across the block's tiles; k_it counts the k tiles issued so far
        loads_loop = ["    int k_it = 0;", "    " + tile_loop, *ind(where, 3), *ind(loads_loop, 1), "    }"]
    if c > 1:   # the producer tail: wait for every stage's final release, peers' remote arrives included
        tail_wait = wait.replace("kt >= ", "k_it++ >= " if grid else f"{k_tiles} + i >= ")
        loads_loop = [f"    const int k_rank = (int)tl_cluster_rank();   // this block's share of the "
                      f"{cfg.shared.upper()} tile",
                      *loads_loop,
                      f"    for (int i = 0; i < {s}; ++i) {{   // the producer tail: every block has released every "
                      "stage",
                      f"      {tail_wait}",
                      f"      if (++k_s == {s}) k_s = 0, k_ph ^= 1u;",
                      "    }"]
    zero = ["#pragma unroll", f"for (int i = 0; i < {cfg.bn // 2}; ++i) k_acc[i] = 0.0f;"]
    mainloop = [
        "// The k loop unrolled by the stage count: stage j's descriptors and barriers are constants (and no",
        "// further: a short K would otherwise unroll whole).",
        *consumer_k_loop(k_tiles, s, bk // WG_K[dtype],
                         f"{WG_FN[dtype]}<{cfg.bn}{'' if dtype == 'f32' else f', {ta}, {tb}'}>(k_acc, "
                         f"k_da + (j * (STAGE >> 4) + kk * {da}), k_db + (j * (STAGE >> 4) + kk * {db}), 1);", c),
        # persistent: release the tile's last stage now (the next tile's loads refill it during this epilogue);
        # in a cluster always (the producer tail waits for it)
        *([f"{release_line(c, str((k_tiles - 1) % s))}   // the tile's last stage: the producer refills it"
           " while this epilogue runs"] if grid or c > 1 else []),
        "// Epilogue: register 4 ni + i of thread 32 w + l holds row 16 w + l / 4 + 8 (i / 2), column 8 ni + 2 (l % 4)"
        " + i % 2.",
        "#pragma unroll",
        f"for (int ni = 0; ni < {cfg.bn // 8}; ++ni)",
        *ind(fused_epilogue_lines(ctx, mt) if ctx.fused
             else epilogue_lines(ctx.out_name, CTYPE[ctx.out_dtype], it, E[m], E[n]), 1),
    ]
    phase = "unsigned k_ph = 0;   // the full barriers' phase parity in this round of stages"
    consumer = [*zero, phase, *mainloop] if not grid else \
        [phase, "#pragma unroll 1", tile_loop, *ind(where, 1), *ind(zero, 1), *ind(mainloop, 1), "}"]
    src = [
        MARK,
        f"// wgmma engine: block tile {cfg.bm}x{cfg.bn}, k tile {bk}, {s}-stage TMA/mbarrier pipeline; "
        f"{cfg.consumers} consumer warpgroup(s) of 64x{cfg.bn} (wgmma m64n{cfg.bn}k{WG_K[dtype]} "
        f"{'tf32' if dtype == 'f32' else dtype}, f32 accumulators) "
        "and a producer warpgroup" + (f"; persistent: {grid} blocks loop over {tiles} tiles" if grid else "")
        + (f"; clusters of {c} blocks along {'N' if cfg.shared == 'a' else 'M'} share the {cfg.shared.upper()} tile"
           " (TMA multicast)" if c > 1 else ""),
        *smem_lines(cfg.stage_bytes, a_bytes, s),
        *(["const int k_bid = blockIdx.x;", *where] if not grid else []),
        "if (k_tid == 0) {",
        f"  for (int i = 0; i < {s}; ++i) {{",
        "    tl_mbarrier_init(&k_full[i], 1);   // the producer's arrive.expect_tx; the TMA bytes complete it",
        f"    tl_mbarrier_init(&k_empty[i], {128 * cfg.consumers});   // every consumer thread releases the stage"
        if c < 2 else
        f"    tl_mbarrier_init(&k_empty[i], {c * 4 * cfg.consumers});   // every consumer warp of every block of"
        " the cluster releases the stage",
        "  }",
        "  tl_mbarrier_init_fence();",
        "}",
        "__syncthreads();" if c < 2 else
        "tl_cluster_sync();   // every block's barriers exist before a peer's multicast or remote arrive reaches them",
        "if (k_tid < 128) {   // producer warpgroup: its first thread issues the loads, the others are done",
        *([f"  tl_setmaxnreg_dec<{PRODUCER_REGS}>();"] if rebalance else []),
        "  if (k_tid == 0) {",
        "    int k_s = 0;",
        "    unsigned k_ph = 0;",
        *loads_loop,
        "  }",
        "  return;",
        "}",
        *([f"tl_setmaxnreg_inc<{CONSUMER_REGS}>();"] if rebalance else []),
        "const int k_c = k_tid - 128, k_w = k_c / 32 % 4, k_lane = k_c % 32;",
        "// The consumer warpgroup, read back from lane 0 so ptxas knows it is warp-uniform (CUTLASS's"
        " canonical_warp_group_idx): the descriptors then live in uniform registers.",
        "const int k_cg = __shfl_sync(0xffffffffu, k_c / 128, 0);",
        "const int k_wm = k_cg * 64;   // this consumer warpgroup's 64 rows of the block tile",
        f"const unsigned long long k_da = tl_wgmma_desc(k_smem + k_cg * {a_slab}, {lbo_a}, 1024, 128);",
        f"const unsigned long long k_db = tl_wgmma_desc(k_smem + A_BYTES, {lbo_b}, 1024, 128);",
        f"float k_acc[{cfg.bn // 2}];",
        *consumer,
    ]
    return "\n".join(src) + "\n"


def smem_lines(stage_bytes: int, a_bytes: int, s: int) -> list:
    """The dynamic shared memory of ``s`` stages of ``stage_bytes`` (A's ``a_bytes`` first), 1024-aligned for the
    128-byte swizzle, and their full/empty mbarriers after them; shared by the GEMM and the conv."""
    return [
        f"constexpr int STAGE = {stage_bytes}, A_BYTES = {a_bytes};   // one k tile of A then B, 128B-swizzled",
        "extern __shared__ unsigned char k_dyn[];   // sized at launch: the stages, their barriers, 1024 of slack",
        "unsigned char* const k_smem = reinterpret_cast<unsigned char*>(",
        "    (reinterpret_cast<unsigned long long>(k_dyn) + 1023ull) & ~1023ull);   // the swizzle's period",
        f"unsigned long long* const k_full = reinterpret_cast<unsigned long long*>(k_smem + {s} * STAGE);",
        f"unsigned long long* const k_empty = k_full + {s};",
        "const int k_tid = threadIdx.x;"]


def release_line(cluster: int, stage: str, guard: str = "") -> str:
    """A consumer thread's release of stage ``stage`` (under the condition ``guard``, if any): its own arrive
    on the block's ``empty`` barrier; in a multicast cluster of ``cluster`` blocks lane r of each warp arrives
    on block r's (after the warpgroup's wgmma wait, so the whole warp is done with the stage)."""
    if cluster < 2:
        return f"{f'if ({guard}) ' if guard else ''}tl_mbarrier_arrive(&k_empty[{stage}]);"
    cond = f"({guard}) && k_lane < {cluster}" if guard else f"k_lane < {cluster}"
    return f"if ({cond}) tl_mbarrier_arrive_cluster(&k_empty[{stage}], k_lane);"


def consumer_k_loop(k_tiles: int, s: int, kk_steps: int, wgmma_call: str, cluster: int = 1) -> list:
    """A consumer warpgroup's k loop over ``k_tiles`` k tiles in ``s`` stages, unrolled by the stage count, with
    ``kk_steps`` of ``wgmma_call`` (in ``j``, ``kk``) per k tile; shared by the GEMM and the implicit-GEMM conv.
    ``cluster``: the multicast cluster whose every block's consumers release each stage (:func:`release_line`)."""
    return [
        "#pragma unroll 1",
        f"for (int kt0 = 0; kt0 < {k_tiles}; kt0 += {s}) {{",
        "  #pragma unroll",
        f"  for (int j = 0; j < {s}; ++j) {{",
        *([f"    if (kt0 + j < {k_tiles}) {{"] if k_tiles % s else ["    {"]),
        "      tl_mbarrier_wait_parity(&k_full[j], k_ph);   // k tile kt0 + j has landed",
        "      tl_wgmma_fence_operand(k_acc);",
        "      tl_wgmma_fence();",
        "      #pragma unroll",
        f"      for (int kk = 0; kk < {kk_steps}; ++kk)",
        f"        {wgmma_call}",
        "      tl_wgmma_commit();",
        "      tl_wgmma_wait<1>();   // k tile kt0 + j - 1's group is done: its stage can be refilled",
        "      tl_wgmma_fence_operand(k_acc);",
        f"      {release_line(cluster, f'(j + {s - 1}) % {s}', 'j > 0 || kt0 > 0')}",
        "    }",
        "  }",
        "  k_ph ^= 1u;",
        "}",
        "tl_wgmma_wait<0>();",
        "tl_wgmma_fence_operand(k_acc);"]


ROW = "k_m0 + k_wm + k_w * 16 + k_lane / 4"
COL = "k_n0 + ni * 8 + k_lane % 4 * 2"


def epilogue_lines(out: str, out_t: str, it: str, m_ext: int, n_ext: int) -> list:
    """Store one n8 column block of the accumulators as ``out_t``: a 2-byte type's column pairs in one 4-byte
    store where N is even (the pair is aligned and wholly inside or outside), else element by element."""
    if n_ext % 2 or out_t == "float":
        return ["#pragma unroll", "for (int i = 0; i < 4; ++i) {",
                f"  const int gm = {ROW} + i / 2 * 8, gn = {COL} + i % 2;",
                f"  if (gm < {m_ext} && gn < {n_ext}) TL_ST({out}, k_cbase + ({it})gm * {n_ext} + gn, "
                f"{out_t}(k_acc[ni * 4 + i]));", "}"]
    value = f"tl_pack_b16x2({out_t}(k_acc[ni * 4 + 2 * h]), {out_t}(k_acc[ni * 4 + 2 * h + 1]))"
    return ["#pragma unroll", "for (int h = 0; h < 2; ++h) {",
            f"  const int gm = {ROW} + h * 8, gn = {COL};",
            f"  if (gm < {m_ext} && gn < {n_ext})",
            f"    TL_ST(reinterpret_cast<unsigned*>({out}), (k_cbase + ({it})gm * {n_ext} + gn) / 2, {value});", "}"]


def fused_epilogue_lines(ctx, mt: dict) -> list:
    """A fused context's epilogue on one n8 column block (``mma_engine.fused_epilogue_lines``' way: the
    output coordinates bound to the anchor's axis variables, the members evaluated on the accumulator)."""
    from ..cstyle import render_body
    from .builder import KernelBuilder, linearize, unflatten
    E = ctx.extents
    m, n, batch = mt["m"], mt["n"], mt["batch"]
    kb = KernelBuilder()
    with kb.loop("i", 0, 4, unroll=-1):
        kb.let("gm", "i32", f"{ROW} + i / 2 * 8")
        kb.let("gn", "i32", f"{COL} + i % 2")
        if batch:
            unflatten(kb, "k_batch", [ctx.axis_var(b) for b in batch], [E[b] for b in batch], ctx.idx_t)
        kb.let(ctx.axis_var(m), ctx.idx_t, "gm")
        kb.let(ctx.axis_var(n), ctx.idx_t, "gn")
        index = linearize([ctx.axis_var(a) for a in ctx.out_axes], ctx.out_shape)
        ctx.store_result(kb, index, "k_acc[ni * 4 + i]", f"gm < {E[m]} && gn < {E[n]}")
    func = kb.func("k_epilogue", [1], [1], ctx.params())
    return [line[2:] for line in render_body(func)]


def lower(ctx, name: str, rtile: dict, mt: dict, cfg: WgmmaConfig):
    """The ``kernel.func`` of the wgmma engine kernel with shape ``cfg`` (dynamic shared memory, the launch's
    opt-in; its tensor maps in ``tensor_maps``), in multicast clusters where ``wgmma_shape.clustered`` takes
    them (``cluster``: compile-time ``__cluster_dims__``, so a plain launch of the grid, a multiple of the
    cluster, runs it; no ``bytes_unclustered``, so Rammer and Grinder refuse it as any dynamic-smem kernel)."""
    from .builder import KernelBuilder
    from .tiled_mma import modelled_bytes, tiled_for
    dtype = ctx.dtypes[0]
    params = ctx.params()
    cfg = wgmma_shape.clustered(tiled_for(ctx), mt, ctx.extents, cfg)
    conf = {"block": {a: rtile["block"].get(a, 1) for a in ctx.out_axes}, "thread": dict(rtile.get("thread", {})),
            "step": {mt["k"]: bk_of(dtype)}, "mma": [64, cfg.bn, WG_K[dtype]], "engine": "wgmma",
            "tile": [cfg.bm, cfg.bn],
            "warpgroups": [cfg.consumers, 1], "stages": cfg.stages}
    conf["block"][mt["m"]], conf["block"][mt["n"]] = cfg.bm, cfg.bn
    grid = wgmma_shape.persistent_grid(tiled_for(ctx), mt, ctx.extents, cfg)
    if grid:
        conf["persistent"] = {"blocks": grid, "tiles": grid_blocks(ctx, mt, cfg)}
    if cfg.cluster > 1:
        conf["cluster"] = {mt["n" if cfg.shared == "a" else "m"]: cfg.cluster}
        conf["multicast"] = cfg.shared.upper()   # the operand the cluster shares
    maps = operand_maps(mt, ctx.extents, cfg, ctx.names, bk_of(dtype))
    saved = wgmma_shape.multicast_saved_bytes(mt, ctx.extents, cfg, itemsize(dtype))   # shared: once per cluster
    return KernelBuilder().func(
        name, [grid or grid_blocks(ctx, mt, cfg)], [cfg.threads], params, kind="tiled_mma", flops=ctx.flops(),
        bytes_modelled=modelled_bytes(ctx, mt, cfg.bm, cfg.bn, bk_of(dtype)) - saved, config=conf,
        source=kernel_source(ctx, mt, cfg, grid), smem=cfg.smem_bytes, smem_static=0,
        tensor_maps=tensor_map_attrs(maps, params, dtype), cluster=cfg.cluster if cfg.cluster > 1 else None,
        tensor_core=tensor_core_dtype(dtype))
