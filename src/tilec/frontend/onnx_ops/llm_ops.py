"""Converters for the LLM ops of ONNX opsets 23-24: RMSNormalization, RotaryEmbedding and Attention.

Each is built from existing graph ops, step by step as ONNX's reference computes it, so the numbers match
it and Welder sees the usual matmul / softmax / elementwise chain (its attention pattern included).
"""
from __future__ import annotations

import math

import numpy as np

from ...ir.types import FLOAT_DTYPES
from ..registry import converter
from .compose import Emitter, attr_dtype


def _norm_axis(ctx, node, axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ctx.error(node, f"axis {axis} is out of range for rank {rank}")
    return axis % rank


@converter("RMSNormalization", since=23)
def rms_normalization(ctx, node):
    """``x / sqrt(mean(x^2 over axis..) + epsilon) * scale``, in f32 for stash_type 1."""
    g = Emitter(ctx)
    x, scale = ctx.input(node, 0), ctx.input(node, 1)
    rank = x.type.rank
    axis = _norm_axis(ctx, node, int(ctx.attr(node, "axis", -1)), rank)
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    stash = int(ctx.attr(node, "stash_type", 1))
    if stash != 1:
        raise ctx.error(node, f"RMSNormalization stash_type {stash} is not supported (only 1: float32)")
    dt = x.type.dtype
    xf = g.cast(x, "f32")
    mean = g.op("reduce_mean", [g.op("mul", [xf, xf])], axes=list(range(axis, rank)), keepdims=1)
    inv = g.op("reciprocal", [g.op("sqrt", [g.op("add", [mean, g.const(eps, "f32")])])])
    y = g.op("mul", [g.op("mul", [xf, inv]), g.cast(scale, "f32")])
    return [g.cast(y, dt)]


@converter("RotaryEmbedding", since=23)
def rotary_embedding(ctx, node):
    """Rotates the first ``rotary_embedding_dim`` features of each head by the cached angles: pairs are
    the two halves (default) or neighbours (``interleaved``). Works on ``[batch, seq, heads, head]``."""
    g = Emitter(ctx)
    x, cos, sin = (ctx.input(node, i) for i in range(3))
    shape = list(x.type.shape)
    interleaved = int(ctx.attr(node, "interleaved", 0))
    num_heads = int(ctx.attr(node, "num_heads", 0))
    if x.type.rank == 4:
        v = g.transpose(x, [0, 2, 1, 3])
    elif x.type.rank == 3:
        if num_heads <= 0 or shape[2] % num_heads:
            raise ctx.error(node, f"RotaryEmbedding of a 3-D input needs num_heads dividing {shape[2]}")
        v = g.reshape(x, [shape[0], shape[1], num_heads, shape[2] // num_heads])
    else:
        raise ctx.error(node, f"RotaryEmbedding input must have rank 3 or 4, not {x.type.rank}")
    head = v.type.shape[3]
    rot = int(ctx.attr(node, "rotary_embedding_dim", 0)) or head
    if rot % 2 or rot > head:
        raise ctx.error(node, f"rotary_embedding_dim {rot} must be even and at most the head size {head}")
    if ctx.has_input(node, 3):
        pos = ctx.input(node, 3)
        cos, sin = (g.op("gather", [c, pos], axis=0) for c in (cos, sin))
    want = [v.type.shape[0], v.type.shape[1], rot // 2]
    for c in (cos, sin):
        if list(c.type.shape) != want:
            raise ctx.error(node, f"RotaryEmbedding cos/sin caches give {list(c.type.shape)}, expected {want}")
    cos, sin = (g.op("unsqueeze", [c], axes=[2]) for c in (cos, sin))
    if interleaved:
        x1, x2 = g.slice_last(v, 0, rot, 2), g.slice_last(v, 1, rot, 2)
    else:
        x1, x2 = g.slice_last(v, 0, rot // 2), g.slice_last(v, rot // 2, rot)
    real = g.op("sub", [g.op("mul", [cos, x1]), g.op("mul", [sin, x2])])
    imag = g.op("add", [g.op("mul", [sin, x1]), g.op("mul", [cos, x2])])
    if interleaved:
        pairs = [g.op("unsqueeze", [t], axes=[4]) for t in (real, imag)]
        rotated = g.reshape(g.op("concat", pairs, axis=4), list(v.type.shape[:3]) + [rot])
    else:
        rotated = g.op("concat", [real, imag], axis=3)
    out = rotated if rot == head else g.op("concat", [rotated, g.slice_last(v, rot, head)], axis=3)
    if x.type.rank == 3:
        return [g.reshape(out, shape)]
    return [g.transpose(out, [0, 2, 1, 3])]


def _heads(g, v, n_heads: int):
    """``[batch, seq, n * head]`` -> ``[batch, n, seq, head]`` (a 4-D input is already so)."""
    if v.type.rank == 4:
        return v
    b, s, hidden = v.type.shape
    return g.transpose(g.reshape(v, [b, s, n_heads, hidden // n_heads]), [0, 2, 1, 3])


def _neg_inf_where_not(g, allowed, dt):
    """A bias of 0 where ``allowed`` and -inf elsewhere (ONNX's ``Where(allowed, 0, -inf)``)."""
    return g.op("where", [allowed, g.const(0.0, dt), g.const(-np.inf, dt)])


def _window_bias(g, q_len: int, kv_len: int, offset, causal: bool, left: int, right: int, dt):
    """The causal / sliding-window bias: query i sits at position offset + i and sees key j iff
    j <= offset + i (causal), offset + i - j <= left and j - offset - i <= right (each bound when >= 0).
    ``offset`` is an int (``[q, kv]``, folded to a constant) or a per-batch i64 value (``[b, 1, q, kv]``)."""
    rel = g.const(np.arange(kv_len).reshape(1, -1) - np.arange(q_len).reshape(-1, 1), "i64")
    if isinstance(offset, int):
        offset = g.const(offset, "i64")
    rel = g.op("sub", [rel, offset])        # j - (offset + i)
    allowed = None
    for ok, on in ((lambda: g.op("less_or_equal", [rel, g.const(0, "i64")]), causal),
                   (lambda: g.op("greater_or_equal", [rel, g.const(-left, "i64")]), left >= 0),
                   (lambda: g.op("less_or_equal", [rel, g.const(right, "i64")]), right >= 0)):
        if on:
            allowed = ok() if allowed is None else g.op("and", [allowed, ok()])
    bias = _neg_inf_where_not(g, allowed, dt)
    if bias.type.rank == 3:
        bias = g.op("unsqueeze", [bias], axes=[1])
    return bias


@converter("Attention", since=23)
def attention(ctx, node):
    """softmax(Q K^T * scale + bias) V per head, with the cache (past_key/past_value -> present_*), a bool
    or additive mask (padded with -inf to the cached length), is_causal / sliding windows aligned to the
    cache, softcap, grouped-query heads (K/V heads repeated), and the qk_matmul_output modes 0-3. Rows
    with every key masked give 0, as the reference's guard does."""
    g = Emitter(ctx)
    q, k, v = (ctx.input(node, i) for i in range(3))
    mask = ctx.input(node, 3)
    past_k = ctx.input(node, 4)
    past_v = ctx.input(node, 5)
    seqlen = ctx.input(node, 6)
    if (past_k is None) != (past_v is None):
        raise ctx.error(node, "Attention needs past_key and past_value together")
    if seqlen is not None and past_k is not None:
        raise ctx.error(node, "Attention's nonpad_kv_seqlen cannot be combined with past_key/past_value")
    dt = q.type.dtype
    if dt not in FLOAT_DTYPES or k.type.dtype != dt or v.type.dtype != dt:
        raise ctx.error(node, "Attention Q, K and V must share one float element type")
    if not q.type.rank == k.type.rank == v.type.rank or q.type.rank not in (3, 4):
        raise ctx.error(node, "Attention Q, K and V must all be 3-D or all 4-D")
    rank3 = q.type.rank == 3
    qh = int(ctx.attr(node, "q_num_heads", 0))
    kvh = int(ctx.attr(node, "kv_num_heads", 0))
    if rank3 and (qh <= 0 or kvh <= 0):
        raise ctx.error(node, "Attention with 3-D inputs needs q_num_heads and kv_num_heads")
    q4, k4, v4 = _heads(g, q, qh), _heads(g, k, kvh), _heads(g, v, kvh)
    if past_k is not None:
        k4 = g.op("concat", [past_k, k4], axis=2)
        v4 = g.op("concat", [past_v, v4], axis=2)
    present_k, present_v = k4, v4
    n_q, n_kv = q4.type.shape[1], k4.type.shape[1]
    if n_q % n_kv or v4.type.shape[1] != n_kv:
        raise ctx.error(node, f"Attention query heads ({n_q}) must be a multiple of the key/value heads ({n_kv})")
    q_len, kv_len, head = q4.type.shape[2], k4.type.shape[2], q4.type.shape[3]
    if n_q != n_kv:   # grouped-query attention: each K/V head serves n_q / n_kv query heads in a row
        reps = np.repeat(np.arange(n_kv, dtype=np.int64), n_q // n_kv)
        k4, v4 = (g.op("gather", [t, ctx.constant(reps)], axis=1) for t in (k4, v4))

    scale = ctx.attr(node, "scale", None)
    root = np.sqrt(np.asarray(1 / math.sqrt(head) if scale is None else float(scale), dtype=np.float64))
    root = g.const(root, dt)   # the reference scales Q and K by sqrt(scale) each
    kt = g.transpose(g.op("mul", [k4, root]), [0, 1, 3, 2])
    qk = g.op("matmul", [g.op("mul", [q4, root]), kt])
    softcap = float(ctx.attr(node, "softcap", 0.0))
    if softcap > 0:
        cap = g.const(softcap, dt)
        qk = g.op("mul", [g.op("tanh", [g.op("div", [qk, cap])]), cap])

    bias = _attention_bias(ctx, node, g, mask, past_k, seqlen, q_len, kv_len, dt)
    with_bias = qk if bias is None else g.op("add", [qk, bias])
    mode = int(ctx.attr(node, "qk_matmul_output_mode", 0))
    precision = int(ctx.attr(node, "softmax_precision", 0))
    sdt = attr_dtype(ctx, node, precision, "Attention softmax_precision") if precision else dt
    probs = _guarded_softmax(g, g.cast(with_bias, sdt), bias)
    y = g.op("matmul", [g.cast(probs, dt), v4])
    if rank3:
        b = y.type.shape[0]
        y = g.reshape(g.transpose(y, [0, 2, 1, 3]), [b, q_len, n_q * y.type.shape[3]])
    qk_out = {0: qk, 1: qk, 2: with_bias, 3: probs}.get(mode)
    if qk_out is None:
        raise ctx.error(node, f"Attention qk_matmul_output_mode {mode} is not one of 0-3")
    return [y, present_k, present_v, g.cast(qk_out, dt)]


def _attention_bias(ctx, node, g, mask, past_k, seqlen, q_len: int, kv_len: int, dt):
    """The additive bias (broadcasting to ``[batch, heads, q, kv]``): the mask (bool -> 0/-inf), padded
    with -inf up to the cached length, plus the causal and window terms (aligned to the end of the cache:
    past_key's length, or per batch nonpad_kv_seqlen - q_len) and -inf on keys past nonpad_kv_seqlen;
    None when there is none."""
    causal = bool(int(ctx.attr(node, "is_causal", 0)))
    left = int(ctx.attr(node, "left_window_size", -1))
    right = int(ctx.attr(node, "right_window_size", -1))
    bias = None
    if mask is not None:
        if mask.type.dtype == "bool":
            mask = _neg_inf_where_not(g, mask, dt)
        elif mask.type.dtype != dt:
            raise ctx.error(node, f"Attention attn_mask must be bool or {dt}, not {mask.type.dtype}")
        pad = kv_len - mask.type.shape[-1]
        if pad < 0:
            raise ctx.error(node, f"Attention attn_mask covers {mask.type.shape[-1]} keys, more than {kv_len}")
        if pad:
            fill = g.const(np.full(list(mask.type.shape[:-1]) + [pad], -np.inf), dt)
            mask = g.op("concat", [mask, fill], axis=mask.type.rank - 1)
        bias = mask
    per_batch = None
    if seqlen is not None:
        if seqlen.type.rank != 1:
            raise ctx.error(node, "Attention nonpad_kv_seqlen must be 1-D (one length per batch)")
        per_batch = g.reshape(g.cast(seqlen, "i64"), [seqlen.type.shape[0], 1, 1])
    if causal or left >= 0 or right >= 0:
        if per_batch is not None:
            offset = g.op("sub", [per_batch, g.const(q_len, "i64")])
        else:
            offset = past_k.type.shape[2] if past_k is not None else 0
        window = _window_bias(g, q_len, kv_len, offset, causal, left, right, dt)
        bias = window if bias is None else g.op("add", [bias, window])
    if per_batch is not None:
        keys = g.const(np.arange(kv_len).reshape(1, 1, kv_len), "i64")
        padding = g.op("unsqueeze", [_neg_inf_where_not(g, g.op("less", [keys, per_batch]), dt)], axes=[1])
        bias = padding if bias is None else g.op("add", [bias, padding])
    return bias


def _guarded_softmax(g, x, bias):
    """Softmax over the last axis, and 0 on rows whose bias masks every key (the reference's guard; a
    plain softmax would give NaN there)."""
    probs = g.op("softmax", [x], axis=x.type.rank - 1)
    if bias is None:
        return probs
    last = bias.type.rank - 1
    row_max = g.op("reduce_max", [bias], axes=[last], keepdims=1)
    dead = g.op("is_inf", [row_max], detect_positive=0, detect_negative=1)
    return g.op("where", [dead, g.const(0.0, x.type.dtype), probs])


# LinearAttention's recurrence is unrolled, one group of small ops per token: fine for decode steps and
# short prefills; longer sequences would want a device loop (Grinder) or the chunked form.
MAX_LINEAR_ATTENTION_STEPS = 64


@converter("LinearAttention", since=1)
def linear_attention(ctx, node):
    """The recurrent state update per token, in f32 on ``[batch, heads, d_k, d_v]``: decay by
    ``exp(decay)`` (gated rules), the delta correction ``beta * (v - S^T k)`` (delta rules), then
    ``S += k v^T`` and ``o = scale * q^T S`` (query heads sharing their K/V head's state)."""
    g = Emitter(ctx)
    q, k, v = (ctx.input(node, i) for i in range(3))
    past = ctx.input(node, 3)
    decay = ctx.input(node, 4)
    beta = ctx.input(node, 5)
    rule = ctx.attr(node, "update_rule", "gated_delta")
    qh, kvh = int(ctx.attr(node, "q_num_heads", 0)), int(ctx.attr(node, "kv_num_heads", 0))
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise ctx.error(node, f"LinearAttention update_rule '{rule}' is not linear, gated, delta or gated_delta")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    if (decay is not None) != gating or (beta is not None) != delta:
        raise ctx.error(node, f"LinearAttention update_rule '{rule}' needs {'decay' if gating else 'no decay'} "
                              f"and {'beta' if delta else 'no beta'}")
    if qh <= 0 or kvh <= 0 or qh % kvh or any(t.type.rank != 3 for t in (q, k, v)):
        raise ctx.error(node, "LinearAttention needs 3-D query/key/value and q_num_heads a multiple of kv_num_heads")
    b, steps, _ = q.type.shape
    if steps > MAX_LINEAR_ATTENTION_STEPS:
        raise ctx.error(node, f"LinearAttention over {steps} tokens is not supported (at most "
                              f"{MAX_LINEAR_ATTENTION_STEPS}: the recurrence is unrolled)")
    q4, k4, v4 = (_heads(g, g.cast(t, "f32"), n) for t, n in ((q, qh), (k, kvh), (v, kvh)))
    dk, dv = k4.type.shape[3], v4.type.shape[3]
    scale = float(ctx.attr(node, "scale", 0.0)) or 1.0 / math.sqrt(dk)
    if past is not None:
        if past.type.shape != (b, kvh, dk, dv):
            raise ctx.error(node, f"LinearAttention past_state must have shape {[b, kvh, dk, dv]}")
        state = g.cast(past, "f32")
    else:
        state = g.const(np.zeros((b, kvh, dk, dv)), "f32")

    def per_head(t, what):   # [B, T, n] -> [B, n, T, 1]; [B, T, kvh * dk] -> [B, kvh, T, dk]
        n = t.type.shape[-1]
        if what == "decay" and n == kvh * dk:
            return _heads(g, g.cast(t, "f32"), kvh)
        if n not in ((kvh, kvh * dk) if what == "decay" else (kvh, 1)):
            raise ctx.error(node, f"LinearAttention {what} has {n} entries per token")
        return g.transpose(g.reshape(g.cast(t, "f32"), [b, steps, n, 1]), [0, 2, 1, 3])

    decay4 = per_head(decay, "decay") if gating else None
    beta4 = per_head(beta, "beta") if delta else None
    reps = ctx.constant(np.repeat(np.arange(kvh, dtype=np.int64), qh // kvh)) if qh != kvh else None
    step = (lambda t, i: g.op("slice", [t], starts=[i], ends=[i + 1], axes=[2], steps=[1]))
    outs = []
    for i in range(steps):
        k_t, v_t = step(k4, i), step(v4, i)                                    # [B, H, 1, d]
        if gating:
            g_t = g.transpose(g.op("exp", [step(decay4, i)]), [0, 1, 3, 2])    # [B, H, d_k or 1, 1]
            state = g.op("mul", [state, g_t])
        if delta:
            retrieved = g.op("matmul", [k_t, state])                           # [B, H, 1, d_v]
            v_t = g.op("mul", [step(beta4, i), g.op("sub", [v_t, retrieved])])
        state = g.op("add", [state, g.op("mul", [g.transpose(k_t, [0, 1, 3, 2]), v_t])])
        read = state if reps is None else g.op("gather", [state, reps], axis=1)
        outs.append(g.op("mul", [g.op("matmul", [step(q4, i), read]), g.const(scale, "f32")]))
    y = outs[0] if steps == 1 else g.op("concat", outs, axis=2)                # [B, Hq, T, d_v]
    y = g.reshape(g.transpose(y, [0, 2, 1, 3]), [b, steps, qh * dv])
    return [g.cast(y, q.type.dtype), g.cast(state, past.type.dtype if past is not None else q.type.dtype)]
