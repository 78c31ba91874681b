"""Shared building blocks for the model zoo: a weight-mode-aware GraphBuilder and layers.

``ZooBuilder`` extends ``samples.build_samples.GraphBuilder`` with

- three weight modes: ``"random"`` (seeded, the default, what gets saved), ``"zeros"``
  (cheap, same graph) and ``"meta"`` (learned tensors get their dims only, no data, so a
  BERT-base graph with 110M parameters builds in milliseconds for counting and shape
  inference);
- parameter accounting: ``n_params`` counts learned tensors the way torch's
  ``sum(p.numel() for p in model.parameters())`` does (BatchNorm running statistics and
  constants are buffers, not parameters), so counts compare against the papers;
- multi-output nodes (``Split``), ``Loop`` / ``If`` bodies (``subgraph``) and the layers
  the zoo shares (linear, conv, norms, GELU, multi-head attention).

Only ops tilec's importer supports are used (see ``ALLOWED_OPS``).
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from samples.build_samples import GraphBuilder

WEIGHT_MODES = ("random", "zeros", "meta")
ALLOWED_OPS = frozenset("""
Add Sub Mul Div Pow Sqrt Exp Log Tanh Sigmoid Relu LeakyRelu Erf Neg Abs Reciprocal Min Max
Clip Where Equal Less Greater Not And Or Cast MatMul Gemm Conv ConvTranspose MaxPool
AveragePool GlobalAveragePool BatchNormalization LayerNormalization Softmax ReduceMean
ReduceSum ReduceMax Reshape Transpose Flatten Squeeze Unsqueeze Concat Split Slice Gather
Expand Tile Pad Identity HardSigmoid HardSwish Softplus ArgMax
LSTM GRU Loop If""".split())
# Where "meta" tensors point. Nothing is ever written there; a meta model is for counting
# and shape inference only and cannot be saved or run.
META_LOCATION = "__meta__"


def f32(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def i64(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, list(shape))


class ZooBuilder(GraphBuilder):
    """GraphBuilder with weight modes, parameter accounting and the zoo's layers."""

    def __init__(self, seed: int, weights: str = "random"):
        if weights not in WEIGHT_MODES:
            raise ValueError(f"weights must be one of {WEIGHT_MODES}, not {weights!r}")
        super().__init__(seed)
        self.weights = weights
        self.n_params = 0

    # -- tensors ---------------------------------------------------------------------
    def init(self, name: str, value: np.ndarray) -> str:
        # GraphBuilder.init goes through np.ascontiguousarray, which turns a 0-d array into
        # shape [1]; the zoo needs true scalars (e.g. a Gather index that drops the axis).
        self.inits.append(numpy_helper.from_array(np.array(value, order="C"), name))
        return name

    def tensor(self, name: str, shape, make, *, counted: int | None = None) -> str:
        """A float tensor whose data ``make()`` draws lazily (not at all in meta mode).

        ``counted`` is how many learned parameters it stands for: its size by default,
        0 for buffers, or something else for a tensor derived from a smaller learned one
        (Swin's expanded relative-position bias).
        """
        shape = tuple(int(s) for s in shape)
        self.n_params += math.prod(shape) if counted is None else counted
        if self.weights == "meta":
            t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape)
            t.data_location = TensorProto.EXTERNAL
            t.external_data.add(key="location", value=META_LOCATION)
            self.inits.append(t)
            return name
        if self.weights == "zeros":
            return self.init(name, np.zeros(shape, np.float32))
        value = np.asarray(make(), dtype=np.float32)
        assert value.shape == shape, (name, value.shape, shape)
        return self.init(name, value)

    def weight(self, name, shape, fan_in):
        # Same distribution as GraphBuilder.weight: N(0, 1/fan_in) keeps activations O(1).
        return self.tensor(name, shape, lambda: self.rng.standard_normal(shape)
                           / np.float32(math.sqrt(fan_in)))

    def bias(self, name, n):
        return self.tensor(name, (n,), lambda: 0.1 * self.rng.standard_normal(n))

    def gain(self, name, shape):
        """A norm scale around 1 (non-trivial so a wrong axis shows up numerically)."""
        return self.tensor(name, shape, lambda: self.rng.uniform(0.5, 1.5, shape))

    def buffer(self, name, shape, make):
        return self.tensor(name, shape, make, counted=0)

    def batchnorm(self, x, prefix, c, eps=1e-5):
        scale = self.gain(f"{prefix}.weight", (c,))
        shift = self.bias(f"{prefix}.bias", c)
        mean = self.buffer(f"{prefix}.running_mean", (c,),
                           lambda: 0.1 * self.rng.standard_normal(c))
        var = self.buffer(f"{prefix}.running_var", (c,), lambda: self.rng.uniform(0.5, 1.5, c))
        return self.op("BatchNormalization", [x, scale, shift, mean, var], epsilon=eps)

    def ints(self, value) -> str:
        return self.const(value, np.int64)

    def ops(self, op_type: str, inputs: list[str], n_out: int, **attrs) -> list[str]:
        """A node with ``n_out`` outputs (``Split``), named like ``GraphBuilder.op``."""
        idx = self._counts[op_type]
        self._counts[op_type] += 1
        name = f"{op_type}_{idx}"
        outs = [f"{name}_out{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=name, **attrs))
        return outs

    def split(self, x: str, sizes: list[int], axis: int) -> list[str]:
        return self.ops("Split", [x, self.ints(sizes)], len(sizes), axis=axis)

    @contextmanager
    def subgraph(self):
        """Nodes built inside the ``with`` go to a fresh list (yielded), not the main graph:
        the body of a ``Loop`` or a branch of an ``If``. Initializers and constants stay in
        the main graph, which the body reads as outer-scope values."""
        saved, self.nodes = self.nodes, []
        try:
            yield self.nodes
        finally:
            self.nodes = saved

    def finish(self, name, inputs, outputs, doc) -> onnx.ModelProto:
        """The model, with its parameter count recorded in ``metadata_props``."""
        model = self.model(name, inputs, outputs, doc)
        helper.set_model_props(model, {"tilec.zoo.params": str(self.n_params)})
        return model

    # -- layers ----------------------------------------------------------------------
    def linear(self, x, prefix, n_in, n_out, bias=True):
        """``x @ W + b`` as MatMul+Add, what exporters emit for nn.Linear on 3-D inputs."""
        h = self.op("MatMul", [x, self.weight(f"{prefix}.weight", (n_in, n_out), n_in)])
        return self.op("Add", [h, self.bias(f"{prefix}.bias", n_out)]) if bias else h

    def gemm(self, x, prefix, n_in, n_out):
        """nn.Linear on a 2-D input, as Gemm with a transposed [out, in] weight."""
        w = self.weight(f"{prefix}.weight", (n_out, n_in), n_in)
        return self.op("Gemm", [x, w, self.bias(f"{prefix}.bias", n_out)], transB=1)

    def conv(self, x, prefix, c_in, c_out, k, *, stride=1, pad=None, group=1, bias=False):
        """Conv of any rank: ``k`` is an int (2-D square) or a tuple of kernel sizes."""
        ks = (k, k) if isinstance(k, int) else tuple(k)
        pads = [kk // 2 for kk in ks] if pad is None else [pad] * len(ks)
        strides = [stride] * len(ks) if isinstance(stride, int) else list(stride)
        w = self.weight(f"{prefix}.weight", (c_out, c_in // group, *ks),
                        c_in // group * math.prod(ks))
        inputs = [x, w] + ([self.bias(f"{prefix}.bias", c_out)] if bias else [])
        return self.op("Conv", inputs, kernel_shape=list(ks), pads=pads + pads,
                       strides=strides, dilations=[1] * len(ks), group=group)

    def layernorm(self, x, prefix, n, eps=1e-5):
        return self.op("LayerNormalization",
                       [x, self.gain(f"{prefix}.weight", (n,)), self.bias(f"{prefix}.bias", n)],
                       axis=-1, epsilon=eps)

    def gelu(self, x):
        """Exact GELU as the pre-opset-20 exporters spell it: 0.5 * x * (1 + erf(x/sqrt 2))."""
        g = self.op("Erf", [self.op("Div", [x, self.const(math.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.op("Add", [g, self.const(1.0)])]),
                               self.const(0.5)])

    def swish(self, x):
        return self.op("Mul", [x, self.op("Sigmoid", [x])])

    def relu6(self, x):
        return self.op("Clip", [x, self.const(0.0), self.const(6.0)])

    def attention(self, x, prefix, batch, seq, hidden, heads, *, fused_qkv=False,
                  adds=()):
        """Multi-head self-attention on ``x [batch, seq, hidden]`` -> same shape.

        ``fused_qkv`` uses one [hidden, 3*hidden] projection split three ways (timm/Swin);
        otherwise separate query/key/value projections (BERT). ``adds`` are tensors added
        to the scaled scores [batch, heads, seq, seq] before Softmax (masks, biases).
        """
        d = hidden // heads
        split_shape = self.ints([batch, seq, heads, d])
        if fused_qkv:
            qkv = self.linear(x, f"{prefix}.qkv", hidden, 3 * hidden)
            q, k, v = self.split(qkv, [hidden] * 3, axis=-1)
        else:
            q, k, v = (self.linear(x, f"{prefix}.{n}", hidden, hidden)
                       for n in ("query", "key", "value"))
        q = self.op("Transpose", [self.op("Reshape", [q, split_shape])], perm=[0, 2, 1, 3])
        # K goes straight to [B, H, d, S] so Q K^T is a plain batched MatMul.
        kt = self.op("Transpose", [self.op("Reshape", [k, split_shape])], perm=[0, 2, 3, 1])
        v = self.op("Transpose", [self.op("Reshape", [v, split_shape])], perm=[0, 2, 1, 3])
        s = self.op("Div", [self.op("MatMul", [q, kt]), self.const(math.sqrt(d))])
        for a in adds:
            s = self.op("Add", [s, a])
        ctx = self.op("MatMul", [self.op("Softmax", [s], axis=-1), v])
        ctx = self.op("Reshape", [self.op("Transpose", [ctx], perm=[0, 2, 1, 3]),
                                  self.ints([batch, seq, hidden])])
        return self.linear(ctx, f"{prefix}.proj", hidden, hidden)
