"""A seeded generator of valid random ONNX graphs (NNSmith style) over the ops tilec supports.

Each op has a small builder that reads one tensor of the pool (or makes a fresh input of the rank it
needs), adds the nodes and constants it takes, and returns the new tensor with its shape, so every graph is
valid by construction. Builders whose ops :func:`tilec.frontend.registry.supported_ops` lacks are skipped:
the generator grows with the frontend. Values are kept in a tame range (domains of log, sqrt, division and
pow are guarded; discontinuous ops only read graph inputs), so onnxruntime and tilec may be compared with
a tight tolerance.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

DIMS = (1, 2, 3, 5, 7)


@dataclass
class GenGraph:
    model: onnx.ModelProto
    inputs: dict
    seed: int
    ops: list = field(default_factory=list)


class _Pool:
    """The graph being built: nodes, initializers, inputs, and the tensors ops may read."""

    def __init__(self, rng: random.Random, opset: int, supported: set, max_dim: int, dims=DIMS,
                 max_elements: int | None = None):
        self.rng, self.opset, self.supported, self.max_dim = rng, opset, supported, max_dim
        self.dims, self.max_elements = dims, max_elements
        self.nodes, self.inits, self.inputs = [], [], []
        self.tensors = []   # (name, shape, exact): exact = a graph input, safe for discontinuous ops
        self.count = 0
        self.ops = []

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def shape(self, rank: int) -> tuple:
        choices = [d for d in self.dims if d <= self.max_dim]
        while True:  # redraw (deterministically) until the tensor is small enough to emulate cheaply
            shape = tuple(self.rng.choice(choices) for _ in range(rank))
            if self.max_elements is None or int(np.prod(shape)) <= self.max_elements:
                return shape

    def new_input(self, shape: tuple) -> str:
        name = self.fresh("in")
        self.inputs.append(h.make_tensor_value_info(name, T.FLOAT, list(shape)))
        self.tensors.append((name, tuple(shape), True))
        return name

    def const(self, array, prefix: str = "c") -> str:
        name = self.fresh(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def fconst(self, shape, low=-1.0, high=1.0) -> str:
        gen = np.random.default_rng(self.rng.randrange(1 << 30))
        return self.const(gen.uniform(low, high, size=shape).astype(np.float32))

    def node(self, op: str, inputs: list, shape: tuple, **attrs) -> tuple:
        out = self.fresh("t")
        self.nodes.append(h.make_node(op, inputs, [out], name=f"{op}_{self.count}", **attrs))
        self.ops.append(op)
        return out, tuple(shape)

    def pick(self, rank=None, min_rank=1, exact=False) -> tuple:
        cands = [t for t in self.tensors if (rank is None or len(t[1]) == rank) and len(t[1]) >= min_rank
                 and (t[2] or not exact)]
        if not cands or self.rng.random() < 0.1:
            return self.new_input(self.shape(rank if rank is not None else self.rng.randint(max(min_rank, 1), 4))), \
                None
        t = self.rng.choice(cands[-6:])  # recent tensors: deeper chains
        return t[0], t[1]

    def positive(self, x, shape) -> tuple:
        """|x| + 0.5: a tensor safe for log, sqrt, reciprocal, division and pow."""
        a, _ = self.node("Abs", [x], shape)
        return self.node("Add", [a, self.const(np.float32(0.5))], shape)


def _pick(p: _Pool, **kw) -> tuple:
    name, shape = p.pick(**kw)
    if shape is None:
        shape = p.tensors[-1][1]
    return name, shape


def _broadcast_partner(p: _Pool, shape: tuple, grow: bool = True) -> tuple:
    """A shape that broadcasts with ``shape``: a suffix, some dims 1, sometimes with extra leading dims."""
    rng = p.rng
    k = rng.randint(0, len(shape))
    other = [d if rng.random() < 0.6 else 1 for d in shape[len(shape) - k:]]
    if grow and rng.random() < 0.15 and len(shape) < 4:
        other = [rng.choice(DIMS[:3])] + [d for d in shape] if k == len(shape) else other
    return tuple(other)


# --- builders: fn(pool) -> (name, shape) -----------------------------------------------------------------
SMOOTH_UNARY = ["Relu", "Sigmoid", "Tanh", "Abs", "Neg", "Softsign", "Softplus", "Erf", "Sin", "Cos", "Mish",
                "Elu", "Selu", "Celu", "LeakyRelu", "HardSigmoid", "HardSwish"]
POSITIVE_UNARY = ["Log", "Sqrt", "Reciprocal"]
EXACT_UNARY = ["Floor", "Ceil", "Round", "Sign", "ThresholdedRelu"]
BINARY = ["Add", "Sub", "Mul", "Max", "Min"]
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2", "ReduceSumSquare",
          "ReduceLogSumExp", "ReduceProd"]


def b_unary(p, op):
    x, s = _pick(p, exact=op in EXACT_UNARY)
    if op == "Exp":
        x, s = p.node("Tanh", [x], s)
    if op in POSITIVE_UNARY:
        x, s = p.positive(x, s)
    attrs = {}
    if op in ("LeakyRelu", "Elu", "Celu") and p.rng.random() < 0.5:
        attrs["alpha"] = p.rng.choice([0.1, 0.5, 2.0])
    return p.node(op, [x], s, **attrs)


def b_binary(p, op):
    x, s = _pick(p)
    other = _broadcast_partner(p, s)
    if p.rng.random() < 0.5:
        y = p.fconst(other)
    else:
        y = p.new_input(other)
    if p.rng.random() < 0.3:
        x, y = y, x
    out = np.broadcast_shapes(s, other)
    if op in ("Div", "Pow"):
        y, _ = p.positive(y, other)
        if op == "Pow":
            x, _ = p.positive(x, s)
    return p.node(op, [x, y], out)


def b_variadic(p, op):
    x, s = _pick(p)
    ys = [p.fconst(_broadcast_partner(p, s, grow=False)) for _ in range(p.rng.randint(1, 3))]
    out = np.broadcast_shapes(s, *[tuple(i.dims) for i in p.inits[-len(ys):]])
    return p.node(op, [x] + ys, out)


def b_where(p, op):
    x, s = _pick(p)
    y = p.fconst(_broadcast_partner(p, s))
    ys = tuple(p.inits[-1].dims)
    out = np.broadcast_shapes(s, ys)
    c, _ = p.node("Greater", [x, y], out)
    return p.node("Where", [c, x, y], out)  # max(x, y): continuous even where x ≈ y


def b_clip(p, op):
    x, s = _pick(p)
    lo = p.const(np.float32(p.rng.choice([-0.5, 0.0])))
    hi = p.const(np.float32(p.rng.choice([0.5, 1.0])))
    return p.node("Clip", [x, lo, hi], s)


def b_prelu(p, op):
    x, s = _pick(p)
    slope = p.fconst(_broadcast_partner(p, s, grow=False), 0.0, 0.5)  # slope broadcasts *to* x
    return p.node("PRelu", [x, slope], np.broadcast_shapes(s, tuple(p.inits[-1].dims)))


def _axes(p, rank) -> list:
    k = p.rng.randint(1, rank)
    axes = sorted(p.rng.sample(range(rank), k))
    return [a - rank if p.rng.random() < 0.3 else a for a in axes]


def b_reduce(p, op):
    x, s = _pick(p)
    if op == "ReduceLogSum":
        x, s = p.positive(x, s)
    keep = p.rng.choice([0, 1])
    axes = _axes(p, len(s)) if p.rng.random() < 0.85 else None
    norm = sorted(a % len(s) for a in axes) if axes else list(range(len(s)))
    out = tuple(1 if i in norm else d for i, d in enumerate(s)) if keep else \
        tuple(d for i, d in enumerate(s) if i not in norm)
    as_input = p.opset >= 18 or (op == "ReduceSum" and p.opset >= 13)
    if axes is None:
        return p.node(op, [x], out, keepdims=keep)
    if as_input:
        return p.node(op, [x, p.const(np.array(axes, np.int64), "axes")], out, keepdims=keep)
    return p.node(op, [x], out, keepdims=keep, axes=axes)


def b_softmax(p, op):
    x, s = _pick(p)
    return p.node(op, [x], s, axis=p.rng.randint(-len(s), len(s) - 1))


def _tame(p, x, s) -> tuple:
    """tanh(x) unless ``x`` is a graph input. Normalisations read this: after a large reduction, values like
    4426.55 ± 1e-3 make onnxruntime's variance (E[x²] − E[x]² in f32) pure rounding noise, so its answer,
    not tilec's, is wrong (found by seed 5240 of the pipeline fuzzer)."""
    if any(t[0] == x and t[2] for t in p.tensors):
        return x, s
    return p.node("Tanh", [x], s)


def b_layer_norm(p, op):
    x, s = _tame(p, *_pick(p))
    axis = p.rng.randint(-len(s), len(s) - 1)
    norm = s[axis % len(s):]
    return p.node(op, [x, p.fconst(norm, 0.5, 1.5), p.fconst(norm)], s, axis=axis, epsilon=1e-5)


def b_batch_norm(p, op):
    x, s = _pick(p, min_rank=2)
    c = (s[1],)
    return p.node(op, [x, p.fconst(c, 0.5, 1.5), p.fconst(c), p.fconst(c), p.fconst(c, 0.5, 2.0)], s)


def b_instance_norm(p, op):
    x, s = _tame(p, *_pick(p, min_rank=3))
    c = (s[1],)
    return p.node(op, [x, p.fconst(c, 0.5, 1.5), p.fconst(c)], s, epsilon=1e-5)


def b_cast(p, op):
    x, s = _pick(p)
    d, _ = p.node("Cast", [x], s, to=T.DOUBLE)
    return p.node("Cast", [d], s, to=T.FLOAT)


def b_gelu(p, op):
    x, s = _pick(p)
    return p.node(op, [x], s, approximate=p.rng.choice(["none", "tanh"]))


def b_transpose(p, op):
    x, s = _pick(p, min_rank=2)
    perm = list(range(len(s)))
    p.rng.shuffle(perm)
    return p.node(op, [x], tuple(s[i] for i in perm), perm=perm)


def b_reshape(p, op):
    x, s = _pick(p)
    n = int(np.prod(s))
    shape = [n] if p.rng.random() < 0.4 else [1, n, 1][:p.rng.randint(2, 3)]
    target = list(shape)
    if p.rng.random() < 0.3:
        target[p.rng.randrange(len(target))] = -1
    return p.node(op, [x, p.const(np.array(target, np.int64), "shape")], tuple(shape))


def b_concat(p, op):
    x, s = _pick(p)
    axis = p.rng.randrange(len(s))
    other = list(s)
    other[axis] = p.rng.choice(DIMS[:3])
    y = p.fconst(tuple(other))
    out = list(s)
    out[axis] += other[axis]
    return p.node(op, [x, y], tuple(out), axis=axis - len(s) if p.rng.random() < 0.3 else axis)


def b_slice(p, op):
    x, s = _pick(p)
    axis = p.rng.randrange(len(s))
    d = s[axis]
    step = p.rng.choice([1, 1, 2, -1])
    if step > 0:
        start = p.rng.randrange(d)
        end = p.rng.randint(start + 1, d + 3)  # past the end is clamped
        n = len(range(start, min(end, d), step))
    else:
        start, end = d - 1, -d - 5   # the whole axis reversed (end clamps to -1)
        n = d
    out = list(s)
    out[axis] = n
    ins = [x] + [p.const(np.array([v], np.int64), "s") for v in (start, end, axis, step)]
    return p.node(op, ins, tuple(out))


def b_matmul(p, op):
    x, s = _pick(p, min_rank=2)
    n = p.rng.choice(DIMS)
    w = p.fconst((s[-1], n)) if p.rng.random() < 0.7 else p.new_input((s[-1], n))
    return p.node(op, [x, w], s[:-1] + (n,))


def _conv_out(size, k, stride, pad0, pad1, dil):
    return (size + pad0 + pad1 - dil * (k - 1) - 1) // stride + 1


def b_conv(p, op):
    x, s = _pick(p, rank=4)
    n, c, hh, ww = s
    rng = p.rng
    group = rng.choice([g for g in (1, c) if c % g == 0])
    f = group * rng.choice([1, 2]) if group > 1 else rng.choice(DIMS)
    k = [rng.choice([1, 2, 3]) for _ in range(2)]
    strides = [rng.choice([1, 2]) for _ in range(2)]
    dil = [rng.choice([1, 1, 2]) for _ in range(2)]
    pads = [rng.randint(0, kk - 1) for kk in k] * 2
    out_hw = [_conv_out(d, kk, st, pads[i], pads[i + 2], dl) for i, (d, kk, st, dl) in
              enumerate(zip((hh, ww), k, strides, dil))]
    if min(out_hw) < 1:
        return p.node("Relu", [x], s)
    ins = [x, p.fconst((f, c // group, *k))] + ([p.fconst((f,))] if rng.random() < 0.5 else [])
    return p.node(op, ins, (n, f, *out_hw), group=group, kernel_shape=k, strides=strides, pads=pads,
                  dilations=dil)


def b_pool(p, op):
    x, s = _pick(p, rank=4)
    if op.startswith("Global"):
        return p.node(op, [x], s[:2] + (1, 1))
    k = [p.rng.choice([1, 2, 3]) for _ in range(2)]
    strides = [p.rng.choice([1, 2]) for _ in range(2)]
    pads = [p.rng.randint(0, kk // 2) for kk in k] * 2
    out_hw = [_conv_out(d, kk, st, pads[i], pads[i + 2], 1) for i, (d, kk, st) in
              enumerate(zip(s[2:], k, strides))]
    if min(out_hw) < 1:
        return p.node("Relu", [x], s)
    attrs = {"count_include_pad": p.rng.choice([0, 1])} if op == "AveragePool" else {}
    return p.node(op, [x], s[:2] + tuple(out_hw), kernel_shape=k, strides=strides, pads=pads, **attrs)


def b_gemm(p, op):
    x, s = _pick(p, rank=2)
    rng = p.rng
    trans_a, trans_b = rng.choice([0, 1]), rng.choice([0, 1])
    m, k = (s[1], s[0]) if trans_a else s
    n = rng.choice(DIMS)
    b = p.fconst((n, k) if trans_b else (k, n))
    ins = [x, b]
    if rng.random() < 0.6:
        ins.append(p.fconst(rng.choice([(m, n), (n,), (1, n), (m, 1), ()])))
    attrs = {"transA": trans_a, "transB": trans_b}
    if rng.random() < 0.4:
        attrs.update(alpha=rng.choice([0.5, 2.0]), beta=rng.choice([0.0, 0.5, 1.0]))
    return p.node(op, ins, (m, n), **attrs)


def b_gather(p, op):
    x, s = _pick(p)
    axis = p.rng.randrange(len(s))
    d = s[axis]
    shape = p.rng.choice([(), (p.rng.randint(1, 4),), (2, p.rng.randint(1, 3))])
    gen = np.random.default_rng(p.rng.randrange(1 << 30))
    idx = gen.integers(-d, d, size=shape).astype(np.int64)  # negative indices count from the end
    out = s[:axis] + tuple(shape) + s[axis + 1:]
    return p.node(op, [x, p.const(idx, "idx")], out, axis=axis - len(s) if p.rng.random() < 0.3 else axis)


def b_expand(p, op):
    x, s = _pick(p)
    target = [d if d != 1 else p.rng.choice([1, 2, 3]) for d in s]
    if len(s) < 4 and p.rng.random() < 0.3:
        target = [p.rng.choice([1, 2])] + target
    return p.node(op, [x, p.const(np.array(target, np.int64), "shape")], np.broadcast_shapes(s, tuple(target)))


def b_flatten(p, op):
    x, s = _pick(p)
    axis = p.rng.randint(0, len(s))
    return p.node(op, [x], (int(np.prod(s[:axis])), int(np.prod(s[axis:]))), axis=axis)


def b_unsqueeze(p, op):
    x, s = _pick(p)
    if len(s) >= 4:
        return p.node("Relu", [x], s)
    axis = p.rng.randint(-len(s) - 1, len(s))
    out = list(s)
    out.insert(axis % (len(s) + 1), 1)
    return p.node(op, [x, p.const(np.array([axis], np.int64), "axes")], tuple(out))


def b_pad(p, op):
    x, s = _pick(p)
    rng = p.rng
    mode = rng.choice(["constant", "constant", "edge", "reflect"])
    pads = [rng.randint(0, min(2, d - 1) if mode == "reflect" else 2) for d in s + s]
    out = tuple(d + pads[i] + pads[i + len(s)] for i, d in enumerate(s))
    ins = [x, p.const(np.array(pads, np.int64), "pads")]
    if mode == "constant" and rng.random() < 0.5:
        ins.append(p.const(np.float32(rng.choice([0.5, -1.0]))))
    return p.node(op, ins, out, mode=mode)


def b_tile(p, op):
    x, s = _pick(p)
    reps = [p.rng.choice([1, 1, 2]) for _ in s]
    return p.node(op, [x, p.const(np.array(reps, np.int64), "reps")], tuple(d * r for d, r in zip(s, reps)))


def b_cumsum(p, op):
    x, s = _pick(p)
    axis = p.rng.randint(-len(s), len(s) - 1)
    return p.node(op, [x, p.const(np.array(axis, np.int64), "axis")], s,
                  exclusive=p.rng.choice([0, 1]), reverse=p.rng.choice([0, 1]))


def b_trilu(p, op):
    x, s = _pick(p, min_rank=2)
    ins = [x] + ([p.const(np.array(p.rng.randint(-2, 2), np.int64), "k")] if p.rng.random() < 0.5 else [])
    return p.node(op, ins, s, upper=p.rng.choice([0, 1]))


BUILDERS = {op: (b_unary, ()) for op in SMOOTH_UNARY + POSITIVE_UNARY + EXACT_UNARY + ["Exp"]}
BUILDERS.update({op: (b_binary, ()) for op in BINARY + ["Div", "Pow"]})
BUILDERS.update({op: (b_reduce, ()) for op in REDUCE + ["ReduceLogSum"]})
BUILDERS.update({
    "Sum": (b_variadic, ()), "Mean": (b_variadic, ()), "Where": (b_where, ("Greater",)), "Clip": (b_clip, ()),
    "PRelu": (b_prelu, ()), "Softmax": (b_softmax, ()), "LogSoftmax": (b_softmax, ()),
    "LayerNormalization": (b_layer_norm, ()), "BatchNormalization": (b_batch_norm, ()),
    "InstanceNormalization": (b_instance_norm, ()), "Cast": (b_cast, ()), "Gelu": (b_gelu, ()),
    "Transpose": (b_transpose, ()), "Reshape": (b_reshape, ()), "Concat": (b_concat, ()), "Slice": (b_slice, ()),
    "MatMul": (b_matmul, ()), "Conv": (b_conv, ()), "MaxPool": (b_pool, ()), "AveragePool": (b_pool, ()),
    "GlobalAveragePool": (b_pool, ()), "GlobalMaxPool": (b_pool, ()),
    "Gemm": (b_gemm, ()), "Gather": (b_gather, ()), "Expand": (b_expand, ()), "Flatten": (b_flatten, ()),
    "Unsqueeze": (b_unsqueeze, ()), "Pad": (b_pad, ()), "Tile": (b_tile, ()), "CumSum": (b_cumsum, ()),
    "Trilu": (b_trilu, ()),
})
ABS_ADD = ("Abs", "Add")  # every guarded builder uses these
MIN_SINCE = {"Gelu": 20, "LayerNormalization": 17, "Mish": 18}


def available_ops(opset: int, supported=None) -> list:
    """Ops the generator may use: tilec supports them (and the helper ops their builders add)."""
    if supported is None:
        from ..frontend.registry import supported_ops
        supported = set(supported_ops())
    ok = []
    for op, (_, needs) in sorted(BUILDERS.items()):
        if op in supported and all(n in supported for n in needs + ABS_ADD + ("Relu", "Tanh")) \
                and MIN_SINCE.get(op, 0) <= opset:
            ok.append(op)
    return ok


def generate(seed: int, n_nodes: int = 6, max_dim: int = 7, opset: int | None = None,
             supported=None, dims=DIMS, max_elements: int | None = None) -> GenGraph:
    """A valid random graph with about ``n_nodes`` ops (builders may add guard nodes), and its inputs."""
    rng = random.Random(seed)
    opset = opset or rng.choice([17, 18, 20])
    ops = available_ops(opset, supported)
    p = _Pool(rng, opset, set(supported) if supported is not None else None, max_dim, dims, max_elements)
    p.new_input(p.shape(rng.randint(1, 4)))
    produced = []
    for _ in range(max(n_nodes, 1)):
        op = rng.choice(ops)
        builder = BUILDERS[op][0]
        name, shape = builder(p, op)
        p.tensors.append((name, tuple(int(d) for d in shape), False))
        produced.append(name)
    outs = [produced[-1]] + [t for t in produced[:-1] if rng.random() < 0.25]
    shapes = {t[0]: t[1] for t in p.tensors}
    g = h.make_graph(p.nodes, f"gen{seed}", p.inputs,
                     [h.make_tensor_value_info(o, T.FLOAT, list(shapes[o])) for o in dict.fromkeys(outs)],
                     p.inits)
    model = h.make_model(g, opset_imports=[h.make_opsetid("", opset)], producer_name="tilec.graphgen")
    model.ir_version = min(model.ir_version, 9)  # what onnxruntime accepts for these opsets
    gen = np.random.default_rng(seed)
    inputs = {vi.name: gen.uniform(-2, 2, size=[d.dim_value for d in vi.type.tensor_type.shape.dim])
              .astype(np.float32) for vi in p.inputs}
    return GenGraph(model, inputs, seed, p.ops)
