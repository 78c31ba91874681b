"""Converters for ONNX ``LSTM``, ``GRU`` and ``RNN``: a ``cf.loop`` over time whose body is the cell (§2, §6).

The fused recurrent ops that ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` export become the same structured loop as
an ONNX ``Loop``, so Grinder, the host-side executor and every pass treat them alike. What does not depend
on the previous step is hoisted out of the loop: the weights are split per direction and pre-transposed
once, and the input projection ``X·Wᵀ + Wb + Rb`` of every time step is one matmul before the loop. The body
gathers its time step's row of that projection, does the one recurrent matmul ``H·Rᵀ`` and the gate
arithmetic, carries ``H`` (and ``C``) and yields ``H`` as the stacked scan output ``Y``.

Both directions of a bidirectional op run in one loop (the reverse one reads time step ``T-1-i``), so there
is one host round-trip (or one device loop) per step, not two. ``sequence_lens`` is accepted only when it
is a constant equal to the sequence length everywhere: ragged batches would need a masked cell.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES, np_dtype
from ..registry import converter
from .control_ops import build_loop

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULT_ACTIVATIONS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
# ONNX activation name (lower case) -> defaults of the (alpha, beta) it takes; those it takes consume the
# activation_alpha / activation_beta lists in order, as onnxruntime reads them.
ACTIVATIONS = {
    "sigmoid": (), "tanh": (), "relu": (), "softsign": (), "softplus": (),
    "leakyrelu": (0.01,), "thresholdedrelu": (1.0,), "elu": (1.0,),
    "hardsigmoid": (0.2, 0.5), "affine": (1.0, 0.0), "scaledtanh": (1.0, 1.0),
}
_GRAPH_OP = {"sigmoid": "sigmoid", "tanh": "tanh", "relu": "relu", "softsign": "softsign",
             "softplus": "softplus", "leakyrelu": "leaky_relu", "thresholdedrelu": "thresholded_relu",
             "elu": "elu", "hardsigmoid": "hard_sigmoid"}


def _emit(ctx, op, values, attrs=None):
    return ctx.emit(f"graph.{op}", values, attrs or {})[0]


def _opt(ctx, node, i):
    return ctx.values[node.input[i]] if ctx.has_input(node, i) else None


class _Cell:
    """What one direction's cell needs: its hoisted tensors, activations and constants."""

    def __init__(self, ctx, dtype, consts: dict):
        self.ctx, self.dtype, self.consts = ctx, dtype, consts

    def const(self, value):
        """A scalar of the cell's dtype, one per value for all directions (one tile.const, not one per use)."""
        key = (float(value), self.dtype)
        if key not in self.consts:
            self.consts[key] = self.ctx.constant(np.array(value, np_dtype(self.dtype)))
        return self.consts[key]

    def act(self, k, x, clip=True):
        """Activation ``k`` (f, g or h) of ``x``; ``clip`` bounds its input first, as the gates' are."""
        name, params = self.acts[k]
        if clip and self.clip is not None:
            x = _emit(self.ctx, "clip", [x], {"min": -self.clip, "max": self.clip})
        if name == "affine":
            return _emit(self.ctx, "add", [_emit(self.ctx, "mul", [x, self.const(params[0])]),
                                           self.const(params[1])])
        if name == "scaledtanh":
            inner = _emit(self.ctx, "tanh", [_emit(self.ctx, "mul", [x, self.const(params[1])])])
            return _emit(self.ctx, "mul", [inner, self.const(params[0])])
        attrs = dict(zip({"hardsigmoid": ("alpha", "beta")}.get(name, ("alpha",)), params))
        return _emit(self.ctx, _GRAPH_OP[name], [x], attrs)


def _activations(ctx, node, kind, nd):
    """Per direction, the list of ``(name, params)`` the cell applies (f, g[, h])."""
    k = len(DEFAULT_ACTIVATIONS[kind])
    names = ctx.attr(node, "activations", None) or DEFAULT_ACTIVATIONS[kind] * nd
    if len(names) == k and nd == 2:
        names = names * 2
    if len(names) != k * nd:
        raise ctx.error(node, f"{kind} takes {k * nd} activations for {nd} direction(s), got {len(names)}")
    alphas = list(ctx.attr(node, "activation_alpha", None) or [])
    betas = list(ctx.attr(node, "activation_beta", None) or [])
    out = []
    for name in names:
        key = name.lower()
        if key not in ACTIVATIONS:
            raise ctx.error(node, f"{kind} activation '{name}' is not supported (tilec supports "
                                  + ", ".join(sorted(ACTIVATIONS)) + ")")
        defaults = ACTIVATIONS[key]
        params = []
        for j, d in enumerate(defaults):
            src = alphas if j == 0 else betas
            params.append(float(src.pop(0)) if src else d)
        out.append((key, tuple(params)))
    return [out[d * k:(d + 1) * k] for d in range(nd)]


def _check_shape(ctx, node, v, what, want):
    if v is not None and list(v.type.shape) != list(want):
        raise ctx.error(node, f"{node.op_type} {what} has shape {list(v.type.shape)}, expected {list(want)}")


def _per_direction(ctx, v, d):
    """Direction ``d``'s slice of a ``[num_directions, ...]`` tensor (a view when there is one direction)."""
    if v.type.shape[0] == 1:
        return _emit(ctx, "squeeze", [v], {"axes": [0]})
    return _emit(ctx, "gather", [v, ctx.constant(np.array(d, np.int64))], {"axis": 0})


def _prepare(ctx, node, kind, d, x, w, r, b, p, hidden, dtype, acts, consts):
    """Hoist one direction's weights out of the loop: ``x·Wᵀ + bias`` for every step, ``Rᵀ``, peepholes."""
    g = GATES[kind]
    cell = _Cell(ctx, dtype, consts)
    cell.acts, cell.hidden = acts, hidden
    cell.clip = ctx.attr(node, "clip", None)
    cell.input_forget = kind == "LSTM" and bool(ctx.attr(node, "input_forget", 0))
    cell.lbr = kind == "GRU" and bool(ctx.attr(node, "linear_before_reset", 0))
    wt = _emit(ctx, "transpose", [_per_direction(ctx, w, d)], {"perm": [1, 0]})
    cell.xw = _emit(ctx, "matmul", [x, wt])                     # [T, batch, G*H]
    cell.rt = _emit(ctx, "transpose", [_per_direction(ctx, r, d)], {"perm": [1, 0]})  # [H, G*H]
    cell.rbh = None
    if b is not None:
        wb, rb = ctx.emit("graph.split", [_per_direction(ctx, b, d)], {"axis": 0, "split": [g * hidden] * 2},
                          n_results=2)
        if cell.lbr:
            # With linear_before_reset the h gate's recurrent bias sits inside r ⊙ (H·Rhᵀ + Rbh).
            mask = np.array([1] * (2 * hidden) + [0] * hidden, np_dtype(dtype))
            cell.rbh = _emit(ctx, "slice", [rb], {"starts": [2 * hidden], "ends": [3 * hidden], "axes": [0]})
            rb = _emit(ctx, "mul", [rb, ctx.constant(mask)])
        cell.xw = _emit(ctx, "add", [cell.xw, _emit(ctx, "add", [wb, rb])])
    if kind == "GRU" and not cell.lbr:
        # (r ⊙ H)·Rhᵀ needs r first: the h gate's recurrent matmul is a second one.
        cell.rt, cell.rht = ctx.emit("graph.split", [cell.rt], {"axis": 1, "split": [2 * hidden, hidden]},
                                     n_results=2)
    cell.peep = None
    if p is not None:
        cell.peep = ctx.emit("graph.split", [_per_direction(ctx, p, d)], {"axis": 0, "split": [hidden] * 3},
                             n_results=3)
    return cell


def _step(cell, kind, xw_t, state):
    """One time step: the new state and the step's output ``H``."""
    ctx, hsz = cell.ctx, cell.hidden
    h = state[0]
    if kind == "RNN":
        h2 = cell.act(0, _emit(ctx, "add", [xw_t, _emit(ctx, "matmul", [h, cell.rt])]))
        return [h2], h2
    if kind == "LSTM":
        c = state[1]
        gates = _emit(ctx, "add", [xw_t, _emit(ctx, "matmul", [h, cell.rt])])
        gi, go, gf, gc = ctx.emit("graph.split", [gates], {"axis": 1, "split": [hsz] * 4}, n_results=4)
        if cell.peep is not None:
            pi, po, pf = cell.peep
            gi = _emit(ctx, "add", [gi, _emit(ctx, "mul", [pi, c])])
            gf = _emit(ctx, "add", [gf, _emit(ctx, "mul", [pf, c])])
        i = cell.act(0, gi)
        f = _emit(ctx, "sub", [cell.const(1), i]) if cell.input_forget else cell.act(0, gf)
        c2 = _emit(ctx, "add", [_emit(ctx, "mul", [f, c]), _emit(ctx, "mul", [i, cell.act(1, gc)])])
        if cell.peep is not None:
            go = _emit(ctx, "add", [go, _emit(ctx, "mul", [po, c2])])
        o = cell.act(0, go)
        # onnxruntime clips the gates' inputs, not the cell state that h squashes.
        h2 = _emit(ctx, "mul", [o, cell.act(2, c2, clip=False)])
        return [h2, c2], h2
    # GRU: gates z, r, h.
    xz, xr, xh = ctx.emit("graph.split", [xw_t], {"axis": 1, "split": [hsz] * 3}, n_results=3)
    hg = _emit(ctx, "matmul", [h, cell.rt])
    if cell.lbr:
        hz, hr, hh = ctx.emit("graph.split", [hg], {"axis": 1, "split": [hsz] * 3}, n_results=3)
        if cell.rbh is not None:
            hh = _emit(ctx, "add", [hh, cell.rbh])
    else:
        hz, hr = ctx.emit("graph.split", [hg], {"axis": 1, "split": [hsz] * 2}, n_results=2)
    z = cell.act(0, _emit(ctx, "add", [xz, hz]))
    r = cell.act(0, _emit(ctx, "add", [xr, hr]))
    if cell.lbr:
        rh = _emit(ctx, "mul", [r, hh])
    else:
        rh = _emit(ctx, "matmul", [_emit(ctx, "mul", [r, h]), cell.rht])
    n = cell.act(1, _emit(ctx, "add", [xh, rh]))
    h2 = _emit(ctx, "add", [_emit(ctx, "mul", [_emit(ctx, "sub", [cell.const(1), z]), n]),
                            _emit(ctx, "mul", [z, h])])
    return [h2], h2


@converter("LSTM", "GRU", "RNN", since=7)
def recurrent(ctx, node):
    kind = node.op_type
    g = GATES[kind]
    x = ctx.values[node.input[0]]
    w, r = ctx.values[node.input[1]], ctx.values[node.input[2]]
    b = _opt(ctx, node, 3)
    if x.type.rank != 3 or w.type.rank != 3 or r.type.rank != 3:
        raise ctx.error(node, f"{kind} needs X, W and R of rank 3, got {x.type}, {w.type}, {r.type}")
    dtype = x.type.dtype
    if dtype not in FLOAT_DTYPES:
        raise ctx.error(node, f"{kind} needs a floating-point X, got {x.type}")
    layout = int(ctx.attr(node, "layout", 0))
    if layout not in (0, 1):
        raise ctx.error(node, f"{kind} layout must be 0 or 1, got {layout}")
    if layout:
        x = _emit(ctx, "transpose", [x], {"perm": [1, 0, 2]})
    seq, batch, inp = x.type.shape
    hidden = int(ctx.attr(node, "hidden_size", r.type.shape[-1]))
    direction = ctx.attr(node, "direction", "forward")
    dirs = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}.get(direction)
    if dirs is None:
        raise ctx.error(node, f"{kind} direction must be forward, reverse or bidirectional, not '{direction}'")
    nd = len(dirs)
    for v, what, want in ((w, "W", [nd, g * hidden, inp]), (r, "R", [nd, g * hidden, hidden]),
                          (b, "B", [nd, 2 * g * hidden])):
        _check_shape(ctx, node, v, what, want)
        if v is not None and v.type.dtype != dtype:
            raise ctx.error(node, f"{kind} {what} is {v.type.dtype}, but X is {dtype}")
    if ctx.has_input(node, 4):
        lens = ctx.const_input(node, 4, "sequence_lens").reshape(-1)
        if lens.size != batch or np.any(lens != seq):
            raise ctx.error(node, f"{kind} sequence_lens {lens.tolist()} differ from the sequence length {seq}; "
                                  "tilec supports only sequences that all run the full length")
    states = []
    for i in ((5, 6) if kind == "LSTM" else (5,)):
        v = _opt(ctx, node, i)
        if v is not None and layout:
            _check_shape(ctx, node, v, "initial state", [batch, nd, hidden])
            v = _emit(ctx, "transpose", [v], {"perm": [1, 0, 2]})
        _check_shape(ctx, node, v, "initial state", [nd, batch, hidden])
        states.append(v)
    zeros = ctx.constant(np.zeros((batch, hidden), np_dtype(dtype)))  # every absent initial state
    p = _opt(ctx, node, 7) if kind == "LSTM" else None
    _check_shape(ctx, node, p, "P", [nd, 3 * hidden])
    acts = _activations(ctx, node, kind, nd)
    consts: dict = {}
    cells = [_prepare(ctx, node, kind, d, x, w, r, b, p, hidden, dtype, acts[d], consts) for d in range(nd)]
    init = [zeros if s is None else _per_direction(ctx, s, d) for d in range(nd) for s in states]
    ns = len(states)
    want_y = bool(node.output[0]) if node.output else False

    def body(i, cond, args):
        rev = _emit(ctx, "sub", [ctx.constant(np.array(seq - 1, np.int64)), i]) if any(dirs) else None
        outs, ys = [], []
        for d, cell in enumerate(cells):
            xw_t = _emit(ctx, "gather", [cell.xw, rev if dirs[d] else i], {"axis": 0})
            new, y = _step(cell, kind, xw_t, list(args[d * ns:(d + 1) * ns]))
            outs += new
            ys.append(y)
        return cond, outs, ys if want_y else []
    op = build_loop(ctx, ctx.constant(np.array(seq, np.int64)), ctx.constant(np.array(True)), init, body, seq,
                    f"{kind} '{ctx.node_label}'")
    finals = list(op.results[:nd * ns])
    results = [None]
    if want_y:
        ys = []
        for d, y in enumerate(op.results[nd * ns:]):
            if dirs[d]:  # the reverse direction's step i is time step T-1-i
                y = _emit(ctx, "gather", [y, ctx.constant(np.arange(seq - 1, -1, -1, dtype=np.int64))], {"axis": 0})
            ys.append(_emit(ctx, "unsqueeze", [y], {"axes": [1]}))
        y = ys[0] if nd == 1 else _emit(ctx, "concat", ys, {"axis": 1})  # [T, nd, batch, H]
        results[0] = _emit(ctx, "transpose", [y], {"perm": [2, 0, 1, 3]}) if layout else y
    for s in range(ns):
        parts = [_emit(ctx, "unsqueeze", [finals[d * ns + s]], {"axes": [0]}) for d in range(nd)]
        v = parts[0] if nd == 1 else _emit(ctx, "concat", parts, {"axis": 0})  # [nd, batch, H]
        results.append(_emit(ctx, "transpose", [v], {"perm": [1, 0, 2]}) if layout else v)
    return results[:max(len(node.output), 1)]
