"""Build the hand-written ONNX sample models that tilec is tested and benchmarked on.

The committed files (``mlp.onnx``, ``transformer_layer.onnx``, ``conv_block.onnx``,
``dw_separable.onnx``) are produced by this script with ``onnx.helper`` and seeded numpy
weights, opset 17. Running it twice gives byte-identical files, and
``tests/samples/test_samples.py`` checks that the committed bytes match a fresh build.

The ``build_*`` functions take the model dimensions, so bigger variants can be produced on
demand without committing them, e.g. a BERT-base-shaped encoder::

    python samples/build_samples.py --out /tmp/big --bert-base

Usage::

    python samples/build_samples.py [--out DIR] [--bert-base]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections import defaultdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# IR version 8 is the one that introduced opset 17; pinning it (rather than taking whatever
# the installed onnx writes by default) keeps the bytes stable across onnx upgrades and the
# files loadable by older runtimes.
IR_VERSION = 8
PRODUCER = "tilec-samples"
SAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))


class GraphBuilder:
    """Accumulates nodes and initializers; names every node ``<OpType>_<n>``.

    Node names are counted per op type so they are stable and readable (``MatMul_0``,
    ``MatMul_1``, ...) and tensor names are derived from node names, which keeps
    ``loc(...)`` diagnostics in the IR meaningful.
    """

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._counts: dict[str, int] = defaultdict(int)
        self._consts: dict[tuple, str] = {}

    def op(self, op_type: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        idx = self._counts[op_type]
        self._counts[op_type] += 1
        name = f"{op_type}_{idx}"
        out = out or f"{name}_out"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=name, **attrs))
        return out

    def init(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def const(self, value, dtype=np.float32) -> str:
        """A shared scalar/vector initializer, deduplicated by value."""
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            self._consts[key] = self.init(f"const_{len(self._consts)}", arr)
        return self._consts[key]

    # Seeded weights, scaled by 1/sqrt(fan_in) so activations stay O(1) through deep stacks
    # and fp32 comparisons against onnxruntime stay tight.
    def weight(self, name: str, shape: tuple[int, ...], fan_in: int) -> str:
        w = self.rng.standard_normal(shape).astype(np.float32) / np.float32(math.sqrt(fan_in))
        return self.init(name, w)

    def bias(self, name: str, n: int) -> str:
        return self.init(name, (0.1 * self.rng.standard_normal(n)).astype(np.float32))

    def batchnorm(self, x: str, prefix: str, c: int, eps: float = 1e-5) -> str:
        # Non-trivial running statistics so a wrong BN folding or axis shows up numerically.
        r = self.rng
        scale = self.init(f"{prefix}.scale", r.uniform(0.5, 1.5, c).astype(np.float32))
        shift = self.init(f"{prefix}.bias", (0.1 * r.standard_normal(c)).astype(np.float32))
        mean = self.init(f"{prefix}.mean", (0.1 * r.standard_normal(c)).astype(np.float32))
        var = self.init(f"{prefix}.var", r.uniform(0.5, 1.5, c).astype(np.float32))
        return self.op("BatchNormalization", [x, scale, shift, mean, var], epsilon=eps)

    def model(self, name: str, inputs, outputs, doc: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.inits)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name=PRODUCER,
            producer_version="1",
            ir_version=IR_VERSION,
            doc_string=doc,
        )
        return model


def _f32(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def build_mlp(dims=(256, 512, 256, 10), batch: int = 1, seed: int = 0) -> onnx.ModelProto:
    """``x [batch, dims[0]]`` -> (MatMul+Add+Relu)* -> MatMul+Add -> ``y [batch, dims[-1]]``."""
    b = GraphBuilder(seed)
    h = "x"
    n_layers = len(dims) - 1
    for i in range(n_layers):
        w = b.weight(f"fc{i}.weight", (dims[i], dims[i + 1]), dims[i])
        bias = b.bias(f"fc{i}.bias", dims[i + 1])
        last = i == n_layers - 1
        h = b.op("MatMul", [h, w])
        h = b.op("Add", [h, bias], out="y" if last else None)
        if not last:
            h = b.op("Relu", [h])
    return b.model(
        "mlp",
        [_f32("x", (batch, dims[0]))],
        [_f32("y", (batch, dims[-1]))],
        f"MLP {'-'.join(map(str, dims))}, seed {seed}",
    )


def _encoder_layer(b: GraphBuilder, x: str, li: int, seq: int, hidden: int, heads: int,
                   ffn: int, mask: str, eps: float) -> str:
    """One post-LN BERT encoder layer, written op by op as an unfused exporter would."""
    d = hidden // heads
    p = f"layer{li}"
    split_shape = b.const([1, seq, heads, d], np.int64)
    merge_shape = b.const([1, seq, hidden], np.int64)

    def proj(name: str, inp: str, n_in: int, n_out: int) -> str:
        w = b.weight(f"{p}.{name}.weight", (n_in, n_out), n_in)
        bias = b.bias(f"{p}.{name}.bias", n_out)
        return b.op("Add", [b.op("MatMul", [inp, w]), bias])

    q = b.op("Transpose", [b.op("Reshape", [proj("query", x, hidden, hidden), split_shape])],
             perm=[0, 2, 1, 3])                                   # [1, H, S, d]
    # K goes straight to [1, H, d, S] so QK^T is a plain batched MatMul.
    kt = b.op("Transpose", [b.op("Reshape", [proj("key", x, hidden, hidden), split_shape])],
              perm=[0, 2, 3, 1])                                  # [1, H, d, S]
    v = b.op("Transpose", [b.op("Reshape", [proj("value", x, hidden, hidden), split_shape])],
             perm=[0, 2, 1, 3])                                   # [1, H, S, d]
    scores = b.op("MatMul", [q, kt])                              # [1, H, S, S]
    scores = b.op("Div", [scores, b.const(math.sqrt(d))])
    scores = b.op("Add", [scores, mask])
    probs = b.op("Softmax", [scores], axis=-1)
    ctx = b.op("MatMul", [probs, v])                              # [1, H, S, d]
    ctx = b.op("Reshape", [b.op("Transpose", [ctx], perm=[0, 2, 1, 3]), merge_shape])
    attn = proj("attn_out", ctx, hidden, hidden)
    h = b.op("Add", [attn, x])
    h = b.op("LayerNormalization", [h, b.init(f"{p}.ln1.weight", b.rng.uniform(0.5, 1.5, hidden).astype(np.float32)),
                                    b.bias(f"{p}.ln1.bias", hidden)], axis=-1, epsilon=eps)
    # FFN with exact GELU spelled out as 0.5 * x * (1 + erf(x / sqrt(2))), the pattern the
    # legacy torch exporter emits for nn.GELU() before opset 20.
    f = proj("ffn_in", h, hidden, ffn)
    g = b.op("Erf", [b.op("Div", [f, b.const(math.sqrt(2.0))])])
    g = b.op("Mul", [b.op("Mul", [f, b.op("Add", [g, b.const(1.0)])]), b.const(0.5)])
    f = proj("ffn_out", g, ffn, hidden)
    h2 = b.op("Add", [f, h])
    return b.op("LayerNormalization", [h2, b.init(f"{p}.ln2.weight", b.rng.uniform(0.5, 1.5, hidden).astype(np.float32)),
                                       b.bias(f"{p}.ln2.bias", hidden)], axis=-1, epsilon=eps)


def build_transformer(layers: int = 1, seq: int = 32, hidden: int = 64, heads: int = 4,
                      ffn: int = 256, seed: int = 1, masked: int | None = None,
                      eps: float = 1e-12) -> onnx.ModelProto:
    """A stack of post-LN BERT encoder layers on ``x [1, seq, hidden]`` -> ``y``.

    The additive attention mask ``[1, 1, 1, seq]`` is an initializer: 0 for real tokens and
    -10000 for the last ``masked`` (default seq // 8) key positions, as BERT builds it from a
    padding mask.
    """
    if hidden % heads:
        raise ValueError(f"hidden {hidden} is not divisible by heads {heads}")
    b = GraphBuilder(seed)
    masked = seq // 8 if masked is None else masked
    mask = np.zeros((1, 1, 1, seq), np.float32)
    if masked:
        mask[..., seq - masked:] = -10000.0
    mask_name = b.init("attention_mask", mask)
    h = "x"
    for li in range(layers):
        h = _encoder_layer(b, h, li, seq, hidden, heads, ffn, mask_name, eps)
    # Rename the last node's output to the plain graph output name.
    b.nodes[-1].output[0] = "y"
    return b.model(
        "transformer",
        [_f32("x", (1, seq, hidden))],
        [_f32("y", (1, seq, hidden))],
        f"post-LN encoder: layers {layers}, seq {seq}, hidden {hidden}, heads {heads}, "
        f"ffn {ffn}, seed {seed}",
    )


def _conv(b: GraphBuilder, x: str, name: str, c_in: int, c_out: int, k: int, *, group: int = 1,
          stride: int = 1, pad: int = 0, bias: bool = False) -> str:
    w = b.weight(f"{name}.weight", (c_out, c_in // group, k, k), c_in // group * k * k)
    inputs = [x, w] + ([b.bias(f"{name}.bias", c_out)] if bias else [])
    return b.op("Conv", inputs, kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2,
                dilations=[1, 1], group=group)


def build_conv_block(channels: int = 16, size: int = 32, seed: int = 2) -> onnx.ModelProto:
    """ResNet basic block: Conv3x3+BN+Relu, Conv3x3+BN, residual Add, Relu.

    The convs have no bias (as in torchvision's ResNet), so Conv has only two inputs here;
    ``dw_separable`` covers the three-input form.
    """
    b = GraphBuilder(seed)
    h = _conv(b, "x", "conv1", channels, channels, 3, pad=1)
    h = b.op("Relu", [b.batchnorm(h, "bn1", channels)])
    h = _conv(b, h, "conv2", channels, channels, 3, pad=1)
    h = b.batchnorm(h, "bn2", channels)
    h = b.op("Add", [h, "x"])
    b.op("Relu", [h], out="y")
    shape = (1, channels, size, size)
    return b.model("conv_block", [_f32("x", shape)], [_f32("y", shape)],
                   f"ResNet basic block, channels {channels}, size {size}, seed {seed}")


def build_dw_separable(channels: int = 32, out_channels: int = 64, size: int = 28,
                       seed: int = 3) -> onnx.ModelProto:
    """MobileNet-style block: depthwise Conv3x3+BN+Clip(0,6), pointwise Conv1x1+BN+Relu, GAP."""
    b = GraphBuilder(seed)
    h = _conv(b, "x", "dw", channels, channels, 3, group=channels, pad=1, bias=True)
    h = b.batchnorm(h, "bn_dw", channels)
    # Opset >= 11 takes Clip's bounds as (optional) inputs rather than attributes.
    h = b.op("Clip", [h, b.const(0.0), b.const(6.0)])
    h = _conv(b, h, "pw", channels, out_channels, 1, bias=True)
    h = b.op("Relu", [b.batchnorm(h, "bn_pw", out_channels)])
    b.op("GlobalAveragePool", [h], out="y")
    return b.model("dw_separable", [_f32("x", (1, channels, size, size))],
                   [_f32("y", (1, out_channels, 1, 1))],
                   f"depthwise-separable block, {channels}->{out_channels}, size {size}, seed {seed}")


# The committed samples: file name -> zero-argument builder.
SAMPLES = {
    "mlp.onnx": build_mlp,
    "transformer_layer.onnx": build_transformer,
    "conv_block.onnx": build_conv_block,
    "dw_separable.onnx": build_dw_separable,
}


def save(model: onnx.ModelProto, path: str, external_data: bool = False) -> None:
    onnx.checker.check_model(model, full_check=True)
    if external_data:
        # Models over protobuf's 2 GB limit, or just big ones, keep weights beside the graph.
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data")
    else:
        with open(path, "wb") as f:
            f.write(model.SerializeToString(deterministic=True))


def build_all(out_dir: str) -> list[str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for fname, fn in SAMPLES.items():
        path = os.path.join(out_dir, fname)
        save(fn(), path)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=SAMPLES_DIR, help="output folder (default: the samples folder)")
    ap.add_argument("--bert-base", action="store_true",
                    help="also write bert_base.onnx (12 layers, seq 128, hidden 768, 12 heads, "
                         "FFN 3072; ~340 MB, weights in bert_base.onnx.data); not committed")
    args = ap.parse_args(argv)
    for p in build_all(args.out):
        print(p)
    if args.bert_base:
        p = os.path.join(args.out, "bert_base.onnx")
        save(build_transformer(layers=12, seq=128, hidden=768, heads=12, ffn=3072), p,
             external_data=True)
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
