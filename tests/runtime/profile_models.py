"""Small ONNX models with dynamic dims for the shape-profile tests (built with onnx.helper, seeded)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from samples.build_samples import build_mlp


def dynamic_mlp() -> onnx.ModelProto:
    """samples' MLP (16 -> 32 -> 8) with a dynamic batch dim named ``batch``."""
    model = build_mlp((16, 32, 8), seed=3)
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    return model


class _Graph:
    """Nodes and seeded initializers, named in order."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def op(self, op_type: str, inputs: list, out: str | None = None, **attrs) -> str:
        self.n += 1
        out = out or f"t{self.n}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self.n}", **attrs))
        return out

    def init(self, value, name: str | None = None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def weight(self, *shape) -> str:
        return self.init((self.rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32))

    def linear(self, x: str, d_in: int, d_out: int) -> str:
        return self.op("Add", [self.op("MatMul", [x, self.weight(d_in, d_out)]), self.weight(d_out)])

    def layernorm(self, x: str, d: int) -> str:
        return self.op("LayerNormalization", [x, self.init(np.ones(d, np.float32)),
                                              self.init(np.zeros(d, np.float32))], axis=-1, epsilon=1e-12)


def bert_encoder(layers: int = 2, d: int = 64, heads: int = 4, ffn: int = 128, vocab: int = 50,
                 max_pos: int = 64, seed: int = 7) -> onnx.ModelProto:
    """A BERT-style encoder: ``input_ids`` and ``attention_mask`` (int64 [batch, seq]); word + position
    embeddings (positions from ``Range(0, Shape(input_ids)[1])``), post-LN layers of masked multi-head
    attention and an erf-GELU FFN; outputs ``last_hidden_state`` [batch, seq, d] and a Tanh pooler of the
    first token [batch, d]."""
    g, dh = _Graph(seed), d // heads
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.init(np.int64(1))], axis=0)
    pos_ids = g.op("Range", [g.init(np.int64(0)), seq, g.init(np.int64(1))])
    h = g.op("Add", [g.op("Gather", [g.weight(vocab, d), "input_ids"], axis=0),
                     g.op("Gather", [g.weight(max_pos, d), pos_ids], axis=0)])
    h = g.layernorm(h, d)
    m = g.op("Unsqueeze", [g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT), g.init(np.int64([1, 2]))])
    mask = g.op("Mul", [g.op("Sub", [g.init(np.float32(1)), m]), g.init(np.float32(-10000))])
    split_heads = g.init(np.int64([0, 0, heads, dh]))
    for _ in range(layers):
        q, k, v = (g.op("Reshape", [g.linear(h, d, d), split_heads]) for _ in range(3))
        q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
        k = g.op("Transpose", [k], perm=[0, 2, 3, 1])
        v = g.op("Transpose", [v], perm=[0, 2, 1, 3])
        s = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), g.init(np.float32(dh ** -0.5))]), mask])
        ctx = g.op("MatMul", [g.op("Softmax", [s], axis=-1), v])
        ctx = g.op("Reshape", [g.op("Transpose", [ctx], perm=[0, 2, 1, 3]), g.init(np.int64([0, 0, d]))])
        h = g.layernorm(g.op("Add", [g.linear(ctx, d, d), h]), d)
        f = g.linear(h, d, ffn)
        gelu = g.op("Mul", [g.op("Mul", [f, g.init(np.float32(0.5))]),
                            g.op("Add", [g.op("Erf", [g.op("Div", [f, g.init(np.float32(2 ** 0.5))])]),
                                         g.init(np.float32(1))])])
        h = g.layernorm(g.op("Add", [g.linear(gelu, ffn, d), h]), d)
    g.op("Identity", [h], out="last_hidden_state")
    first = g.op("Gather", [h, g.init(np.int64(0))], axis=1)
    g.op("Tanh", [g.op("Gemm", [first, g.weight(d, d), g.weight(d)])], out="pooler_output")
    dyn = ["batch", "seq"]
    graph = helper.make_graph(
        g.nodes, "bert_encoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, dyn),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dyn)],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, dyn + [d]),
         helper.make_tensor_value_info("pooler_output", TensorProto.FLOAT, ["batch", d])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def bert_feeds(batch: int, seq: int, seed: int = 0) -> dict:
    """Token ids below the encoder's vocab and a 0/1 mask with some padding at the end of each row."""
    rng = np.random.default_rng(seed)
    mask = np.ones((batch, seq), np.int64)
    for row in range(batch):
        mask[row, seq - int(rng.integers(0, seq // 2)):] = 0
    return {"input_ids": rng.integers(0, 50, (batch, seq)).astype(np.int64), "attention_mask": mask}
