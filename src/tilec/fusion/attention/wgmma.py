"""Attention on Hopper's warpgroup MMA (sm_90, f16/bf16 Q, K, V; issue #21): FlashAttention-3's forward loop
built from the prelude's sm_90 primitives (``tl_wgmma_*``, run exactly by the emulator, docs/hopper.md), for
the chains the sm_80 tensor-core kernel (:mod:`.mma`) takes, when the target is sm_90 and both head dims are
whole 128-byte swizzle atoms (64 or 128); other head dims keep :mod:`.mma` (mma.sync runs on sm_90 too).

One block per (batch·head, tile of ``tq`` = 64·warpgroups query rows); consumer warpgroup ``g`` (128 threads)
owns query rows 64g..64g+63, and its thread 32w + 4r + t holds rows 16w + r and +8 of them, as wgmma's D fragment
places them (the same rows and columns a warp's mma.sync C fragments hold, so the score ops, the online
softmax and the store are :mod:`.mma`'s on a flat accumulator array).

1. Q's tile, then K and V chunks of ``bk`` keys, come to shared memory through a two-stage pipeline (chunk
   c + 1 in flight while chunk c is computed), every tile stored in wgmma's canonical 128-byte-swizzled
   layout: [rows][64-column atoms], row r's 16-byte chunk c at chunk ``c ^ (r % 8)``, atoms one after the
   other. Where every operand is boxes of its buffer (indices plain axes or 0, rows whole 16-byte chunks:
   :func:`_box`, :func:`uses_tma`), the kernel is warp-specialised as CUTLASS's and FlashAttention-3's are:
   a producer warpgroup in front of the consumers waits until a stage is free (its ``empty`` mbarrier, on
   which every consumer thread arrives when done with it), stores the chunk's key-indexed operands (masks)
   and has its thread 0 load each atom as one TMA box (tensor maps in the ``tensor_maps`` attribute, built
   by the runtime), announced with ``arrive.expect_tx`` on the stage's ``full`` mbarrier, which the other
   producer threads' arrivals complete (releasing their stores); with two consumers, ``setmaxnreg`` moves
   registers from the producer (40) to the consumers (232). Else every thread copies 16-byte ``cp.async``
   chunks (or elements), a ``fence.proxy.async`` orders them (generic proxy) before wgmma reads them, and
   block-wide barriers order the stages. Both zero-fill past the sequence ends.
2. Per chunk, S = Q·Kᵀ by ``wgmma.m64n{bk}k16`` with both operands in shared memory (descriptors: Q K-major;
   K K-major when stored [key][d], MN-major when stored [d][key]); the score ops are rendered on each
   accumulator; keys past the end become -inf.
3. Online softmax in f32 on the accumulator registers (row maxima over the quad with two shuffles), O rescaled
   by ``exp(m_old - m_new)``, and P = exp(S - m) packed to f16/bf16 in registers: the accumulators of two n8
   column groups are one k16 A fragment, so O += P·V is ``wgmma.m64n{dv}k16`` with A from registers (the
   ``_rs`` form) and V from shared memory (MN-major when stored [key][dv], K-major when [dv][key]).
4. O / l is converted to the output type and stored once (through the head-merge transpose if one ends the
   group).

Multicast (issue #21, :func:`cluster_for`): the blocks of one (batch·head) are its query tiles, consecutive,
and read the same K/V chunks. Where K and V load by TMA and the query tiles come in whole clusters of
``wgmma_shape.MULTICAST``, pairs of blocks form a thread-block cluster (``__cluster_dims__(2, 1, 1)``) and each
producer loads half the rows of every K/V box with ``.multicast::cluster`` to both blocks (each block's
``full`` barrier receives both halves, the same expect_tx); a stage is refilled only once every consumer warp
of both blocks has released it (``empty`` counts 2 x 4 warps per consumer warpgroup; lane r of each warp
arrives on block r's barrier, the GEMM engine's ``release_line``, after a ``__syncwarp`` since every lane
read the stage's masks), the producer waits for both stages' final
releases before it exits, and a cluster barrier follows the barriers' init. K/V's global bytes are then read
once per cluster. Q, the key-indexed operands and the scalars stay per block.

Not yet FlashAttention-3's whole schedule: the softmax of chunk c does not overlap the wgmma of chunk c + 1
(each product is waited for before its results are used), and the two consumers do not ping-pong.
:func:`eligible` says when a matched chain takes this kernel, :func:`choose` its tile; the bytes are
:func:`.mma.modelled_bytes` (what the emulator counts)."""
from __future__ import annotations

import math

from ...analysis.wgmma_shape import MULTICAST
from ...backend.arch_features import MARK
from ...backend.cstyle import CUDA
from ...backend.lower import mma_engine as E
from ...backend.lower import wgmma_engine as WE
from ...backend.lower.builder import KernelBuilder
from ...backend.lower.fused import kernel_params
from ...ir.diagnostics import CompileError
from ...ir.texpr.nodes import AxisRef, Num
from ...ir.types import itemsize
from ..wgmma_parts import ATOM, SLACK, pack_a_fragments
from ..wgmma_parts import k_major_step as _k_major_step
from ..wgmma_parts import mn_major_step as _mn_major_step
from . import mma

ENGINE = "wgmma"
HEADS = (64, 128)     # head dims as whole atoms; two S/O accumulator sets of 64 x 128 stay in registers
MAX_BN = 128          # keys per chunk: FlashAttention-3's kBlockN for head dims 64 and 128
# 2^x for the softmax: MUFU.EX2 alone (ex2.approx.ftz, FlashAttention's fast-math exp2; within 2 ulp, results
# below 2^-126 flush to 0), where exp2f adds a range check and two scalings around it for subnormal results.
# The emulator computes it exactly, as it does CUDA's other fast-math intrinsics (emu_types.h).
EX2 = ["#ifdef TILEC_EMU",
       "const auto k_ex2 = [](float x) { return exp2f(x); };",
       "#else",
       'const auto k_ex2 = [](float x) { float y; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x)); return y; };',
       "#endif"]
ROWS = 64             # query rows of one warpgroup (wgmma's M)


# ---- when ----------------------------------------------------------------------------------------------

def eligible(graph, att, spec) -> bool:
    """Whether the matched chain ``att`` runs on this kernel: an sm_90 target (wgmma exists on sm_90a only,
    not on later GPUs), a chain :func:`.mma.eligible` takes, head dims of whole 128-byte atoms."""
    return E.sm_version(spec) == 90 and att.d in HEADS and att.dv in HEADS and mma.eligible(graph, att, spec)


def warpgroups_for(att) -> int:
    """Warpgroups per block: 2 (128 query rows share each K/V chunk, FlashAttention-3's tile) unless the
    sequence fits one."""
    return 2 if att.sq > ROWS else 1


def bn_for(att) -> int:
    """Keys per chunk: :data:`MAX_BN`, 64 for a key sequence that fits one such chunk."""
    return MAX_BN if att.sk > 64 else 64


def smem_bytes(att, groups: int, bn: int, dtype: str, staged_j: int, scalars: int) -> int:
    """Q tile, two stages of K and V chunks (b16), two stages of the key-indexed operands and the scalar
    slots (f32), and the alignment slack."""
    b16 = (ROWS * groups * att.d + 2 * bn * (att.d + att.dv)) * itemsize(dtype)
    return SLACK + b16 + 32 + 4 * (2 * bn * staged_j + max(1, scalars))   # 32: the stages' four mbarriers


def cluster_for(spec, att, tq: int, tma: bool) -> int:
    """Blocks per multicast cluster: :data:`MULTICAST` where K and V load by TMA (``tma``), the target has
    clusters and the query tiles of a head come in whole clusters (so a cluster never spans two heads); else
    1. It reads K/V once per cluster, so the modelled time (bytes x waves) only drops."""
    nq = -(-att.sq // tq)
    return MULTICAST if tma and spec.max_cluster_blocks >= MULTICAST and nq % MULTICAST == 0 else 1


def saved_bytes(graph, att, tq: int, cluster: int) -> int:
    """Global bytes of K and V a cluster of ``cluster`` query tiles does not read (:func:`.mma.modelled_bytes`
    counts them once per query tile): (C - 1) / C of them."""
    if cluster < 2:
        return 0
    qk, pv = graph.nodes[att.qk], graph.nodes[att.pv]
    size = lambda n, acc: itemsize(n.op.operands[list(n.expr.inputs).index(acc.tensor)].type.dtype)  # noqa: E731
    blocks = math.prod(att.batch) * -(-att.sq // tq)
    return blocks // cluster * (cluster - 1) * att.sk * (att.d * size(qk, att.k_acc) + att.dv * size(pv, att.v_acc))


def choose(graph, att, spec, outside: list) -> dict | None:
    """The kernel's tile: ``{tq, bk, threads, blocks, bytes, waves, smem, cluster, engine}``, or None when its
    shared memory does not fit the target's opt-in limit."""
    g, bn = warpgroups_for(att), bn_for(att)
    tq = ROWS * g
    dtype = graph.nodes[att.qk].op.operands[0].type.dtype
    smem = smem_bytes(att, g, bn, dtype, sum(1 for _, _, s in outside if s == "j"),
                      sum(1 for _, _, s in outside if s == ""))
    if smem > spec.smem_per_block_optin_bytes:
        return None
    blocks = math.prod(att.batch) * -(-att.sq // tq)
    tma = uses_tma(graph, att, tq, bn)
    threads = 128 * (g + tma)   # + the producer warpgroup of a TMA kernel
    cluster = cluster_for(spec, att, tq, tma)
    per_sm = max(1, min(spec.max_threads_per_sm // threads, spec.smem_per_sm_bytes // smem))
    waves = -(-blocks // (per_sm * spec.num_sms))
    return {"tq": tq, "bk": bn, "threads": threads, "blocks": blocks,
            "bytes": mma.modelled_bytes(graph, att, outside, tq) - saved_bytes(graph, att, tq, cluster), "waves": waves,
            "smem": smem, "cluster": cluster,
            "engine": ENGINE}


# ---- the kernel ----------------------------------------------------------------------------------------

def _place(t) -> callable:
    """The element offset (C text) of (row, col) in tile ``t`` stored as wgmma's 128-byte-swizzled canonical
    layout: 64-column atoms of ``t.rows`` rows, 16-byte chunk ``c`` of row ``r`` at ``c ^ (r % 8)``."""
    def place(row: str, col: str) -> str:
        atom = f"({col}) / {ATOM} * {t.rows * ATOM} + " if t.cols > ATOM else ""
        return f"{atom}({row}) * {ATOM} + (((({col}) % {ATOM} >> 3) ^ (({row}) & 7)) << 3 | (({col}) & 7))"
    return place


def _box(shape, idx, axes: dict, row: str, col: str, rows: int, size: int) -> tuple | None:
    """``(coordinates, box)``, innermost first, of the TMA boxes of 64 columns x ``rows`` rows that load a tile
    whose row / column roles are ``row`` / ``col`` from a buffer of ``shape`` read at ``idx`` (``axes``: axis ->
    role, batch axes ``k_b<p>``; coordinates "{r}" and "{c}" stand for the tile's row and column origin), or
    None where the access is not such boxes: an index other than an axis or 0, the column not the contiguous
    dim, rows not 16-byte multiples, more than 5 dims (then cp.async copies the tile)."""
    if len(shape) > 5 or len(idx) != len(shape) or shape[-1] * size % 16:
        return None
    coords, box, seen = [], [], []
    for k, ix in enumerate(idx):
        if isinstance(ix, Num) and ix.value == 0 and k < len(idx) - 1:
            coords.append("0")
            box.append(1)
            continue
        role = axes.get(ix.name) if isinstance(ix, AxisRef) else None
        if role is None or role in seen or (role == col) != (k == len(idx) - 1):
            return None
        seen.append(role)
        if role not in (row, col) and not role.startswith("k_b"):
            return None
        coords.append("{c}" if role == col else "{r}" if role == row else role)
        box.append(ATOM if role == col else rows if role == row else 1)
    return (list(reversed(coords)), list(reversed(box))) if row in seen else None


def _operands(att, lay: dict, tq: int, bn: int) -> list:
    """``(member, access, row role, column role, rows)`` of the Q, K and V tiles (:func:`lower`'s layouts)."""
    k_kmajor, v_kmajor = lay["k"][0] == "d", lay["v"][0] == "j"
    return [(att.qk, att.q_acc, "i", "d", tq),
            (att.qk, att.k_acc, *(("j", "d", bn) if k_kmajor else ("d", "j", att.d))),
            (att.pv, att.v_acc, *(("e", "j", att.dv) if v_kmajor else ("j", "e", bn)))]


def _node_roles(graph, att, m: int) -> dict:
    """Member ``m``'s axes -> roles, as :func:`.mma._roles` names them in the kernel."""
    e, nb = graph.nodes[m].expr, len(att.batch)
    roles = {a: f"k_b{p}" for p, a in enumerate(e.out_axes[:nb])}
    if m == att.qk:
        roles.update({e.out_axes[-2]: "i", e.out_axes[-1]: "j", e.reduce_axes[0]: "d"})
    else:
        roles.update({e.out_axes[-2]: "i", e.reduce_axes[0]: "j", e.out_axes[-1]: "e"})
    return roles


def uses_tma(graph, att, tq: int, bn: int) -> bool:
    """Whether Q, K and V all load as TMA boxes (:func:`_box`): the kernel then has a producer warpgroup."""
    for m, acc, row, col, rows in _operands(att, mma.layouts(graph, att), tq, bn):
        node = graph.nodes[m]
        op = node.op.operands[list(node.expr.inputs).index(acc.tensor)].type
        if _box(op.shape, acc.indices, _node_roles(graph, att, m), row, col, rows, itemsize(op.dtype)) is None:
            return False
    return True


def lower(r, kernel, name: str, outside: list):
    """The ``kernel.func`` of the wgmma attention kernel for the matched chain of ``r`` (the attention kernel's
    reader, :mod:`.kernel`) with the tile of its ``tile`` attribute; ``outside``: the score ops' operand
    accesses (``match.outside_accesses``)."""
    att, graph = r.att, r.graph
    qk, pv = r.ctxs[att.qk], r.ctxs[att.pv]
    lay = mma.layouts(graph, att)
    dtype = qk.dtypes[0]
    ct = E.CTYPE[dtype]
    T, tq, bn = r.threads, r.tq, r.bk
    groups = tq // ROWS   # consumer warpgroups; a TMA kernel's first warpgroup is its producer
    sq, sk, d, dv = att.sq, att.sk, att.d, att.dv
    nq, nc = -(-sq // tq), -(-sk // bn)
    blocks = math.prod(att.batch) * nq
    staged = [(m, acc) for m, acc, w in outside if w == "j"]
    slots = [(m, acc) for m, acc, w in outside if w == ""]
    i_ax, j_ax, d_ax = qk.out_axes[-2], qk.out_axes[-1], qk.reduce_axes[0]
    r_ax, e_ax = pv.reduce_axes[0], pv.out_axes[-1]
    qk_axes = mma._roles(r, att.qk, {i_ax: "i", j_ax: "j", d_ax: "d"})
    pv_axes = mma._roles(r, att.pv, {pv.out_axes[-2]: "i", r_ax: "j", e_ax: "e"})
    Tile = mma._Tile
    qt = Tile(att.qk, att.q_acc, "i", "d", tq, d, sq, d, lay["q"][1])
    k_kmajor, v_kmajor = lay["k"][0] == "d", lay["v"][0] == "j"
    kt = (Tile(att.qk, att.k_acc, "j", "d", bn, d, sk, d, lay["k"][1]) if k_kmajor
          else Tile(att.qk, att.k_acc, "d", "j", d, bn, d, sk, lay["k"][1]))
    vt = (Tile(att.pv, att.v_acc, "e", "j", dv, bn, dv, sk, lay["v"][1]) if v_kmajor
          else Tile(att.pv, att.v_acc, "j", "e", bn, dv, sk, dv, lay["v"][1]))
    origin = {"i": "k_q0", "j": "k_kc", "d": "0", "e": "0"}
    smem = smem_bytes(att, groups, bn, dtype, len(staged), len(slots))
    wg = "tl_wgmma_bf16" if dtype == "bf16" else "tl_wgmma_f16"
    conv = lambda x: CUDA.convert(x, "f32", dtype)  # noqa: E731
    ind = lambda lines, n: ["  " * n + x for x in lines]  # noqa: E731
    copy = lambda t, dst, axes, o: mma._copy_lines(r, t, dst, axes, o, T, _place(t))  # noqa: E731
    params = kernel_params(kernel)
    boxes = []
    for (m, acc, row, col, rows), axes in zip(_operands(att, lay, tq, bn), (qk_axes, qk_axes, pv_axes)):
        c = r.ctxs[m]
        box = _box(c.shapes[c.input_of(acc)], acc.indices, axes, row, col, rows, itemsize(dtype))
        arg = next(i for i, p in enumerate(params) if p["name"] == c.names[acc.tensor])
        boxes.append(box and ({"arg": arg, "dtype": dtype, "dims": list(reversed(c.shapes[c.input_of(acc)])),
                               "box": box[1], "swizzle": 128}, box[0]))
    tma = all(boxes)
    assert T == 128 * (groups + tma), (T, groups, tma)   # choose() asked uses_tma() the same question
    c = r.cluster
    if c != 1 and (c != MULTICAST or not tma or nq % c):
        raise CompileError.at(f"lower-cuda: wgmma attention cluster {c} must be 1, or {MULTICAST} with K/V by TMA "
                              f"and the {nq} query tiles of a head in whole clusters", kernel.loc)
    if c > 1:   # K and V: each block loads rows k_rank * R / C .. of every box and multicasts them
        for i in (1, 2):
            info, coords = boxes[i]
            at = coords.index("{r}")
            rows = info["box"][at]
            boxes[i] = ({**info, "box": [*info["box"][:at], rows // c, *info["box"][at + 1:]]},
                        [*coords[:at], f"{{r}} + k_rank * {rows // c}", *coords[at + 1:]])
    pipeline = "TMA + mbarrier, producer warpgroup" if tma else "cp.async"
    P = 128   # the producer's threads
    rebalance = tma and groups > 1   # 384 threads: the producer gives registers to the consumers

    def tma_loads(chunk: str, stage: str, tiles: list) -> list:
        """One box per 64-column atom of each ``(tile, destination, map)`` onto the stage's barrier."""
        o = dict(origin, j=f"({chunk}) * {bn}")
        out = []
        for t, dst, i in tiles:
            coords = boxes[i][1]
            share = c > 1 and i > 0   # K, V in a cluster: this block's rows, to every block
            for a in range(t.cols // ATOM):
                col = o[t.col] if not a else f"{o[t.col]} + {a * ATOM}" if o[t.col] != "0" else str(a * ATOM)
                cs = ", ".join(x.format(c=col, r=o[t.row]) for x in coords)
                if share:
                    out.append(f"tl_tma_load_multicast_{len(coords)}d({dst} + {a * t.rows * ATOM} + k_rank * "
                               f"{t.rows // c * ATOM}, k_tma{i}, &k_full[{stage}], {hex((1 << c) - 1)}, {cs});")
                    continue
                out.append(f"tl_tma_load_{len(coords)}d({dst} + {a * t.rows * ATOM}, k_tma{i}, &k_full[{stage}], {cs});")
        return out

    src = [MARK,
           f"// attention on wgmma: {groups} warpgroup(s) x {ROWS} query rows, {bn}-key K/V chunks in a 2-stage "
           f"{pipeline} pipeline, m64n{bn}k16 (S, SS) and m64n{dv}k16 (O, A from registers) {dtype} with f32 "
           "accumulators, online softmax (FlashAttention-3's products)",
           "extern __shared__ __align__(1024) unsigned char k_dyn[];   // sized at launch, 1024 bytes of slack",
           "// Tiles start on a 1024-byte boundary: the 128-byte swizzle repeats every 8 rows of 128 bytes.",
           "unsigned char* const k_smem = reinterpret_cast<unsigned char*>("
           "(reinterpret_cast<unsigned long long>(k_dyn) + 1023ull) & ~1023ull);",
           f"{ct}* const k_sq = reinterpret_cast<{ct}*>(k_smem);   // [{tq // 1}][{d}] in {d // ATOM} atom(s)",
           f"{ct}* const k_sk = k_sq + {qt.elems};   // [2][{kt.rows}][{kt.cols}]",
           f"{ct}* const k_sv = k_sk + {2 * kt.elems};   // [2][{vt.rows}][{vt.cols}]",
           "unsigned long long* const k_full = reinterpret_cast<unsigned long long*>("
           f"k_sv + {2 * vt.elems});   // TMA: a stage has landed",
           "unsigned long long* const k_empty = k_full + 2;   // TMA: the consumers are done with a stage",
           f"float* const k_sj = reinterpret_cast<float*>(k_full + 4);   // [2][{len(staged)}][{bn}]",
           f"float* const k_sc = k_sj + {2 * len(staged) * bn};   // outside scalars",
           *EX2,
           *([f"const int k_tid = threadIdx.x, k_c = k_tid - {P}, k_lane = k_c % 32, k_warp = k_c / 32;   "
              "// k_c: the consumers' thread"] if tma else
             ["const int k_tid = threadIdx.x, k_lane = k_tid % 32, k_warp = k_tid / 32;"]),
           "const int k_wm = k_warp * 16;   // warp w of warpgroup g: rows 64g + 16(w % 4), the D fragment's",
           "const int k_blk = blockIdx.x;"]
    src += mma._block_index_lines(att, nq, tq)
    if slots:   # once per block (thread 0), visible after the prologue's barrier
        src += mma._slot_lines(r, slots)

    def stage_j(chunk: str, buf: str, threads: int = T) -> list:
        return mma._stage_j_lines(r, staged, chunk, buf, sk, bn, threads)

    def load_chunk(chunk: str, stage: str) -> list:
        o = dict(origin, j=f"({chunk}) * {bn}")
        return ["{", f"  {ct}* const k_dk = k_sk + ({stage}) * {kt.elems};",
                f"  {ct}* const k_dv = k_sv + ({stage}) * {vt.elems};",
                *ind(copy(kt, "k_dk", qk_axes, o), 1), *ind(copy(vt, "k_dv", pv_axes, o), 1),
                *ind(stage_j(chunk, stage), 1), "}"]

    # S = Q K^T: k16 steps over d (Q's rows of this warpgroup start 64 rows into each of its atoms).
    s_calls = [f"{wg}<{bn}, 0, {0 if k_kmajor else 1}>(k_s, k_dq + {_k_major_step(tq, k)}, k_dk + "
               f"{_k_major_step(bn, k) if k_kmajor else _mn_major_step(k)}, {1 if k else 0});"
               for k in range(0, d, 16)]
    # O += P V: k16 steps over the chunk's keys, A (P) from registers.
    o_calls = [f"{wg}_rs<{dv}, {0 if v_kmajor else 1}>(k_o, k_p[{k // 16}], k_dv + "
               f"{_k_major_step(dv, k) if v_kmajor else _mn_major_step(k)}, 1);" for k in range(0, bn, 16)]
    # MN-major operands step along M/N by whole atoms (LBO); K-major ones need no LBO (swizzled: ignored).
    lbo_k = 16 if k_kmajor else d * 2 * ATOM
    lbo_v = 16 if v_kmajor else bn * 2 * ATOM
    if tma:
        kv = [(kt, f"k_sk + k_ps * {kt.elems}", 1), (vt, f"k_sv + k_ps * {vt.elems}", 2)]
        src += ["// Warp specialisation (CUTLASS's / FlashAttention-3's): warpgroup 0 produces, the others consume.",
                "if (k_tid == 0) {",
                *(f"  tl_mbarrier_init(&k_full[{i}], {P});   // every producer thread; thread 0 with the bytes"
                  for i in range(2)),
                *((f"  tl_mbarrier_init(&k_empty[{i}], {128 * groups});   // every consumer thread" for i in range(2))
                  if c < 2 else
                  (f"  tl_mbarrier_init(&k_empty[{i}], {c * 4 * groups});   // every consumer warp of every block"
                   for i in range(2))),
                "  tl_mbarrier_init_fence();", "}",
                "__syncthreads();   // barriers initialised, scalar slots visible: the last block-wide barrier"
                if c < 2 else
                "tl_cluster_sync();   // scalar slots visible; every block's barriers exist before a peer's multicast"
                " or remote arrive",
                f"if (k_tid < {P}) {{",
                *([f"  tl_setmaxnreg_dec<{WE.PRODUCER_REGS}>();"] if rebalance else []),
                *(["  const int k_rank = (int)tl_cluster_rank();   // this block's half of every K/V box"]
                  if c > 1 else []),
                f"  for (int k_pc = 0; k_pc < {nc}; ++k_pc) {{",
                "    const int k_ps = k_pc & 1;",
                "    if (k_pc >= 2) tl_mbarrier_wait_parity(&k_empty[k_ps], ((k_pc >> 1) + 1) & 1);   // stage free",
                *ind(stage_j("k_pc", "k_ps", P), 2),
                "    if (k_tid == 0) {   // the boxes' bytes, zero fill included, complete the stage",
                f"      tl_mbarrier_arrive_expect_tx(&k_full[k_ps], {2 * (kt.elems + vt.elems)} + "
                f"(k_pc == 0 ? {2 * qt.elems} : 0));",
                "      if (k_pc == 0) {", *ind(tma_loads("0", "0", [(qt, "k_sq", 0)]), 4), "      }",
                *ind(tma_loads("k_pc", "k_ps", kv), 3),
                "    } else {",
                "      tl_mbarrier_arrive(&k_full[k_ps]);   // releases this thread's key-operand stores",
                "    }", "  }",
                *([] if c < 2 else [
                    "  // The producer tail: both stages' final releases, peers' included, before the block may exit.",
                    f"  if (k_tid == 0) for (int k_pc = {max(nc, 2)}; k_pc < {nc + 2}; ++k_pc)",
                    "    tl_mbarrier_wait_parity(&k_empty[k_pc & 1], ((k_pc >> 1) + 1) & 1);"]),
                "  return;", "}",
                *([f"tl_setmaxnreg_inc<{WE.CONSUMER_REGS}>();"] if rebalance else [])]
    else:
        src += ["// Prologue: Q (group 0), then K/V chunk 0 (group 1).",
                *copy(qt, "k_sq", qk_axes, origin), "tl_cp_async_commit();",
                *load_chunk("0", "0"), "tl_cp_async_commit();",
                *(["__syncthreads();   // the scalar slots"] if slots else [])]
    wait = (["  tl_mbarrier_wait_parity(&k_full[k_ci & 1], (k_ci >> 1) & 1);   // chunk c (and Q) has landed"]
            if tma else
            ["  tl_cp_async_commit();", "  tl_cp_async_wait<1>();",
             "  tl_fence_proxy_async();   // this thread's cp.async writes, read by wgmma through the async proxy",
             "  __syncthreads();   // chunk c is visible to all"])
    src += [
            *(f"const float k_rc{n} = 1.0f / k_sc[{n}];" for n in range(len(slots))),
            f"const unsigned long long k_dq = tl_wgmma_desc(k_sq + k_warp / 4 * {ROWS * ATOM}, 16, 1024, 128);",
            f"float k_o[{dv // 2}];", "float k_m[2], k_l[2];",
            "#pragma unroll", f"for (int k_x = 0; k_x < {dv // 2}; ++k_x) k_o[k_x] = 0.0f;",
            "#pragma unroll", "for (int h = 0; h < 2; ++h) {", f"  k_m[h] = {mma.NEG_INF};", "  k_l[h] = 0.0f;", "}",
            f"for (int k_ci = 0; k_ci < {nc}; ++k_ci) {{",
            f"  const int k_kc = k_ci * {bn};",
            *([] if tma else [
                "  // Chunk c + 1 in flight while chunk c is computed (its stage was released by the last barrier).",
                f"  if (k_ci + 1 < {nc})", *ind(load_chunk("k_ci + 1", "(k_ci + 1) & 1"), 2)]), *wait,
            f"  const unsigned long long k_dk = tl_wgmma_desc(k_sk + (k_ci & 1) * {kt.elems}, {lbo_k}, 1024, 128);",
            f"  const unsigned long long k_dv = tl_wgmma_desc(k_sv + (k_ci & 1) * {vt.elems}, {lbo_v}, 1024, 128);",
            f"  const float* const k_cj = k_sj + (k_ci & 1) * {len(staged) * bn};",
            "  // S = Q K^T for this chunk, both operands in shared memory; f32 accumulators land at the wait.",
            f"  float k_s[{bn // 2}];",
            "  tl_wgmma_fence();", *ind(s_calls, 1), "  tl_wgmma_commit();", "  tl_wgmma_wait<0>();",
            "  tl_wgmma_fence_operand(k_s);",
            "  // The score ops on each element (register 4i + e: rows lane/4 and +8, columns 8i + 2(lane%4) and +1).",
            "  #pragma unroll", f"  for (int ni = 0; ni < {bn // 8}; ++ni)", "    #pragma unroll",
            "    for (int e = 0; e < 4; ++e) {",
            "      const int k_qi = k_q0 + k_wm + k_lane / 4 + e / 2 * 8;",
            "      const int k_tj = ni * 8 + k_lane % 4 * 2 + e % 2, k_kj = k_kc + k_tj;",
            *ind(mma._score_lines(r, staged, slots, sq, sk, "k_s[4 * ni + e]", bn), 3), "    }",
            *ind(_softmax_lines(dv, bn), 1),
            "  // P in registers: the accumulators of column groups 2j and 2j + 1 are the k16 A fragment j.",
            *ind(pack_a_fragments("k_s", "k_p", bn, conv), 1),
            "  // O += P V (P's registers and O's accumulators are the wgmma's until its wait).",
            "  tl_wgmma_fence_operand(k_o);", "  tl_wgmma_fence();", *ind(o_calls, 1),
            "  tl_wgmma_commit();", "  tl_wgmma_wait<0>();", "  tl_wgmma_fence_operand(k_o);",
            ("  tl_mbarrier_arrive(&k_empty[k_ci & 1]);   // done with chunk c's stage: the producer may refill it"
             if tma and c < 2 else
             "  __syncwarp();   // every lane's reads of chunk c's stage (masks) happen before lane r releases it"
             if tma else "  __syncthreads();   // every warpgroup is done with chunk c's stage before it is refilled"),
            *([f"  {WE.release_line(c, 'k_ci & 1')}   // chunk c's stage: every producer of the cluster may refill it"]
              if tma and c > 1 else []),
            "}",
            *([] if tma else ["tl_cp_async_wait<0>();   // only empty groups can be left"]),
            *mma._store_lines(r, dv, sq, "k_o[4 * ni + 2 * h + e]")]
    func = KernelBuilder().func(
        name, [blocks], [T], kernel_params(kernel), kind="attention", flops=sum(c.flops() for c in r.ctxs),
        bytes_modelled=mma.modelled_bytes(graph, att, outside, tq) - saved_bytes(graph, att, tq, c),
        source="\n".join(src) + "\n",
        config={"engine": ENGINE, "wgmma": [[ROWS, bn, 16], [ROWS, dv, 16]], "warpgroups": groups, "stages": 2,
                "pipeline": "tma" if tma else "cp.async", "producer": tma, "tq": tq, "bk": bn,
                **({"cluster": c} if c > 1 else {})},
        smem=smem, smem_static=0, **({"tensor_maps": [b[0] for b in boxes]} if tma else {}),
        cluster=c if c > 1 else None, tensor_core=dtype)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in r.members)
    return func


def _softmax_lines(dv: int, bn: int) -> list:
    """:func:`.mma._softmax_lines` on the flat accumulators: rows ``h`` = 0 (lane/4) and 1 (+8) are registers
    4i + 2h and 4i + 2h + 1 of S and O."""
    log2e, neg_inf = mma.LOG2E, mma.NEG_INF
    return ["#pragma unroll", "for (int h = 0; h < 2; ++h) {",
            "  float k_mx = k_m[h];", "  #pragma unroll",
            f"  for (int ni = 0; ni < {bn // 8}; ++ni) k_mx = fmaxf(k_mx, fmaxf(k_s[4 * ni + 2 * h], k_s[4 * ni + 2 * h + 1]));",
            "  k_mx = fmaxf(k_mx, __shfl_xor_sync(0xffffffffu, k_mx, 1));",
            "  k_mx = fmaxf(k_mx, __shfl_xor_sync(0xffffffffu, k_mx, 2));",
            "  // exp(x - m) as exp2(x log2(e) - m log2(e)), one FFMA before MUFU.EX2; a row all -inf so far",
            "  // subtracts 0, not -inf (no inf - inf).",
            f"  const float k_base = (k_mx == {neg_inf} ? 0.0f : k_mx) * {log2e};",
            f"  const float k_scale = k_ex2(fmaf(k_m[h], {log2e}, -k_base));",
            "  k_m[h] = k_mx;", "  float k_sum = 0.0f;", "  #pragma unroll",
            f"  for (int ni = 0; ni < {bn // 8}; ++ni) {{",
            f"    k_s[4 * ni + 2 * h] = k_ex2(fmaf(k_s[4 * ni + 2 * h], {log2e}, -k_base));",
            f"    k_s[4 * ni + 2 * h + 1] = k_ex2(fmaf(k_s[4 * ni + 2 * h + 1], {log2e}, -k_base));",
            "    k_sum += k_s[4 * ni + 2 * h] + k_s[4 * ni + 2 * h + 1];", "  }",
            "  k_l[h] = k_l[h] * k_scale + k_sum;   // this lane's share of the row sum (the quad's: at the end)",
            "  #pragma unroll",
            f"  for (int ni = 0; ni < {dv // 8}; ++ni) k_o[4 * ni + 2 * h] *= k_scale, k_o[4 * ni + 2 * h + 1] *= k_scale;",
            "}"]
