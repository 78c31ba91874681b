"""Attention on tensor cores (sm_80+, f16/bf16 Q, K, V): FlashAttention-2's forward loop built from the
prelude's sm_80 primitives (the ones the GEMM engine ``backend/lower/mma_engine`` uses, run exactly by the
emulator), for an attention chain whose row section is a softmax (issue #17).

One block per (batch·head, tile of ``tq`` = 16·warps query rows); warp ``w`` owns query rows 16w..16w+15.

1. Q's tile is copied to shared memory with 16-byte ``cp.async`` (one commit group), K and V chunks of ``BN``
   keys through a two-stage ``cp.async`` pipeline (chunk c + 1 in flight while chunk c is computed), every tile
   stored with its 16-byte chunks XOR-swizzled by row (``tl_swizzle_b16``); chunks past the sequence ends are
   zero-filled (src-size 0). Q's fragments are read once with ``ldmatrix`` and stay in registers.
2. Per chunk, S = Q·Kᵀ with ``mma.sync.m16n8k16`` into f32 accumulator fragments (``ldmatrix`` for K, ``.trans``
   when K is stored with keys contiguous); the elementwise ops between QKᵀ and the softmax (scale, masks) are
   rendered from their tensor expressions on each accumulator element; keys past the end become -inf.
3. Online softmax in f32 on the fragments (Dao, FlashAttention-2, Alg. 1): a lane holds two rows (``lane/4``
   and ``+8``); row maxima fold over the quad with two shuffles, the running output and sum are rescaled by
   ``exp(m_old - m_new)``, and P = exp(S - m) is packed to f16/bf16 in registers: the C fragments of two n8
   tiles are exactly the A fragment of one k16 step of O += P·V (``ldmatrix.trans`` for V stored [key][dim]).
4. O / l is converted to the output type and stored once, through the head-merge transpose if one ends the
   group.

Only Q, K, V, the outside operands of the score ops and O touch global memory. :func:`eligible` says when a
matched chain takes this kernel; :func:`choose` its tile; :func:`modelled_bytes` is what the emulator counts."""
from __future__ import annotations

import math

from ...analysis.welder.graph import layout_map
from ...backend.cstyle import CUDA
from ...backend.lower import mma_engine as E
from ...backend.lower.builder import KernelBuilder, linearize
from ...backend.lower.fused import kernel_params
from ...ir.texpr.nodes import Access, AxisRef, Binary, Call, axes_in, rewrite
from ...ir.types import itemsize

ENGINE = "mma_sync"
BN = 64               # keys per K/V chunk (FlashAttention-2's sm80 kBlockN for head dims up to 128)
MAX_WARPS = 4         # 64 query rows per block, FlashAttention-2's 4 warps
MAX_HEAD = 128        # head dims: Q fragments + S and O accumulators stay under ~128 registers a thread
DTYPES = ("f16", "bf16")
NEG_INF = "(-__int_as_float(0x7f800000))"
LOG2E = "1.44269504088896341f"


# ---- when ----------------------------------------------------------------------------------------------

def _reads(node, producer: int) -> list:
    return [a for o, p in node.producers.items() if p == producer for a in node.accesses_of(o)]


def _is_access_of(expr, node, producer) -> bool:
    return isinstance(expr, Access) and any(expr == a for a in _reads(node, producer))


def softmax_rows(graph, live: int, rows: list) -> bool:
    """Whether the row section ``rows`` is exactly a softmax of value ``live`` along the key axis, as the
    frontend decomposes it: ``m = max(x)``, ``e = exp(x - m)``, ``s = sum(e)``, ``p = e / s``, optionally
    then ``f16(p)`` / ``bf16(p)`` (``--precision``'s cast before ·V: the kernel rounds P so anyway)."""
    if len(rows) == 5:
        cast = graph.nodes[rows[4]]
        b = cast.expr.body
        if not (cast.elementwise and isinstance(b, Call) and b.fn in DTYPES and len(b.args) == 1
                and _is_access_of(b.args[0], cast, rows[3])):
            return False
        rows = rows[:4]
    if len(rows) != 4:
        return False
    mx, ex, sm, dv = (graph.nodes[r] for r in rows)
    b = ex.expr.body
    return (not mx.elementwise and mx.expr.combiner == "max" and _is_access_of(mx.expr.body, mx, live)
            and ex.elementwise and isinstance(b, Call) and b.fn == "exp" and len(b.args) == 1
            and isinstance(b.args[0], Binary) and b.args[0].op == "-"
            and _is_access_of(b.args[0].lhs, ex, live) and _is_access_of(b.args[0].rhs, ex, mx.index)
            and not sm.elementwise and sm.expr.combiner == "sum" and _is_access_of(sm.expr.body, sm, ex.index)
            and dv.elementwise and isinstance(dv.expr.body, Binary) and dv.expr.body.op == "/"
            and _is_access_of(dv.expr.body.lhs, dv, ex.index) and _is_access_of(dv.expr.body.rhs, dv, sm.index))


def output_cast(graph, pv: int) -> int | None:
    """The node casting ·V's output (alone) to another float type at its own coordinates (``--precision``'s
    ``f32(O)``), which the kernel stores through; None if there is none."""
    n = graph.nodes[pv]
    if len(n.consumers) != 1 or n.external_use:
        return None
    c = graph.nodes[n.consumers[0]]
    b = c.expr.body
    if (c.elementwise and c.shape == n.shape and list(c.producers.values()) == [pv] and isinstance(b, Call)
            and b.fn in ("f32", *DTYPES) and len(b.args) == 1 and isinstance(b.args[0], Access)
            and list(b.args[0].indices) == [AxisRef(a) for a in c.expr.out_axes]):
        return c.index
    return None


def _contiguous(acc, shape, axes: tuple) -> str | None:
    """Which of ``axes`` an operand access reads along its contiguous dim (its last index, a plain axis), if
    any."""
    last = acc.indices[-1]
    if not isinstance(last, AxisRef) or last.name not in axes:
        return None
    if any(last.name in axes_in(ix) for ix in acc.indices[:-1]):
        return None
    return last.name


def layouts(graph, att) -> dict:
    """``{"q" | "k" | "v": (role, vector)}``: each operand tile's column role in shared memory (``d``, ``j`` or
    ``e``: its contiguous axis in global memory where that is one of the tile's, so copies coalesce) and
    whether it copies in 16-byte ``cp.async`` chunks (rows 16-byte aligned, a chunk wholly inside or outside
    the tensor) or element by element (e.g. Kᵀ stored [d][keys] with an odd key count)."""
    qk, pv = graph.nodes[att.qk], graph.nodes[att.pv]
    i_ax, j_ax, d_ax = qk.expr.out_axes[-2], qk.expr.out_axes[-1], qk.expr.reduce_axes[0]
    r_ax, e_ax = pv.expr.reduce_axes[0], pv.expr.out_axes[-1]
    shape = lambda node, acc: node.op.operands[list(node.expr.inputs).index(acc.tensor)].type.shape  # noqa: E731
    out = {}
    for name, node, acc, own, keys, default in (("q", qk, att.q_acc, d_ax, None, "d"),
                                                 ("k", qk, att.k_acc, d_ax, j_ax, "d"),
                                                 ("v", pv, att.v_acc, e_ax, r_ax, "e")):
        axis = _contiguous(acc, shape(node, acc), tuple(a for a in (own, keys) if a))
        role = default if axis in (None, own) else "j"
        vector = axis is not None and shape(node, acc)[-1] % E.CHUNK == 0 and (role != "j" or att.sk % E.CHUNK == 0)
        out[name] = (role, vector)
    return out


def eligible(graph, att, spec) -> bool:
    """Whether the matched chain ``att`` runs on this kernel: an sm_80+ target, Q, K and V all f16 or all
    bf16, head dims multiples of 16 up to :data:`MAX_HEAD` and a softmax row section."""
    qk, pv = graph.nodes[att.qk], graph.nodes[att.pv]
    v_dtype = pv.op.operands[list(pv.expr.inputs).index(att.v_acc.tensor)].type.dtype
    dtypes = {v.type.dtype for v in qk.op.operands} | {v_dtype}
    if E.sm_version(spec) < 80 or len(dtypes) != 1 or dtypes.pop() not in DTYPES:
        return False
    if att.d % 16 or att.dv % 16 or att.d > MAX_HEAD or att.dv > MAX_HEAD:
        return False
    live = att.pre[-1] if att.pre else att.qk
    if not softmax_rows(graph, live, att.rows):
        return False
    # P cast (--precision) to the operands' half type, not the other one
    return len(att.rows) == 4 or graph.nodes[att.rows[4]].expr.body.fn == qk.op.operands[0].type.dtype


# ---- tile and bytes ------------------------------------------------------------------------------------

def warps_for(att) -> int:
    """Warps per block: 4 (64 query rows, FlashAttention-2's tile) unless the sequence is shorter."""
    return max(1, min(MAX_WARPS, -(-att.sq // 16)))


def row_width(cols: int) -> int:
    """Elements one row of a b16 tile of ``cols`` columns takes in shared memory: ``cols`` where
    ``tl_swizzle_b16<cols>`` permutes each row's 16-byte chunks among themselves (1, 2, 4 or a multiple of 8
    chunks), else the next such width. Head dims 48, 80, 96 and 112 have 6, 10, 12 and 14 chunks: the XOR
    would send their chunks past the last multiple of 8 into the next row (d 96 gave NaN)."""
    chunks = cols // E.CHUNK
    if chunks in (1, 2, 4) or chunks % 8 == 0:
        return cols
    return E.CHUNK * (8 if chunks < 8 else -(-chunks // 8) * 8)


def smem_bytes(att, warps: int, dtype: str, staged_j: int, scalars: int, lay: dict | None = None) -> int:
    """Q tile, two stages of K and V chunks (b16, rows of :func:`row_width` where a head dim runs along them:
    ``lay`` as :func:`layouts` gives it, every one by default), two stages of the key-indexed operands and
    the scalar slots (f32)."""
    along = lambda name: lay is None or lay[name][0] != "j"   # noqa: E731 - the head dim is the tile's column
    k = row_width(att.d) if along("k") else att.d
    v = row_width(att.dv) if along("v") else att.dv
    b16 = (16 * warps * row_width(att.d) + 2 * BN * (k + v)) * itemsize(dtype)
    return b16 + 4 * (2 * BN * staged_j + max(1, scalars))


def modelled_bytes(graph, att, outside: list, tq: int) -> int:
    """Global bytes the kernel moves (what the emulator counts): Q once, K and V once per query tile (chunks
    past the end are zero-filled, not read), S-side operands per element, per key and block, or once per
    block by their scope, O once."""
    bh = math.prod(att.batch)
    blocks = bh * -(-att.sq // tq)
    qk, pv = graph.nodes[att.qk], graph.nodes[att.pv]
    size = lambda n, acc: itemsize(n.op.operands[list(n.expr.inputs).index(acc.tensor)].type.dtype)  # noqa: E731
    total = bh * att.sq * att.d * size(qk, att.q_acc)
    total += blocks * att.sk * (att.d * size(qk, att.k_acc) + att.dv * size(pv, att.v_acc))
    for m, acc, where in outside:
        total += size(graph.nodes[m], acc) * {"ij": bh * att.sq * att.sk, "j": blocks * att.sk, "": blocks}[where]
    last = graph.nodes[att.post[-1] if att.post else att.pv]
    return total + last.out_bytes


def choose(graph, att, spec, outside: list) -> dict | None:
    """The kernel's tile: ``{tq, bk, threads, blocks, bytes, waves, smem, cluster, engine}`` (bk = keys per
    chunk), or None when its shared memory does not fit the target's opt-in limit."""
    w = warps_for(att)
    tq = 16 * w
    dtype = graph.nodes[att.qk].op.operands[0].type.dtype
    staged_j = sum(1 for _, _, s in outside if s == "j")
    scalars = sum(1 for _, _, s in outside if s == "")
    smem = smem_bytes(att, w, dtype, staged_j, scalars, layouts(graph, att))
    if smem > spec.smem_per_block_optin_bytes:
        return None
    blocks = math.prod(att.batch) * -(-att.sq // tq)
    per_sm = max(1, min(spec.max_threads_per_sm // (32 * w), spec.smem_per_sm_bytes // smem))
    waves = -(-blocks // (per_sm * spec.num_sms))
    return {"tq": tq, "bk": BN, "threads": 32 * w, "blocks": blocks, "bytes": modelled_bytes(graph, att, outside, tq),
            "waves": waves, "smem": smem, "cluster": 1, "engine": ENGINE}


# ---- the kernel ----------------------------------------------------------------------------------------

class _Tile:
    """One operand tile in shared memory: ``rows`` x ``cols`` b16, copied from access ``acc`` of member
    ``m`` whose row axis / column axis are the roles ``row`` / ``col`` (``i`` query, ``j`` key, ``d``, ``e``);
    each row ``width`` elements apart (``cols`` by default; :func:`row_width`), the columns past ``cols``
    never written nor read."""

    def __init__(self, m: int, acc, row: str, col: str, rows: int, cols: int, row_ext: int, col_ext: int,
                 vector: bool = True, width: int | None = None):
        self.m, self.acc, self.row, self.col = m, acc, row, col
        self.rows, self.cols, self.row_ext, self.col_ext = rows, cols, row_ext, col_ext
        self.vector = vector
        self.width = width or cols

    @property
    def elems(self) -> int:
        return self.rows * self.width


def _copy_lines(r, t: _Tile, smem: str, axes: dict, origin: dict, threads: int, place=None) -> list:
    """This thread's 16-byte ``cp.async`` chunks of tile ``t`` into ``smem`` (swizzled), zero-filled outside
    the tensor; ``origin`` gives each role's first index (C text), ``axes`` the member's axis -> role map.
    A tile whose rows are not whole 16-byte chunks is copied element by element (loads and shared stores).
    ``place(row, col)``: the element offset (C text) of a tile element, ``tl_swizzle_b16`` by default."""
    place = place or (lambda row, col: f"tl_swizzle_b16<{t.width}>({row}, {col})")
    if not t.vector:
        return _scalar_copy_lines(r, t, smem, axes, origin, threads, place)
    per_row = t.cols // E.CHUNK
    chunks = t.rows * per_row
    n = -(-chunks // threads)
    local = {t.row: f"({origin[t.row]} + k_r)", t.col: f"({origin[t.col]} + k_cc)"}
    names = {ax: local.get(role, origin.get(role, role)) for ax, role in axes.items()}
    ctx = r.ctxs[t.m]
    index, pred = ctx.index_and_pred(t.acc, lambda a: names[a])
    checks = [p for p in (pred,) if p]
    if t.row_ext % t.rows:   # the origin steps by whole tiles: only a ragged extent needs a check
        checks.append(f"{origin[t.row]} + k_r < {t.row_ext}")
    if t.col_ext % t.cols:
        checks.append(f"{origin[t.col]} + k_cc < {t.col_ext}")
    valid = " && ".join(checks) or "true"
    body = [f"const int k_r = k_ch / {per_row}, k_cc = k_ch % {per_row} * {E.CHUNK};",
            f"tl_cp_async_16({smem} + {place('k_r', 'k_cc')}, {ctx.names[t.acc.tensor]}, "
            f"(long long)({index}), {valid});"]
    guard = [f"if (k_ch < {chunks}) {{"] if chunks % threads else ["{"]
    return ["#pragma unroll", f"for (int k_i = 0; k_i < {n}; ++k_i) {{",
            f"  const int k_ch = k_tid + k_i * {threads};", *("  " + x for x in guard),
            *("    " + x for x in body), "  }", "}"]


def _scalar_copy_lines(r, t: _Tile, smem: str, axes: dict, origin: dict, threads: int, place) -> list:
    local = {t.row: f"({origin[t.row]} + k_r)", t.col: f"({origin[t.col]} + k_cc)"}
    names = {ax: local.get(role, origin.get(role, role)) for ax, role in axes.items()}
    ctx = r.ctxs[t.m]
    index, pred = ctx.index_and_pred(t.acc, lambda a: names[a])
    checks = [p for p in (pred,) if p]
    if t.row_ext % t.rows:
        checks.append(f"{origin[t.row]} + k_r < {t.row_ext}")
    if t.col_ext % t.cols:
        checks.append(f"{origin[t.col]} + k_cc < {t.col_ext}")
    dtype = ctx.dtypes[ctx.input_of(t.acc)]
    val = f"TL_LD({ctx.names[t.acc.tensor]}, {index})"
    if checks:
        val = f"({' && '.join(checks)}) ? {val} : {CUDA.convert('0.0f', 'f32', dtype)}"
    return [f"for (int k_el = k_tid; k_el < {t.rows * t.cols}; k_el += {threads}) {{",
            f"  const int k_r = k_el / {t.cols}, k_cc = k_el % {t.cols};",
            f"  {smem}[{place('k_r', 'k_cc')}] = {val};", "}"]


def _roles(r, m: int, extra: dict) -> dict:
    """Member ``m``'s axes -> roles: batch dims ``k_b<p>``, then what ``extra`` names."""
    c, nb = r.ctxs[m], len(r.att.batch)
    out = {a: f"k_b{p}" for p, a in enumerate(c.out_axes[:nb])}
    out.update(extra)
    return out


def _block_index_lines(att, nq: int, tq: int) -> list:
    """Block ``k_blk``'s batch indices ``k_b<p>`` (innermost last) and first query row ``k_q0``: ``nq`` query
    tiles of ``tq`` rows per batch entry."""
    src, rest = [], f"k_blk / {nq}"
    for p in reversed(range(len(att.batch))):
        ext = att.batch[p]
        src.append(f"const int k_b{p} = ({rest}) % {ext};" if p else f"const int k_b{p} = {rest};")
        rest = f"({rest}) / {ext}"
    return src + [f"const int k_q0 = (k_blk % {nq}) * {tq};"]


def _slot_lines(r, slots: list) -> list:
    """Thread 0 loads each scalar slot's value (an outside read with no j or d axis) into ``k_sc``."""
    src = ["if (k_tid == 0) {"]
    for n, (m, acc) in enumerate(slots):
        c = r.ctxs[m]
        names = _roles(r, m, {c.out_axes[-2]: "0", c.out_axes[-1]: "0"})
        index, pred = c.index_and_pred(acc, lambda a, nm=names: nm[a])
        val = CUDA.convert(f"TL_LD({c.names[acc.tensor]}, {index})", c.dtypes[c.input_of(acc)], "f32")
        src.append(f"  k_sc[{n}] = {f'({pred}) ? {val} : 0.0f' if pred else val};")
    return src + ["}"]


def _stage_j_lines(r, staged: list, chunk: str, buf: str, sk: int, bn: int, threads: int) -> list:
    """``threads`` threads stage key chunk ``chunk``'s values of each j-indexed outside read into ``k_sj``
    buffer ``buf`` (0 past the ``sk`` keys); shared by the mma.sync and wgmma kernels."""
    out = []
    for n, (m, acc) in enumerate(staged):
        c = r.ctxs[m]
        names = _roles(r, m, {c.out_axes[-2]: "0", c.out_axes[-1]: "k_kj"})
        index, pred = c.index_and_pred(acc, lambda a, nm=names: nm[a])
        val = CUDA.convert(f"TL_LD({c.names[acc.tensor]}, {index})", c.dtypes[c.input_of(acc)], "f32")
        ok = " && ".join(x for x in (pred, f"k_kj < {sk}") if x)
        out += [f"for (int k_t = k_tid; k_t < {bn}; k_t += {threads}) {{",
                f"  const int k_kj = {chunk} * {bn} + k_t;",
                f"  k_sj[({buf}) * {len(staged) * bn} + {n * bn} + k_t] = ({ok}) ? {val} : 0.0f;", "}"]
    return out


def lower(r, kernel, name: str, outside: list):
    """The ``kernel.func`` of the tensor-core attention kernel for the matched chain of ``r`` (the attention
    kernel's reader, :mod:`.kernel`) with the tile of its ``tile`` attribute; ``outside``: the score ops'
    operand accesses (``match.outside_accesses``)."""
    att, graph = r.att, r.graph
    qk, pv = r.ctxs[att.qk], r.ctxs[att.pv]
    lay = layouts(graph, att)
    dtype = qk.dtypes[0]
    ct = E.CTYPE[dtype]
    W = r.threads // 32
    T, tq, sq, sk, d, dv = r.threads, r.tq, att.sq, att.sk, att.d, att.dv
    nq = -(-sq // tq)
    nc = -(-sk // BN)
    blocks = math.prod(att.batch) * nq
    staged = [(m, acc) for m, acc, w in outside if w == "j"]
    slots = [(m, acc) for m, acc, w in outside if w == ""]
    i_ax, j_ax, d_ax = qk.out_axes[-2], qk.out_axes[-1], qk.reduce_axes[0]
    r_ax, e_ax = pv.reduce_axes[0], pv.out_axes[-1]
    qk_axes = _roles(r, att.qk, {i_ax: "i", j_ax: "j", d_ax: "d"})
    pv_axes = _roles(r, att.pv, {pv.out_axes[-2]: "i", r_ax: "j", e_ax: "e"})
    qt = _Tile(att.qk, att.q_acc, "i", "d", tq, d, sq, d, lay["q"][1], row_width(d))
    kt = (_Tile(att.qk, att.k_acc, "j", "d", BN, d, sk, d, lay["k"][1], row_width(d)) if lay["k"][0] == "d"
          else _Tile(att.qk, att.k_acc, "d", "j", d, BN, d, sk, lay["k"][1]))
    vt = (_Tile(att.pv, att.v_acc, "j", "e", BN, dv, sk, dv, lay["v"][1], row_width(dv)) if lay["v"][0] == "e"
          else _Tile(att.pv, att.v_acc, "e", "j", dv, BN, dv, sk, lay["v"][1]))
    origin = {"i": "k_q0", "j": "k_kc", "d": "0", "e": "0"}
    # The fragment helpers of the GEMM engine, with the block's two products as engine shapes.
    cfg_s = E.EngineConfig(tq, BN, d, W, 1, 2)
    cfg_o = E.EngineConfig(tq, dv, BN, W, 1, 2)
    op = lambda t, k_inner: E.Operand("", "", "", 0, 0, t.rows, t.width, k_inner, 0)  # noqa: E731
    qop, kop, vop = op(qt, True), op(kt, lay["k"][0] == "d"), op(vt, lay["v"][0] == "j")
    fq, fk, fv = E.a_fragments(qop, cfg_s), E.b_fragments(kop, cfg_s), E.b_fragments(vop, cfg_o)
    smem = smem_bytes(att, W, dtype, len(staged), len(slots), lay)
    dynamic = smem > qk.spec.smem_per_block_bytes
    mma = E.MMA_FN[dtype]
    conv = lambda x: CUDA.convert(x, "f32", dtype)  # noqa: E731
    ind = lambda lines, n: ["  " * n + x for x in lines]  # noqa: E731

    src = [f"// attention on tensor cores: {W} warps x 16 query rows, {BN}-key K/V chunks in a 2-stage cp.async "
           f"pipeline, m16n8k16 {dtype} with f32 accumulators, online softmax (FlashAttention-2)",
           *(E.smem_lines(E.EngineConfig(0, 0, 0, 1, 1, 1, dynamic=True), dtype) if dynamic
             else [f"TL_SHARED(float4, k_smem, [{-(-smem // 16)}]);"]),
           f"{ct}* const k_sq = reinterpret_cast<{ct}*>(k_smem);   // [{qt.rows}][{qt.width}], chunks swizzled",
           f"{ct}* const k_sk = k_sq + {qt.elems};   // [2][{kt.rows}][{kt.width}]",
           f"{ct}* const k_sv = k_sk + {2 * kt.elems};   // [2][{vt.rows}][{vt.width}]",
           f"float* const k_sj = reinterpret_cast<float*>(k_sv + {2 * vt.elems});   // [2][{len(staged)}][{BN}]",
           f"float* const k_sc = k_sj + {2 * len(staged) * BN};   // outside scalars",
           "const int k_tid = threadIdx.x, k_lane = k_tid % 32, k_warp = k_tid / 32;",
           "const int k_wm = k_warp * 16, k_wn = 0;",
           "const int k_blk = blockIdx.x;"]
    src += _block_index_lines(att, nq, tq)
    # Scalars once per block (thread 0; visible after the first barrier of the loop).
    if slots:
        src += _slot_lines(r, slots)

    def stage_j(chunk: str, buf: str) -> list:
        return _stage_j_lines(r, staged, chunk, buf, sk, BN, T)

    def load_chunk(chunk: str, stage: str) -> list:
        o = dict(origin, j=f"({chunk}) * {BN}")
        return ["{", f"  {ct}* const k_dk = k_sk + ({stage}) * {kt.elems};",
                f"  {ct}* const k_dv = k_sv + ({stage}) * {vt.elems};",
                *ind(_copy_lines(r, kt, "k_dk", qk_axes, o, T), 1),
                *ind(_copy_lines(r, vt, "k_dv", pv_axes, o, T), 1),
                *ind(stage_j(chunk, stage), 1), "}"]

    src += ["// Prologue: Q (group 0), then K/V chunk 0 (group 1).",
            *_copy_lines(r, qt, "k_sq", qk_axes, origin, T), "tl_cp_async_commit();",
            *load_chunk("0", "0"), "tl_cp_async_commit();",
            "tl_cp_async_wait<1>();", "__syncthreads();",
            *(f"const float k_rc{n} = 1.0f / k_sc[{n}];" for n in range(len(slots))),
            "// Q's A fragments for every k16 step of the head dim, kept in registers.",
            *E.fragment_offset_lines(fq, qop, "q"), *E.fragment_offset_lines(fk, kop, "k"),
            *E.fragment_offset_lines(fv, vop, "v"),
            f"unsigned k_qf[{d // 16}][4];", "{", "  constexpr int mi = 0;", "  #pragma unroll",
            f"  for (int kk = 0; kk < {d}; kk += 16) {fq.fn}(k_qf[kk / 16], "
            f"{E.fragment_address(fq, qop, 'q', 'k_sq')});", "}",
            f"float k_o[{dv // 8}][4];", "float k_m[2], k_l[2];",
            "#pragma unroll", "for (int h = 0; h < 2; ++h) {", f"  k_m[h] = {NEG_INF};", "  k_l[h] = 0.0f;",
            "  #pragma unroll", f"  for (int ni = 0; ni < {dv // 8}; ++ni) k_o[ni][2 * h] = k_o[ni][2 * h + 1] = 0.0f;",
            "}",
            f"for (int k_ci = 0; k_ci < {nc}; ++k_ci) {{",
            f"  const int k_kc = k_ci * {BN};",
            "  // Chunk c + 1 in flight while chunk c is computed (its stage was released by the last barrier).",
            f"  if (k_ci + 1 < {nc})", *ind(load_chunk("k_ci + 1", "(k_ci + 1) & 1"), 2),
            "  tl_cp_async_commit();", "  tl_cp_async_wait<1>();",
            "  __syncthreads();   // chunk c is visible to all",
            f"  const {ct}* const k_ck = k_sk + (k_ci & 1) * {kt.elems};",
            f"  const {ct}* const k_cv = k_sv + (k_ci & 1) * {vt.elems};",
            f"  const float* const k_cj = k_sj + (k_ci & 1) * {len(staged) * BN};",
            "  // S = Q K^T for this chunk: f32 accumulator fragments.",
            f"  float k_s[{BN // 8}][4];", "  #pragma unroll",
            f"  for (int ni = 0; ni < {BN // 8}; ++ni) k_s[ni][0] = k_s[ni][1] = k_s[ni][2] = k_s[ni][3] = 0.0f;",
            "  #pragma unroll", f"  for (int kk = 0; kk < {d}; kk += 16) {{",
            f"    unsigned b[{BN // 8}][2];", "    #pragma unroll", f"    for (int p = 0; p < {BN // 16}; ++p) {{",
            "      unsigned q[4];", f"      {fk.fn}(q, {E.fragment_address(fk, kop, 'k', 'k_ck')});",
            "      b[2 * p][0] = q[0], b[2 * p][1] = q[1], b[2 * p + 1][0] = q[2], b[2 * p + 1][1] = q[3];",
            "    }", "    #pragma unroll", f"    for (int ni = 0; ni < {BN // 8}; ++ni) "
            f"{mma}(k_s[ni], k_qf[kk / 16], b[ni], k_s[ni]);", "  }",
            "  // The score ops on each element (lane: rows lane/4 and +8, columns 2(lane%4) and +1 of each n8 tile).",
            "  #pragma unroll", f"  for (int ni = 0; ni < {BN // 8}; ++ni)", "    #pragma unroll",
            "    for (int e = 0; e < 4; ++e) {",
            "      const int k_qi = k_q0 + k_wm + k_lane / 4 + e / 2 * 8;",
            "      const int k_tj = ni * 8 + k_lane % 4 * 2 + e % 2, k_kj = k_kc + k_tj;",
            *ind(_score_lines(r, staged, slots, sq, sk), 3), "    }",
            *ind(_softmax_lines(dv, BN), 1),
            "  // O += P V: two n8 C fragments of S are one k16 A fragment of P (f32 -> b16 in registers).",
            "  #pragma unroll", f"  for (int kk = 0; kk < {BN}; kk += 16) {{",
            "    unsigned a[4];",
            f"    a[0] = tl_pack_b16x2({conv('k_s[kk / 8][0]')}, {conv('k_s[kk / 8][1]')});",
            f"    a[1] = tl_pack_b16x2({conv('k_s[kk / 8][2]')}, {conv('k_s[kk / 8][3]')});",
            f"    a[2] = tl_pack_b16x2({conv('k_s[kk / 8 + 1][0]')}, {conv('k_s[kk / 8 + 1][1]')});",
            f"    a[3] = tl_pack_b16x2({conv('k_s[kk / 8 + 1][2]')}, {conv('k_s[kk / 8 + 1][3]')});",
            "    #pragma unroll", f"    for (int p = 0; p < {dv // 16}; ++p) {{",
            "      unsigned v[4], b0[2], b1[2];", f"      {fv.fn}(v, {E.fragment_address(fv, vop, 'v', 'k_cv')});",
            "      b0[0] = v[0], b0[1] = v[1], b1[0] = v[2], b1[1] = v[3];",
            f"      {mma}(k_o[2 * p], a, b0, k_o[2 * p]);", f"      {mma}(k_o[2 * p + 1], a, b1, k_o[2 * p + 1]);",
            "    }", "  }",
            "  __syncthreads();   // every warp is done with chunk c's stage before it is refilled",
            "}",
            "tl_cp_async_wait<0>();   // only empty groups can be left",
            *_store_lines(r, dv, sq)]
    func = KernelBuilder().func(
        name, [blocks], [T], kernel_params(kernel), kind="attention", flops=sum(c.flops() for c in r.ctxs),
        bytes_modelled=modelled_bytes(graph, att, outside, tq), source="\n".join(src) + "\n",
        config={"engine": ENGINE, "mma": [16, 8, 16], "warps": [W, 1], "stages": 2, "tq": tq, "bk": BN},
        smem=smem if dynamic else 0, smem_static=0 if dynamic else smem, tensor_core=dtype)
    func.attributes["origin"] = "+".join(m.attributes.get("origin", "tile.compute") for m in r.members)
    return func


def _score_lines(r, staged: list, slots: list, sq: int, sk: int, score: str = "k_s[ni][e]", bn: int = BN) -> list:
    """One score element ``score`` (of n8 tile ``ni``, element ``e``) through the ops between QKᵀ and the
    softmax; keys past the end (of ``bn``-key chunks; rows past the end, whose loads are skipped) become -inf."""
    att = r.att
    vals = {id(r.members[att.qk].result): score}
    jslot = {(m, repr(acc.indices), acc.tensor): n for n, (m, acc) in enumerate(staged)}
    sslot = {(m, repr(acc.indices), acc.tensor): n for n, (m, acc) in enumerate(slots)}
    inb = " && ".join(x for x in ((f"k_qi < {sq}" if sq % (r.tq) else ""), (f"k_kj < {sk}" if sk % bn else "")) if x)
    out = []
    for m in att.pre:
        c, op = r.ctxs[m], r.members[m]
        axis = _roles(r, m, {c.out_axes[-2]: "k_qi", c.out_axes[-1]: "k_kj"})
        names = {}
        for j, acc in enumerate(c.distinct_accesses()):
            v = op.operands[c.input_of(acc)]
            key = (m, repr(acc.indices), acc.tensor)
            if id(v) in vals:
                names[c.access_key(acc)] = vals[id(v)]
            elif key in jslot:
                names[c.access_key(acc)] = f"k_cj[{jslot[key] * bn} + k_tj]"
            elif key in sslot:
                names[c.access_key(acc)] = f"k_sc[{sslot[key]}]"
            else:   # read per element: only inside the sequence
                index, pred = c.index_and_pred(acc, lambda a, nm=axis: nm[a])
                val = CUDA.convert(f"TL_LD({c.names[acc.tensor]}, {index})", c.dtypes[c.input_of(acc)], "f32")
                ok = " && ".join(x for x in (inb, pred) if x)
                out.append(f"const float k_e{m}_{j} = {f'({ok}) ? {val} : 0.0f' if ok else val};")
                names[c.access_key(acc)] = f"k_e{m}_{j}"
        expr = c.expr.body
        for acc in c.distinct_accesses():   # x / (a block-uniform value): x * its reciprocal, taken once
            n = sslot.get((m, repr(acc.indices), acc.tensor))
            if n is not None:
                inv = Access(f"{acc.tensor}.inv", acc.indices)
                names[c.access_key(inv)] = f"k_rc{n}"
                expr = rewrite(expr, lambda x, a=acc, i=inv: Binary("*", x.lhs, i) if (
                    isinstance(x, Binary) and x.op == "/" and x.rhs == a) else None)
        body = c.renderer(lambda a, n=names, cc=c: n[cc.access_key(a)], lambda a, nm=axis: nm[a])(expr)
        out.append(f"const float k_e{m} = {body};")
        vals[id(op.result)] = f"k_e{m}"
    last = vals[id(r.members[att.pre[-1] if att.pre else att.qk].result)]
    if sk % bn:
        out.append(f"{score} = k_kj < {sk} ? {last} : {NEG_INF};")
    elif last != score:
        out.append(f"{score} = {last};")
    return out


def _softmax_lines(dv: int, bn: int) -> list:
    """The online softmax of one chunk on the accumulator fragments, rows ``h`` = 0 (lane/4) and 1 (+8)."""
    return ["#pragma unroll", "for (int h = 0; h < 2; ++h) {",
            "  float k_mx = k_m[h];", "  #pragma unroll",
            f"  for (int ni = 0; ni < {bn // 8}; ++ni) k_mx = fmaxf(k_mx, fmaxf(k_s[ni][2 * h], k_s[ni][2 * h + 1]));",
            "  k_mx = fmaxf(k_mx, __shfl_xor_sync(0xffffffffu, k_mx, 1));",
            "  k_mx = fmaxf(k_mx, __shfl_xor_sync(0xffffffffu, k_mx, 2));",
            "  // exp(x - m) as exp2(x log2(e) - m log2(e)): the subtraction and the scaling in one FFMA before",
            "  // MUFU.EX2 (__expf(x - m) would be an FADD and an FMUL).",
            "  // A row all -inf so far subtracts 0, not -inf (no inf - inf).",
            f"  const float k_base = (k_mx == {NEG_INF} ? 0.0f : k_mx) * {LOG2E};",
            f"  const float k_scale = exp2f(fmaf(k_m[h], {LOG2E}, -k_base));",
            "  k_m[h] = k_mx;", "  float k_sum = 0.0f;", "  #pragma unroll",
            f"  for (int ni = 0; ni < {bn // 8}; ++ni) {{",
            f"    k_s[ni][2 * h] = exp2f(fmaf(k_s[ni][2 * h], {LOG2E}, -k_base));",
            f"    k_s[ni][2 * h + 1] = exp2f(fmaf(k_s[ni][2 * h + 1], {LOG2E}, -k_base));",
            "    k_sum += k_s[ni][2 * h] + k_s[ni][2 * h + 1];", "  }",
            "  k_l[h] = k_l[h] * k_scale + k_sum;   // this lane's share of the row sum (the quad's: at the end)",
            "  #pragma unroll",
            f"  for (int ni = 0; ni < {dv // 8}; ++ni) k_o[ni][2 * h] *= k_scale, k_o[ni][2 * h + 1] *= k_scale;",
            "}"]


def _store_lines(r, dv: int, sq: int, acc: str = "k_o[ni][2 * h + e]") -> list:
    """O / l, converted to the output type, stored element by element (through the head merge if any); ``acc``:
    the accumulator of n8 tile ``ni``, row half ``h``, column ``e``."""
    att = r.att
    coords = [f"k_b{p}" for p in range(len(att.batch))] + ["k_qi", "k_te"]
    pv_shape = list(r.members[att.pv].result.type.shape)
    layout = [p for p in att.post if layout_map(r.graph.nodes[p]) is not None and p != output_cast(r.graph, att.pv)]
    if layout:
        post = r.members[layout[-1]]
        out = []
        for dim, coef, ext in layout_map(r.graph.nodes[layout[-1]]):
            x = coords[dim] if coef == 1 else f"({coords[dim]}) / {coef}"
            out.append("0" if ext == 1 else x if coef * ext == pv_shape[dim] else f"({x}) % {ext}")
        index = linearize(out, list(post.result.type.shape))
    else:
        index = linearize(coords, pv_shape)
    out_dtype = r.members[att.post[-1] if att.post else att.pv].result.type.dtype
    guard = f"if (k_qi < {sq}) " if sq % r.tq else ""
    return ["#pragma unroll", "for (int h = 0; h < 2; ++h) {",
            "  float k_tot = k_l[h];",
            "  k_tot += __shfl_xor_sync(0xffffffffu, k_tot, 1);",
            "  k_tot += __shfl_xor_sync(0xffffffffu, k_tot, 2);",
            "  const float k_inv = 1.0f / k_tot;",
            "  const int k_qi = k_q0 + k_wm + k_lane / 4 + h * 8;", "  #pragma unroll",
            f"  for (int ni = 0; ni < {dv // 8}; ++ni)", "    #pragma unroll", "    for (int e = 0; e < 2; ++e) {",
            "      const int k_te = ni * 8 + k_lane % 4 * 2 + e;",
            f"      {guard}TL_ST(out0, {index}, {CUDA.convert(f'{acc} * k_inv', 'f32', out_dtype)});",
            "    }", "}"]
