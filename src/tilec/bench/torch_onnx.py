"""Run an ONNX graph with PyTorch ops: the "equivalent torch module" for ``make gpu-bench``.

The zoo models are plain static graphs of a few dozen op types, so instead of re-writing each model in
torch, ``TorchGraph`` walks the ONNX nodes and calls the matching torch op, with the ONNX weights loaded
once as device tensors. Eager mode runs that walk; ``torch.compile`` traces it (the node list is fixed, so
dynamo sees one straight-line graph). Models using an op not in ``OPS`` raise ``NotImplementedError`` with
the op's name, and the benchmark reports torch as not expressed for that model.

Integer operands that ONNX passes as tensors (axes, split sizes, shapes, Clip bounds) must be constants
here; they are read once on the host, never from the device inside the timed forward.
"""
from __future__ import annotations

import math

import numpy as np

try:  # a module global, not an import inside each op: torch.compile traces the ops without graph breaks
    import torch
except ImportError:  # the benchmark reports "torch not installed"
    torch = None


def _attrs(node) -> dict:
    from onnx import helper
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


class TorchGraph:
    """``TorchGraph(onnx_model, device)(**inputs) -> [outputs]``, inputs and outputs torch tensors."""

    def __init__(self, model, device: str = "cuda"):
        from onnx import helper, numpy_helper
        if torch is None:
            raise ImportError("torch is not installed")
        self.device = device
        missing = sorted({n.op_type for n in model.graph.node} - set(OPS))
        if missing:
            raise NotImplementedError(f"ONNX op(s) not expressed in torch: {', '.join(missing)}")
        self.consts_np = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for n in model.graph.node:
            if n.op_type == "Constant":
                self.consts_np[n.output[0]] = numpy_helper.to_array(_attrs(n)["value"])
        # np.array(copy=True), not ascontiguousarray: that turns 0-d scalars (Gather indices) into 1-d.
        self.consts = {k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in self.consts_np.items()}
        # Axes, split sizes, shapes and Clip bounds as Python values, read once here: inside a traced
        # forward, numpy arrays would be traced too.
        self.small = {k: v.tolist() for k, v in self.consts_np.items() if v.size <= 64}
        self.scalars = {k: float(v.reshape(())) for k, v in self.consts_np.items()
                        if v.ndim == 0 and np.issubdtype(v.dtype, np.floating)}
        self.nodes = [(n.op_type, list(n.input), list(n.output), _attrs(n)) for n in model.graph.node
                      if n.op_type != "Constant"]
        for op, _, _, attrs in self.nodes:
            if op == "Cast":
                attrs["_torch_dtype"] = getattr(torch, np.dtype(helper.tensor_dtype_to_np_dtype(attrs["to"])).name)
        inits = set(self.consts_np)
        self.inputs = [i.name for i in model.graph.input if i.name not in inits]
        self.outputs = [o.name for o in model.graph.output]

    def const(self, name: str):
        """A small constant operand as a Python scalar or list."""
        if name not in self.small:
            raise NotImplementedError(f"'{name}' must be a small constant for the torch runner")
        return self.small[name]

    def __call__(self, **inputs):
        env = dict(self.consts)
        env.update(inputs)
        for op, ins, outs, attrs in self.nodes:
            args = [env[i] if i else None for i in ins]
            res = OPS[op](self, args, ins, attrs)
            for name, value in zip(outs, res if isinstance(res, (list, tuple)) else [res]):
                env[name] = value
        return [env[o] for o in self.outputs]


def _gemm(g, a, ins, at):
    A, B = a[0], a[1]
    if at.get("transA", 0):
        A = A.t()
    if at.get("transB", 0):
        B = B.t()
    y = at.get("alpha", 1.0) * (A @ B)
    if len(a) > 2 and a[2] is not None:
        y = y + at.get("beta", 1.0) * a[2]
    return y


def _conv(g, a, ins, at):
    F = torch.nn.functional
    pads = at.get("pads", [0] * 4)
    nd = a[1].dim() - 2
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    if list(pads[:nd]) != list(pads[nd:]):
        raise NotImplementedError("asymmetric Conv pads")
    conv = F.conv1d if nd == 1 else F.conv2d
    return conv(a[0], a[1], a[2] if len(a) > 2 else None, stride=at.get("strides", 1), padding=list(pads[:nd]),
                dilation=at.get("dilations", 1), groups=at.get("group", 1))


def _pool(kind):
    def run(g, a, ins, at):
        F = torch.nn.functional
        pads = at.get("pads", [0] * 4)
        if list(pads[:2]) != list(pads[2:]):
            raise NotImplementedError(f"asymmetric {kind} pads")
        k, s = at["kernel_shape"], at.get("strides", 1)
        if kind == "max":
            return F.max_pool2d(a[0], k, s, list(pads[:2]), ceil_mode=bool(at.get("ceil_mode", 0)))
        return F.avg_pool2d(a[0], k, s, list(pads[:2]), ceil_mode=bool(at.get("ceil_mode", 0)),
                            count_include_pad=bool(at.get("count_include_pad", 0)))
    return run


def _bn(g, a, ins, at):
    return torch.nn.functional.batch_norm(a[0], a[3], a[4], a[1], a[2], False, 0.0, at.get("epsilon", 1e-5))


def _ln(g, a, ins, at):
    axis = at.get("axis", -1) % a[0].dim()
    return torch.nn.functional.layer_norm(a[0], a[0].shape[axis:], a[1], a[2] if len(a) > 2 else None,
                                         at.get("epsilon", 1e-5))


def _clip(g, a, ins, at):
    lo = float(g.const(ins[1])) if len(ins) > 1 and ins[1] else None
    hi = float(g.const(ins[2])) if len(ins) > 2 and ins[2] else None
    return torch.clamp(a[0], lo, hi)


def _split(g, a, ins, at):
    axis = at.get("axis", 0)
    if len(ins) > 1 and ins[1]:
        sizes = [int(s) for s in g.const(ins[1])]
    elif "split" in at:
        sizes = list(at["split"])
    else:
        n = at["num_outputs"]
        sizes = [a[0].shape[axis] // n] * n
    return list(torch.split(a[0], sizes, dim=axis))


def _unsqueeze(g, a, ins, at):
    x = a[0]
    axes = sorted(int(v) % (x.dim() + len(g.const(ins[1]))) for v in g.const(ins[1]))
    for ax in axes:
        x = x.unsqueeze(ax)
    return x


def _squeeze(g, a, ins, at):
    x = a[0]
    axes = [int(v) % x.dim() for v in g.const(ins[1])] if len(ins) > 1 and ins[1] else \
        [i for i, d in enumerate(x.shape) if d == 1]
    for ax in sorted(axes, reverse=True):
        x = x.squeeze(ax)
    return x


def _reshape(g, a, ins, at):
    shape = [int(s) for s in g.const(ins[1])]
    shape = [a[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return a[0].reshape(shape)


def _slice(g, a, ins, at):
    starts, ends = g.const(ins[1]), g.const(ins[2])
    axes = g.const(ins[3]) if len(ins) > 3 and ins[3] else range(len(starts))
    steps = g.const(ins[4]) if len(ins) > 4 and ins[4] else [1] * len(starts)
    x = a[0]
    idx = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise NotImplementedError("negative Slice steps")
        n = x.shape[int(ax)]
        idx[int(ax)] = slice(int(max(-n, min(n, s))), int(max(-n, min(n, e))), int(st))
    return x[tuple(idx)]


def _pad(g, a, ins, at):
    if at.get("mode", b"constant") not in (b"constant", "constant"):
        raise NotImplementedError("non-constant Pad")
    pads = [int(p) for p in g.const(ins[1])]
    n = len(pads) // 2
    flat = []
    for i in reversed(range(n)):  # torch wants (last dim begin, end, second-to-last ...)
        flat += [pads[i], pads[i + n]]
    value = float(g.const(ins[2])) if len(ins) > 2 and ins[2] else 0.0
    return torch.nn.functional.pad(a[0], flat, value=value)


def _cast(g, a, ins, at):
    return a[0].to(at["_torch_dtype"])  # set in TorchGraph.__init__, outside any trace


def _reduce(fn):
    def run(g, a, ins, at):
        axes = [int(v) for v in g.const(ins[1])] if len(ins) > 1 and ins[1] else at.get("axes")
        keep = bool(at.get("keepdims", 1))
        axes = list(range(a[0].dim())) if axes is None else axes
        return fn(a[0], axes, keep)
    return run


def _unary(name):
    return lambda g, a, ins, at: getattr(torch, name)(a[0])


def _binary(name):
    def run(g, a, ins, at):
        # A one-element float constant goes in as a Python float: inductor's attention pattern matcher turns
        # "scores / sqrt(d)" into SDPA and then fails when the scale is a 0-d tensor (torch 2.13).
        x, y = (g.scalars.get(i, t) for i, t in zip(ins, a))
        return getattr(torch, name)(x, y)
    return run


OPS = {
    "Add": _binary("add"), "Sub": _binary("sub"), "Mul": _binary("mul"), "Div": _binary("div"),
    "Pow": _binary("pow"), "Max": _binary("maximum"), "Min": _binary("minimum"),
    "Equal": _binary("eq"), "Greater": _binary("gt"), "Less": _binary("lt"),
    "And": _binary("logical_and"), "Or": _binary("logical_or"), "Not": _unary("logical_not"),
    "Relu": _unary("relu"), "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"), "Erf": _unary("erf"),
    "Exp": _unary("exp"), "Log": _unary("log"), "Sqrt": _unary("sqrt"), "Abs": _unary("abs"),
    "Neg": _unary("neg"), "Reciprocal": _unary("reciprocal"),
    "Softplus": lambda g, a, ins, at: torch.nn.functional.softplus(a[0]),
    "LeakyRelu": lambda g, a, ins, at: torch.nn.functional.leaky_relu(a[0], at.get("alpha", 0.01)),
    "HardSigmoid": lambda g, a, ins, at: torch.clamp(at.get("alpha", 0.2) * a[0] + at.get("beta", 0.5), 0, 1),
    "HardSwish": lambda g, a, ins, at: torch.nn.functional.hardswish(a[0]),
    "Identity": lambda g, a, ins, at: a[0],
    "Where": lambda g, a, ins, at: torch.where(a[0], a[1], a[2]),
    "MatMul": _binary("matmul"), "Gemm": _gemm, "Conv": _conv, "BatchNormalization": _bn,
    "LayerNormalization": _ln, "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda g, a, ins, at: a[0].mean(dim=tuple(range(2, a[0].dim())), keepdim=True),
    "Flatten": lambda g, a, ins, at: a[0].reshape(
        math.prod(a[0].shape[:at.get("axis", 1)]), -1),
    "Softmax": lambda g, a, ins, at: torch.softmax(a[0], dim=at.get("axis", -1)),
    "Clip": _clip, "Split": _split, "Unsqueeze": _unsqueeze, "Squeeze": _squeeze, "Reshape": _reshape,
    "Slice": _slice, "Pad": _pad, "Cast": _cast,
    "Transpose": lambda g, a, ins, at: a[0].permute(*(at.get("perm") or reversed(range(a[0].dim())))),
    "Concat": lambda g, a, ins, at: torch.cat(a, dim=at["axis"]),
    "Gather": lambda g, a, ins, at: torch.index_select(a[0], at.get("axis", 0), a[1].reshape(-1)).reshape(
        *a[0].shape[:at.get("axis", 0) % a[0].dim()], *a[1].shape, *a[0].shape[at.get("axis", 0) % a[0].dim() + 1:]),
    "Expand": lambda g, a, ins, at: a[0] * torch.ones([int(s) for s in g.const(ins[1])], dtype=a[0].dtype,
                                                      device=a[0].device),
    "Tile": lambda g, a, ins, at: a[0].repeat(*[int(s) for s in g.const(ins[1])]),
    "ReduceMean": _reduce(lambda x, ax, k: x.mean(dim=ax, keepdim=k)),
    "ReduceSum": _reduce(lambda x, ax, k: x.sum(dim=ax, keepdim=k)),
    "ReduceMax": _reduce(lambda x, ax, k: x.amax(dim=ax, keepdim=k)),
}
