"""Small models with inter-operator parallelism, the kind Rammer (DESIGN §5) wins on: independent branches
that each fill only a few SMs. Deterministic (seeded weights, opset 17, IR 8); rebuild with

    python samples/parallel/build.py [--out DIR]

- ``nasnet_cell.onnx``: a NASNet-like cell on x 1x16x12x12: separable convs (3x3 and 5x5 depthwise +
  pointwise), a max pool and an average pool in parallel, pairwise adds, concat.
- ``resnext_block.onnx``: a ResNeXt-like block on x 1x32x8x8 as 4 separate branches (1x1 -> 3x3 -> 1x1,
  width 4), summed with the residual.
- ``inception_block.onnx``: an Inception-like block on x 1x16x12x12: 1x1, 1x1->3x3, 1x1->5x5 and
  maxpool->1x1 branches, concatenated.
- ``lstm_cell.onnx``: an LSTM cell (input 32, hidden 32) unrolled over 3 steps with one MatMul per gate and
  operand (8 small matmuls per step), inputs x0..x2 of 1x32, output h of the last step.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    """A tiny onnx.helper wrapper: seeded initializers and auto-named nodes ``<Op>_<n>``."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def weight(self, name, shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(max(1, int(np.prod(shape[1:]))))
        value = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type, inputs, **attrs):
        name = f"{op_type}_{self.n}"
        self.n += 1
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x, cin, cout, k, name, group=1):
        w = self.weight(f"{name}.weight", [cout, cin // group, k, k])
        b = self.weight(f"{name}.bias", [cout], 0.1)
        return self.op("Conv", [x, w, b], kernel_shape=[k, k], pads=[k // 2] * 4, group=group)

    def sep_conv(self, x, c, k, name):
        dw = self.conv(self.op("Relu", [x]), c, c, k, f"{name}.dw", group=c)
        return self.conv(dw, c, c, 1, f"{name}.pw")

    def model(self, inputs, outputs):
        graph = helper.make_graph(self.nodes, "parallel", inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tilec-samples")
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def nasnet_cell():
    g, c = Graph(1), 16
    a = g.sep_conv("x", c, 3, "sep3")
    b = g.sep_conv("x", c, 5, "sep5")
    p = g.op("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    q = g.op("AveragePool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1],
             count_include_pad=0)
    s1 = g.op("Add", [a, p])
    s2 = g.op("Add", [b, q])
    y = g.op("Concat", [s1, s2], axis=1)
    g.nodes[-1].output[0] = "y"
    return g.model([f32("x", [1, c, 12, 12])], [f32("y", [1, 2 * c, 12, 12])])


def resnext_block():
    g, c, width, paths = Graph(2), 32, 4, 4
    outs = []
    for i in range(paths):
        h = g.op("Relu", [g.conv("x", c, width, 1, f"path{i}.reduce")])
        h = g.op("Relu", [g.conv(h, width, width, 3, f"path{i}.conv")])
        outs.append(g.conv(h, width, c, 1, f"path{i}.expand"))
    s = "x"
    for o in outs:
        s = g.op("Add", [s, o])
    g.op("Relu", [s])
    g.nodes[-1].output[0] = "y"
    return g.model([f32("x", [1, c, 8, 8])], [f32("y", [1, c, 8, 8])])


def inception_block():
    g, c = Graph(3), 16
    b1 = g.op("Relu", [g.conv("x", c, 8, 1, "b1")])
    b2 = g.op("Relu", [g.conv(g.op("Relu", [g.conv("x", c, 8, 1, "b2.reduce")]), 8, 8, 3, "b2.conv")])
    b3 = g.op("Relu", [g.conv(g.op("Relu", [g.conv("x", c, 4, 1, "b3.reduce")]), 4, 8, 5, "b3.conv")])
    p = g.op("MaxPool", ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    b4 = g.op("Relu", [g.conv(p, c, 8, 1, "b4.proj")])
    g.op("Concat", [b1, b2, b3, b4], axis=1)
    g.nodes[-1].output[0] = "y"
    return g.model([f32("x", [1, c, 12, 12])], [f32("y", [1, 32, 12, 12])])


def lstm_cell(steps=3, n=32, hid=32):
    g = Graph(4)
    gates = ("i", "f", "g", "o")
    wx = {k: g.weight(f"lstm.wx_{k}", [n, hid]) for k in gates}
    wh = {k: g.weight(f"lstm.wh_{k}", [hid, hid]) for k in gates}
    bias = {k: g.weight(f"lstm.b_{k}", [1, hid], 0.1) for k in gates}
    h, cell = g.weight("lstm.h0", [1, hid], 0.5), g.weight("lstm.c0", [1, hid], 0.5)
    for t in range(steps):
        pre = {k: g.op("Add", [g.op("Add", [g.op("MatMul", [f"x{t}", wx[k]]), g.op("MatMul", [h, wh[k]])]),
                               bias[k]]) for k in gates}
        i, f, o = (g.op("Sigmoid", [pre[k]]) for k in ("i", "f", "o"))
        cand = g.op("Tanh", [pre["g"]])
        cell = g.op("Add", [g.op("Mul", [f, cell]), g.op("Mul", [i, cand])])
        h = g.op("Mul", [o, g.op("Tanh", [cell])])
    g.nodes[-1].output[0] = "y"
    return g.model([f32(f"x{t}", [1, n]) for t in range(steps)], [f32("y", [1, hid])])


MODELS = {"nasnet_cell": nasnet_cell, "resnext_block": resnext_block, "inception_block": inception_block,
          "lstm_cell": lstm_cell}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent))
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, build in MODELS.items():
        onnx.save(build(), str(out / f"{name}.onnx"))
        print(out / f"{name}.onnx")


if __name__ == "__main__":
    main()
