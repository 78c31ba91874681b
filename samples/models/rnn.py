"""Recurrent models from the Rammer and Cocktailer evaluations, written with their control
flow the way the papers' models are: LSTM, NASRNN and a GRU Seq2Seq.

- ``lstm``: a stack of ONNX ``LSTM`` ops, one per layer (what ``nn.LSTM(num_layers=L)``
  exports); tilec imports each as a ``cf.loop`` over time.
- ``nasrnn``: one ``Loop`` over the time steps whose body runs the stacked NAS cells
  (TensorFlow's NASCell) and carries every layer's ``h`` and ``c``.
- ``seq2seq``: an ONNX ``GRU`` encoder and a greedy decoder ``Loop``: each step embeds the
  previous token, runs the GRU cell and the output projection, and ``ArgMax`` picks the
  next token; the loop stops after the end token (a data-dependent exit) or ``tgt`` steps.

The time loops stay loops, so the graph size does not grow with the sequence length and
Cocktailer (``--pipeline grinder``) has loops to move onto the device; ``full`` runs the
papers' 100 steps for LSTM and NASRNN.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from ._common import ZooBuilder, f32, i64

CONFIGS = {
    "lstm": {"full": dict(layers=10, hidden=256, steps=100),
             "small": dict(layers=2, hidden=16, steps=3)},
    "nasrnn": {"full": dict(layers=10, hidden=256, steps=100),
               "small": dict(layers=2, hidden=16, steps=3)},
    # The decoder starts from token ``bos`` and stops after emitting ``eos``. Which id is the
    # end token is a vocabulary convention; the small model's is one its greedy decoding of
    # the tests' seeded input (src_ids from default_rng(0)) reaches at step 5 of 6, so the
    # tests take the data-dependent exit (random weights seldom emit any one fixed id).
    "seq2seq": {"full": dict(vocab=8000, embed=512, hidden=512, src=16, tgt=16, bos=0, eos=1),
                "small": dict(vocab=50, embed=16, hidden=16, src=4, tgt=6, bos=0, eos=14)},
}
SEEDS = {"lstm": 113, "nasrnn": 114, "seq2seq": 115}


def _vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, list(shape))


def build_lstm(size: str = "small", weights: str = "random"):
    """10-layer LSTM, hidden 256 (Rammer/Cocktailer) as ``nn.LSTM(256, 256, num_layers=10)``
    exports it: one ONNX ``LSTM`` per layer (W, R and both biases, as torch counts them),
    each layer's ``Y`` [T, 1, 1, n] squeezed into the next layer's ``X``."""
    c = CONFIGS["lstm"][size]
    b = ZooBuilder(SEEDS["lstm"], weights)
    n = c["hidden"]
    x = "x"                                                                # [T, 1, n]
    for l in range(c["layers"]):
        w = b.weight(f"layer{l}.W", (1, 4 * n, n), n)
        r = b.weight(f"layer{l}.R", (1, 4 * n, n), n)
        bias = b.tensor(f"layer{l}.B", (1, 8 * n), lambda: 0.1 * b.rng.standard_normal((1, 8 * n)))
        y, _, _ = b.ops("LSTM", [x, w, r, bias], 3, hidden_size=n)
        x = b.op("Squeeze", [y, b.ints([1])], out="y" if l == c["layers"] - 1 else None)
    return b.finish("lstm", [f32("x", (c["steps"], 1, n))], [f32("y", (c["steps"], 1, n))],
                    f"lstm ({size}): {c}")


def _nas_cell(b, x, m, c, w, n):
    """TensorFlow's NASCell (Zoph & Le 2017) with ``use_bias=True``, the searched 8-way cell.

    Without the bias a deep stack of this cell contracts geometrically (the layer-10 output
    of random weights is ~1e-9), useless for numerical comparisons; a unit-scale bias keeps
    the gates' inputs O(1).
    """
    xs = b.split(b.op("MatMul", [x, w[0]]), [n] * 8, axis=-1)
    # TF adds the bias to the recurrent projection (it matters for the Mul in layer1_3).
    ms = b.split(b.op("Add", [b.op("MatMul", [m, w[1]]), w[2]]), [n] * 8, axis=-1)
    o = lambda t, *a: b.op(t, list(a))                                     # noqa: E731
    l1 = [o("Sigmoid", o("Add", xs[0], ms[0])), o("Relu", o("Add", xs[1], ms[1])),
          o("Sigmoid", o("Add", xs[2], ms[2])), o("Relu", o("Mul", xs[3], ms[3])),
          o("Tanh", o("Add", xs[4], ms[4])), o("Sigmoid", o("Add", xs[5], ms[5])),
          o("Tanh", o("Add", xs[6], ms[6])), o("Sigmoid", o("Add", xs[7], ms[7]))]
    l2_0 = o("Tanh", o("Mul", l1[0], l1[1]))
    l2_1 = o("Tanh", o("Add", l1[2], l1[3]))
    l2_2 = o("Tanh", o("Mul", l1[4], l1[5]))
    l2_3 = o("Sigmoid", o("Add", l1[6], l1[7]))
    new_c = o("Mul", o("Tanh", o("Add", l2_0, c)), l2_1)
    return o("Tanh", o("Mul", new_c, o("Tanh", o("Add", l2_2, l2_3)))), new_c


def build_nasrnn(size: str = "small", weights: str = "random"):
    """10-layer NASRNN, hidden 256 (Rammer/Cocktailer), TF NASCell with bias: a ``Loop`` over
    time, the body runs layer after layer and carries each layer's ``h`` and ``c``."""
    c = CONFIGS["nasrnn"][size]
    b = ZooBuilder(SEEDS["nasrnn"], weights)
    n, layers, steps = c["hidden"], c["layers"], c["steps"]
    w = [(b.weight(f"layer{l}.w_x", (n, 8 * n), n), b.weight(f"layer{l}.w_h", (n, 8 * n), n),
          b.tensor(f"layer{l}.bias", (8 * n,), lambda: b.rng.standard_normal(8 * n)))
         for l in range(layers)]
    state = [f"{k}{l}" for l in range(layers) for k in ("h", "c")]
    with b.subgraph() as body:
        x = b.op("Gather", ["x", "t"], axis=0)                             # [1, n]
        outs = []
        for l in range(layers):
            x, cl = _nas_cell(b, x, f"h{l}", f"c{l}", w[l], n)
            outs += [x, cl]
        cond = b.op("Identity", ["cond"])
        y_t = b.op("Identity", [x])
    st = [(1, n)] * len(state)
    body = helper.make_graph(
        body, "nasrnn_step",
        [_vi("t", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, [])]
        + [_vi(s, TensorProto.FLOAT, sh) for s, sh in zip(state, st)],
        [_vi(cond, TensorProto.BOOL, [])]
        + [_vi(s, TensorProto.FLOAT, sh) for s, sh in zip(outs, st)]
        + [_vi(y_t, TensorProto.FLOAT, (1, n))])
    zero = b.const(np.zeros((1, n), np.float32))
    b.ops("Loop", [b.ints(steps), b.const(True, np.bool_)] + [zero] * len(state),
          len(state) + 1, body=body)
    b.nodes[-1].output[-1] = "y"                                           # [T, 1, n]
    return b.finish("nasrnn", [f32("x", (steps, 1, n))], [f32("y", (steps, 1, n))],
                    f"nasrnn ({size}): {c}")


def _gru_cell(b, x, h, w, n):
    """torch.nn.GRUCell: r, z gates, n = tanh(Wx + b + r * (Uh + b')), h' = n + z (h - n)."""
    xi = b.split(b.op("Add", [b.op("MatMul", [x, w[0]]), w[2]]), [n] * 3, axis=-1)
    hh = b.split(b.op("Add", [b.op("MatMul", [h, w[1]]), w[3]]), [n] * 3, axis=-1)
    r = b.op("Sigmoid", [b.op("Add", [xi[0], hh[0]])])
    z = b.op("Sigmoid", [b.op("Add", [xi[1], hh[1]])])
    cand = b.op("Tanh", [b.op("Add", [xi[2], b.op("Mul", [r, hh[2]])])])
    return b.op("Add", [cand, b.op("Mul", [z, b.op("Sub", [h, cand])])])


def build_seq2seq(size: str = "small", weights: str = "random"):
    """GRU encoder-decoder with greedy decoding: ``src_ids`` [1, S] -> ``tokens`` [1, T] (the
    decoded ids, EOS-padded after the end), ``length`` [1] (steps decoded) and ``hidden``
    [1, n] (the decoder's last state).

    The encoder is an ONNX ``GRU`` (``linear_before_reset=1``, torch's GRU) over the
    embedded source; the decoder starts from its final state and BOS, and is a ``Loop`` of
    at most ``tgt`` steps that exits once ``ArgMax`` of the logits is EOS.
    """
    c = CONFIGS["seq2seq"][size]
    b = ZooBuilder(SEEDS["seq2seq"], weights)
    v, e, n, tgt = c["vocab"], c["embed"], c["hidden"], c["tgt"]

    def embedding(p):
        return b.tensor(p, (v, e), lambda: b.rng.standard_normal((v, e)))

    # Encoder: ONNX GRU, W [1, 3n, e], R [1, 3n, n], B = [Wb, Rb] [1, 6n] (torch's b_ih, b_hh).
    src = b.op("Transpose", [b.op("Gather", [embedding("encoder.embedding"), "src_ids"], axis=0)],
               perm=[1, 0, 2])                                             # [S, 1, e]
    w_enc = [b.weight("encoder.gru.W", (1, 3 * n, e), e),
             b.weight("encoder.gru.R", (1, 3 * n, n), n),
             b.tensor("encoder.gru.B", (1, 6 * n), lambda: 0.1 * b.rng.standard_normal((1, 6 * n)))]
    _, h_enc = b.ops("GRU", [src, *w_enc], 2, hidden_size=n, linear_before_reset=1)
    h0 = b.op("Squeeze", [h_enc, b.ints([0])])                             # [1, n]
    # Decoder: GRUCell + Linear, greedy.
    emb = embedding("decoder.embedding")
    w_dec = (b.weight("decoder.gru.w_ih", (e, 3 * n), e),
             b.weight("decoder.gru.w_hh", (n, 3 * n), n),
             b.bias("decoder.gru.b_ih", 3 * n), b.bias("decoder.gru.b_hh", 3 * n))
    w_out = (b.weight("decoder.out.weight", (n, v), n), b.bias("decoder.out.bias", v))
    positions = b.const(np.arange(tgt, dtype=np.int64).reshape(1, tgt), np.int64)
    with b.subgraph() as body:
        x = b.op("Gather", [emb, "tok"], axis=0)                           # [1, e]
        h = _gru_cell(b, x, "h", w_dec, n)
        logits = b.op("Add", [b.op("MatMul", [h, w_out[0]]), w_out[1]])    # [1, v]
        tok = b.op("ArgMax", [logits], axis=1, keepdims=0)                 # [1]
        toks = b.op("Where", [b.op("Equal", [positions, "t"]), tok, "toks"])
        length = b.op("Add", ["len", b.ints([1])])
        is_eos = b.op("Equal", [tok, b.ints([c["eos"]])])
        go_on = b.op("Squeeze", [b.op("Not", [is_eos]), b.ints([0])])
    body = helper.make_graph(
        body, "greedy_step",
        [_vi("t", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []),
         _vi("h", TensorProto.FLOAT, (1, n)), _vi("tok", TensorProto.INT64, (1,)),
         _vi("toks", TensorProto.INT64, (1, tgt)), _vi("len", TensorProto.INT64, (1,))],
        [_vi(go_on, TensorProto.BOOL, []), _vi(h, TensorProto.FLOAT, (1, n)),
         _vi(tok, TensorProto.INT64, (1,)), _vi(toks, TensorProto.INT64, (1, tgt)),
         _vi(length, TensorProto.INT64, (1,))])
    b.ops("Loop", [b.ints(tgt), b.const(True, np.bool_), h0, b.ints([c["bos"]]),
                   b.const(np.full((1, tgt), c["eos"], np.int64), np.int64), b.ints([0])],
          4, body=body)
    for k, name in ((0, "hidden"), (2, "tokens"), (3, "length")):
        b.nodes[-1].output[k] = name
    return b.finish("seq2seq", [i64("src_ids", (1, c["src"]))],
                    [i64("tokens", (1, tgt)), i64("length", (1,)), f32("hidden", (1, n))],
                    f"seq2seq ({size}): {c}, greedy")
