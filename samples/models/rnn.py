"""Unrolled recurrent models from the Rammer and Cocktailer evaluations: LSTM, NASRNN and
a GRU Seq2Seq.

No ONNX LSTM/GRU/Loop: every cell is written out with MatMul/Add/Split/Sigmoid/Tanh and
the time loop is unrolled ``steps`` times with the weights shared between steps, so the
graph is a wide, deep grid of small ops (each step's layer l depends on step t-1 layer l
and step t layer l-1 - the wavefront Rammer schedules and the loop Cocktailer would
keep on the device). The papers run 100 time steps; ``full`` unrolls 10 to keep the graph
a few thousand nodes, and the builders take ``steps`` for more.
"""

from __future__ import annotations

import numpy as np

from ._common import ZooBuilder, f32, i64

CONFIGS = {
    "lstm": {"full": dict(layers=10, hidden=256, steps=10),
             "small": dict(layers=2, hidden=16, steps=3)},
    "nasrnn": {"full": dict(layers=10, hidden=256, steps=10),
               "small": dict(layers=2, hidden=16, steps=3)},
    "seq2seq": {"full": dict(vocab=8000, embed=512, hidden=512, src=16, tgt=16),
                "small": dict(vocab=50, embed=16, hidden=16, src=4, tgt=3)},
}
SEEDS = {"lstm": 113, "nasrnn": 114, "seq2seq": 115}


def _proj(b, x, h, w_x, w_h, bias):
    g = b.op("Add", [b.op("MatMul", [x, w_x]), b.op("MatMul", [h, w_h])])
    return b.op("Add", [g, bias])


def _lstm_cell(b, x, h, c, w, n):
    i, f, g, o = b.split(_proj(b, x, h, *w), [n] * 4, axis=-1)
    sig = lambda t: b.op("Sigmoid", [t])                                   # noqa: E731
    c = b.op("Add", [b.op("Mul", [sig(f), c]),
                     b.op("Mul", [sig(i), b.op("Tanh", [g])])])
    return b.op("Mul", [sig(o), b.op("Tanh", [c])]), c


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


def _stacked(name, cell, gates, bias_std, size, weights):
    c = CONFIGS[name][size]
    b = ZooBuilder(SEEDS[name], weights)
    n, steps = c["hidden"], c["steps"]
    w = [(b.weight(f"layer{l}.w_x", (n, gates * n), n), b.weight(f"layer{l}.w_h", (n, gates * n), n))
         + (b.tensor(f"layer{l}.bias", (gates * n,),
                     lambda: bias_std * b.rng.standard_normal(gates * n)),)
         for l in range(c["layers"])]
    zero = b.const(np.zeros((1, n), np.float32))
    h = [zero] * c["layers"]
    s = [zero] * c["layers"]
    outs = []
    for t in range(steps):
        x = b.op("Gather", ["x", b.ints(t)], axis=0)                       # [1, n]
        for l in range(c["layers"]):
            h[l], s[l] = cell(b, x, h[l], s[l], w[l], n)
            x = h[l]
        outs.append(b.op("Unsqueeze", [x, b.ints([0])]))
    b.op("Concat", outs, axis=0, out="y")
    return b.finish(name, [f32("x", (steps, 1, n))], [f32("y", (steps, 1, n))],
                    f"{name} ({size}): {c}")


def build_lstm(size: str = "small", weights: str = "random"):
    """10-layer LSTM, hidden 256 (Rammer/Cocktailer): gates i, f, g, o from one Split."""
    return _stacked("lstm", _lstm_cell, 4, 0.1, size, weights)


def build_nasrnn(size: str = "small", weights: str = "random"):
    """10-layer NASRNN, hidden 256 (Rammer/Cocktailer), TF NASCell with bias."""
    return _stacked("nasrnn", _nas_cell, 8, 1.0, size, weights)


def _gru_cell(b, x, h, w, n):
    """torch.nn.GRUCell: r, z gates, n = tanh(Wx + b + r * (Uh + b')), h' = n + z (h - n)."""
    xi = b.split(b.op("Add", [b.op("MatMul", [x, w[0]]), w[2]]), [n] * 3, axis=-1)
    hh = b.split(b.op("Add", [b.op("MatMul", [h, w[1]]), w[3]]), [n] * 3, axis=-1)
    r = b.op("Sigmoid", [b.op("Add", [xi[0], hh[0]])])
    z = b.op("Sigmoid", [b.op("Add", [xi[1], hh[1]])])
    cand = b.op("Tanh", [b.op("Add", [xi[2], b.op("Mul", [r, hh[2]])])])
    return b.op("Add", [cand, b.op("Mul", [z, b.op("Sub", [h, cand])])])


def build_seq2seq(size: str = "small", weights: str = "random"):
    """GRU encoder-decoder with teacher forcing: ``src_ids`` [1, S], ``tgt_ids`` [1, T]
    -> ``logits`` [1, T, vocab]. The decoder starts from the encoder's final state."""
    c = CONFIGS["seq2seq"][size]
    b = ZooBuilder(SEEDS["seq2seq"], weights)
    v, e, n = c["vocab"], c["embed"], c["hidden"]

    def gru(p):
        return (b.weight(f"{p}.w_ih", (e, 3 * n), e), b.weight(f"{p}.w_hh", (n, 3 * n), n),
                b.bias(f"{p}.b_ih", 3 * n), b.bias(f"{p}.b_hh", 3 * n))

    def embed(p, ids):
        return b.op("Gather", [b.tensor(p, (v, e), lambda: b.rng.standard_normal((v, e))), ids],
                    axis=0)                                                # [1, L, e]

    src, w_enc = embed("encoder.embedding", "src_ids"), gru("encoder.gru")
    h = b.const(np.zeros((1, n), np.float32))
    for t in range(c["src"]):
        h = _gru_cell(b, b.op("Gather", [src, b.ints(t)], axis=1), h, w_enc, n)
    tgt, w_dec = embed("decoder.embedding", "tgt_ids"), gru("decoder.gru")
    outs = []
    for t in range(c["tgt"]):
        h = _gru_cell(b, b.op("Gather", [tgt, b.ints(t)], axis=1), h, w_dec, n)
        outs.append(b.op("Unsqueeze", [h, b.ints([1])]))
    hs = b.op("Concat", outs, axis=1)                                      # [1, T, n]
    b.linear(hs, "decoder.out", n, v)
    b.nodes[-1].output[0] = "logits"
    return b.finish("seq2seq", [i64("src_ids", (1, c["src"])), i64("tgt_ids", (1, c["tgt"]))],
                    [f32("logits", (1, c["tgt"], v))], f"seq2seq ({size}): {c}")
