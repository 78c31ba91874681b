"""Control-flow samples (DESIGN §6): ONNX Loop / If models from Cocktailer's evaluation, small.

- ``lstm_loop.onnx``: an LSTM cell run over a sequence by a ``Loop`` (x_t gathered by the iteration
  number, h and c carried, every h a scan output).
- ``greedy_decoder.onnx``: a greedy RNN decoder; the ``Loop`` stops early when it emits the end token,
  so its condition is data dependent (one host round trip per step when the host drives it).
- ``skipnet_if.onnx``: a SkipNet-like block, a gate computed from the input decides under ``If`` whether
  the residual block runs or is skipped.
- ``nasrnn_loop.onnx``: the NASRNN cell (Cocktailer's NASRNN benchmark) looped over a sequence by a ``Loop``.

Built with ``onnx.helper`` and seeded weights, opset 17; running it twice gives the same bytes::

    python samples/control/build_control.py [--out DIR]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

OPSET = 17
HERE = Path(__file__).parent


def _w(name, rng, *shape, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def _model(nodes, name, inputs, outputs, inits):
    g = h.make_graph(nodes, name, inputs, outputs, inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", OPSET)], producer_name="tilec-samples")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _vi(name, dtype, shape):
    return h.make_tensor_value_info(name, dtype, shape)


def lstm_loop(steps=4, batch=1, inp=8, hidden=8, seed=201):
    """h, c = LSTMCell(x[t], h, c) for t < steps, written as a Loop whose body reads W, R, b and x from the
    enclosing graph."""
    rng = np.random.default_rng(seed)
    body = h.make_graph([
        h.make_node("Gather", ["x", "t"], ["xt"], axis=0),
        h.make_node("MatMul", ["xt", "W"], ["gx"]),
        h.make_node("MatMul", ["h", "R"], ["gh"]),
        h.make_node("Add", ["gx", "gh"], ["g0"]),
        h.make_node("Add", ["g0", "b"], ["g"]),
        h.make_node("Split", ["g", "split4"], ["gi", "gf", "gc", "go"], axis=1),
        h.make_node("Sigmoid", ["gi"], ["i"]),
        h.make_node("Sigmoid", ["gf"], ["f"]),
        h.make_node("Tanh", ["gc"], ["cc"]),
        h.make_node("Sigmoid", ["go"], ["o"]),
        h.make_node("Mul", ["f", "c"], ["fc"]),
        h.make_node("Mul", ["i", "cc"], ["ic"]),
        h.make_node("Add", ["fc", "ic"], ["c2"]),
        h.make_node("Tanh", ["c2"], ["tc"]),
        h.make_node("Mul", ["o", "tc"], ["h2"]),
        h.make_node("Identity", ["cond"], ["cond2"]),
        h.make_node("Identity", ["h2"], ["hs"]),
    ], "lstm_body", [_vi("t", T.INT64, []), _vi("cond", T.BOOL, []), _vi("h", T.FLOAT, [batch, hidden]),
                     _vi("c", T.FLOAT, [batch, hidden])],
        [_vi("cond2", T.BOOL, []), _vi("h2", T.FLOAT, [batch, hidden]), _vi("c2", T.FLOAT, [batch, hidden]),
         _vi("hs", T.FLOAT, [batch, hidden])],
        [_i64("split4", [hidden] * 4)])
    inits = [_w("W", rng, inp, 4 * hidden), _w("R", rng, hidden, 4 * hidden), _w("b", rng, 4 * hidden),
             _i64("M", steps), numpy_helper.from_array(np.array(True), "true")]
    nodes = [h.make_node("Loop", ["M", "true", "h0", "c0"], ["h_T", "c_T", "h_all"], body=body, name="lstm")]
    return _model(nodes, "lstm_loop", [_vi("x", T.FLOAT, [steps, batch, inp]), _vi("h0", T.FLOAT, [batch, hidden]),
                                       _vi("c0", T.FLOAT, [batch, hidden])],
                  [_vi("h_T", T.FLOAT, [batch, hidden]), _vi("c_T", T.FLOAT, [batch, hidden]),
                   _vi("h_all", T.FLOAT, [steps, batch, hidden])], inits)


def greedy_decoder(vocab=6, hidden=8, max_len=8, eos=0, seed=202):
    """tok = argmax(V tanh(E[tok] + U h)) until tok == eos or max_len steps; returns the last hidden state,
    the last token and the number of steps taken."""
    rng = np.random.default_rng(seed)
    body = h.make_graph([
        h.make_node("Gather", ["E", "tok"], ["e"], axis=0),
        h.make_node("MatMul", ["hid", "U"], ["uh"]),
        h.make_node("Add", ["e", "uh"], ["pre"]),
        h.make_node("Tanh", ["pre"], ["hid2"]),
        h.make_node("MatMul", ["hid2", "V"], ["logits"]),
        h.make_node("ArgMax", ["logits"], ["tok2"], axis=1, keepdims=0),
        h.make_node("Add", ["n", "one"], ["n2"]),
        h.make_node("Equal", ["tok2", "eos"], ["is_eos"]),
        h.make_node("Not", ["is_eos"], ["go_on"]),
        h.make_node("Squeeze", ["go_on", "ax0"], ["cond2"]),
    ], "decoder_body", [_vi("t", T.INT64, []), _vi("cond", T.BOOL, []), _vi("hid", T.FLOAT, [1, hidden]),
                        _vi("tok", T.INT64, [1]), _vi("n", T.INT64, [1])],
        [_vi("cond2", T.BOOL, []), _vi("hid2", T.FLOAT, [1, hidden]), _vi("tok2", T.INT64, [1]),
         _vi("n2", T.INT64, [1])],
        [_i64("one", [1]), _i64("eos", [eos]), _i64("ax0", [0])])
    inits = [_w("E", rng, vocab, hidden, scale=1.0), _w("U", rng, hidden, hidden), _w("V", rng, hidden, vocab),
             _i64("M", max_len), numpy_helper.from_array(np.array(True), "true"), _i64("zero", [0])]
    nodes = [h.make_node("Loop", ["M", "true", "h0", "start", "zero"], ["h_T", "last", "steps"], body=body,
                         name="decode")]
    return _model(nodes, "greedy_decoder", [_vi("h0", T.FLOAT, [1, hidden]), _vi("start", T.INT64, [1])],
                  [_vi("h_T", T.FLOAT, [1, hidden]), _vi("last", T.INT64, [1]), _vi("steps", T.INT64, [1])],
                  inits)


def skipnet_if(channels=8, seed=203):
    """y = x + relu(x W1) W2 when the gate sigmoid(mean(x) * g) > 0.5, else y = x (the block is skipped)."""
    rng = np.random.default_rng(seed)
    then_g = h.make_graph([
        h.make_node("MatMul", ["x", "W1"], ["a"]),
        h.make_node("Relu", ["a"], ["r"]),
        h.make_node("MatMul", ["r", "W2"], ["bb"]),
        h.make_node("Add", ["x", "bb"], ["y_run"]),
    ], "run_block", [], [_vi("y_run", T.FLOAT, [1, channels])])
    else_g = h.make_graph([h.make_node("Identity", ["x"], ["y_skip"])], "skip_block", [],
                          [_vi("y_skip", T.FLOAT, [1, channels])])
    nodes = [
        h.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
        h.make_node("Mul", ["m", "g"], ["mg"]),
        h.make_node("Sigmoid", ["mg"], ["p"]),
        h.make_node("Greater", ["p", "half"], ["gate"]),
        h.make_node("If", ["gate"], ["y"], then_branch=then_g, else_branch=else_g, name="skip"),
    ]
    inits = [_w("W1", rng, channels, channels), _w("W2", rng, channels, channels),
             numpy_helper.from_array(np.array(4.0, np.float32), "g"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    return _model(nodes, "skipnet_if", [_vi("x", T.FLOAT, [1, channels])], [_vi("y", T.FLOAT, [1, channels])],
                  inits)


def nasrnn_loop(steps=4, batch=1, inp=8, hidden=8, seed=204):
    """The NASRNN cell (Zoph & Le's searched recurrent cell, as in TensorFlow's NASCell without projection)
    run over a sequence by a ``Loop``: x_t W and h U each split into 8 gates, combined by a fixed tree of
    sigmoid / relu / tanh and add / mul; h and c carried, every h a scan output."""
    rng = np.random.default_rng(seed)
    nodes = [
        h.make_node("Gather", ["x", "t"], ["xt"], axis=0),
        h.make_node("MatMul", ["xt", "W"], ["xw"]),
        h.make_node("MatMul", ["h", "U"], ["hu"]),
        h.make_node("Split", ["xw", "split8"], [f"x{i}" for i in range(8)], axis=1),
        h.make_node("Split", ["hu", "split8"], [f"m{i}" for i in range(8)], axis=1),
    ]
    # Layer 1: one activation of (x_i + m_i) per gate, except gate 3 which multiplies.
    acts = ["Sigmoid", "Relu", "Sigmoid", "Relu", "Tanh", "Sigmoid", "Tanh", "Sigmoid"]
    for i, act in enumerate(acts):
        nodes.append(h.make_node("Mul" if i == 3 else "Add", [f"x{i}", f"m{i}"], [f"s{i}"]))
        nodes.append(h.make_node(act, [f"s{i}"], [f"l1_{i}"]))
    nodes += [
        h.make_node("Mul", ["l1_0", "l1_1"], ["p0"]), h.make_node("Tanh", ["p0"], ["l2_0a"]),
        h.make_node("Add", ["l1_2", "l1_3"], ["p1"]), h.make_node("Tanh", ["p1"], ["l2_1"]),
        h.make_node("Mul", ["l1_4", "l1_5"], ["p2"]), h.make_node("Tanh", ["p2"], ["l2_2"]),
        h.make_node("Add", ["l1_6", "l1_7"], ["p3"]), h.make_node("Sigmoid", ["p3"], ["l2_3"]),
        h.make_node("Add", ["l2_0a", "c"], ["p4"]), h.make_node("Tanh", ["p4"], ["l2_0"]),
        h.make_node("Mul", ["l2_0", "l2_1"], ["c2"]),
        h.make_node("Add", ["l2_2", "l2_3"], ["p5"]), h.make_node("Tanh", ["p5"], ["l3_1"]),
        h.make_node("Mul", ["c2", "l3_1"], ["p6"]), h.make_node("Tanh", ["p6"], ["h2"]),
        h.make_node("Identity", ["cond"], ["cond2"]),
        h.make_node("Identity", ["h2"], ["hs"]),
    ]
    body = h.make_graph(nodes, "nasrnn_body", [_vi("t", T.INT64, []), _vi("cond", T.BOOL, []),
                                                _vi("h", T.FLOAT, [batch, hidden]), _vi("c", T.FLOAT, [batch, hidden])],
                        [_vi("cond2", T.BOOL, []), _vi("h2", T.FLOAT, [batch, hidden]),
                         _vi("c2", T.FLOAT, [batch, hidden]), _vi("hs", T.FLOAT, [batch, hidden])],
                        [_i64("split8", [hidden] * 8)])
    inits = [_w("W", rng, inp, 8 * hidden), _w("U", rng, hidden, 8 * hidden), _i64("M", steps),
             numpy_helper.from_array(np.array(True), "true")]
    loop = [h.make_node("Loop", ["M", "true", "h0", "c0"], ["h_T", "c_T", "h_all"], body=body, name="nasrnn")]
    return _model(loop, "nasrnn_loop", [_vi("x", T.FLOAT, [steps, batch, inp]), _vi("h0", T.FLOAT, [batch, hidden]),
                                        _vi("c0", T.FLOAT, [batch, hidden])],
                  [_vi("h_T", T.FLOAT, [batch, hidden]), _vi("c_T", T.FLOAT, [batch, hidden]),
                   _vi("h_all", T.FLOAT, [steps, batch, hidden])], inits)


SAMPLES = {"lstm_loop": lstm_loop, "greedy_decoder": greedy_decoder, "skipnet_if": skipnet_if,
           "nasrnn_loop": nasrnn_loop}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    for name, build in SAMPLES.items():
        onnx.save(build(), str(Path(args.out) / f"{name}.onnx"))


if __name__ == "__main__":
    main()
