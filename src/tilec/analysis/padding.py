"""Padding safety of dynamic dims: may a run shape be zero- or edge-padded up to a bucket's compiled shape?

A dim may be padded only when elements at different indices of it never mix on the way to any output
(a batch-like dim) and every output that depends on it carries it on one axis, so the result can be
sliced back. :func:`padding_facts` proves that on the imported graph IR (``@main`` of a module imported at
one bucket's shapes) by a conservative label propagation, in the spirit of named-dimension analyses
(XLA's dimension tracking for dynamic padding, ``jax`` batching rules): each input axis of a dynamic dim
carries the dim's label, and a per-op rule says where the labels go or that the op mixes them.

- elementwise and broadcasting ops keep labels (a labeled axis broadcast from size 1 is unsafe);
- ``matmul`` / ``gemm`` keep batch dims, M and N; a labeled contracted K is unsafe;
- reductions, softmax, norms (and arg/top-k, cumulative ops) over a labeled axis are unsafe;
- ``transpose`` permutes; reshape-like views keep a label only when the labeled dim maps 1:1 to an
  output dim (the products of the dims before it agree, and its size does);
- ``concat`` / ``split`` / ``slice`` / ``gather`` / ``pad`` / ``tile`` along a labeled axis are unsafe
  (a slice keeping the whole axis in order is not); gather's labeled indices label the output;
- conv and pooling keep a labeled batch axis 0, anything else labeled is unsafe; ``einsum`` keeps the
  labels of output letters, a labeled summed letter is unsafe;
- any other op that reads a labeled tensor (or uses one inside a region) makes those labels unsafe,
  and so does a label that lands on two axes of one tensor.

The rules reason about one compiled shape, so the caller runs it on every bucket where a dim could be
padded and keeps only what holds in all (``runtime/profile.py``). A size read from a tensor by the
model's ``Shape`` / ``Size`` nodes is folded into constants at import and is checked separately, on the
ONNX graph (``frontend/shape_uses.py``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from ..ir.core import Operation, arg_names, main_function

# Ops that compute each output element from the operand elements at the same (broadcast) coordinates.
ELEMENTWISE = frozenset(f"graph.{n}" for n in """
add sub mul div pow mod prelu min max sum mean equal less greater less_or_equal greater_or_equal and or xor
not where sqrt exp log tanh sigmoid relu neg abs reciprocal floor ceil erf sin cos tan asin acos atan sinh
cosh asinh acosh atanh sign round softplus softsign mish hard_swish leaky_relu elu celu selu
thresholded_relu hard_sigmoid gelu clip is_nan is_inf cast identity expand""".split())
REDUCTIONS = frozenset(f"graph.reduce_{n}" for n in
                       "sum mean max min prod sum_square l1 l2 log_sum log_sum_exp".split())
VIEWS = frozenset({"graph.reshape", "graph.flatten", "graph.squeeze", "graph.unsqueeze"})
WINDOWED = frozenset({"graph.conv", "graph.max_pool", "graph.average_pool", "graph.global_average_pool",
                      "graph.global_max_pool"})


@dataclass
class PaddingFacts:
    """What the analysis proved for one module: ``unsafe`` maps a label to why it may not be padded;
    ``outputs`` maps each output name to ``{label: axis}``, the axis to slice back."""

    unsafe: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    def safe(self, label: str) -> bool:
        return label not in self.unsafe


class _Propagation:
    """Labels per SSA value (a tuple with a label or None per axis) and the unsafe labels found so far."""

    def __init__(self):
        self.labels: dict = {}
        self.unsafe: dict = {}

    def of(self, v) -> tuple:
        return self.labels.get(v) or (None,) * len(getattr(v.type, "shape", ()))

    def bad(self, labels, why: str) -> None:
        for label in labels:
            if label is not None:
                self.unsafe.setdefault(label, why)


def _where(op: Operation) -> str:
    name = getattr(op.loc, "name", None)
    return f"{op.name} ({name})" if name else op.name


def _shape(v) -> tuple:
    return tuple(v.type.shape)


def _align(parts, out_shape, st: _Propagation, why: str) -> list:
    """Right-aligned (numpy) broadcasting of ``(shape, labels)`` parts onto ``out_shape``: the label of
    each output axis; a labeled axis whose size differs from the output's, or two labels meeting, is bad."""
    out = [None] * len(out_shape)
    for shape, labels in parts:
        off = len(out_shape) - len(shape)
        for i, label in enumerate(labels):
            if label is None:
                continue
            j = off + i
            if j < 0 or shape[i] != out_shape[j]:
                st.bad([label], f"broadcast along its axis by {why}")
            elif out[j] not in (None, label):
                st.bad([label, out[j]], f"two dims meet on one axis in {why}")
            else:
                out[j] = label
    return out


def _mixed(labels, axes, st: _Propagation, why: str) -> None:
    st.bad([labels[a] for a in axes if 0 <= a < len(labels)], why)


def _norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _elementwise(op, ins, st, why):
    parts = [(_shape(v), lab) for v, lab in zip(op.operands, ins)]
    return [tuple(_align(parts, _shape(op.results[0]), st, why))]


def _matmul(op, ins, st, why):
    (a, b), (la, lb) = op.operands, ins
    sa, sb = _shape(a), _shape(b)
    ka = len(sa) - 1
    kb = 0 if len(sb) == 1 else len(sb) - 2
    st.bad([la[ka], lb[kb]], f"contracted (K) by {why}")
    out_shape = _shape(op.results[0])
    batch_a = (sa[:-2], la[:-2]) if len(sa) >= 2 else ((), ())
    batch_b = (sb[:-2], lb[:-2]) if len(sb) >= 2 else ((), ())
    tail = [la[-2]] if len(sa) >= 2 else []
    tail += [lb[-1]] if len(sb) >= 2 else []
    batch = _align([batch_a, batch_b], out_shape[:len(out_shape) - len(tail)], st, why)
    return [tuple(batch + tail)]


def _gemm(op, ins, st, why):
    la, lb = ins[0], ins[1]
    ta, tb = int(op.attributes.get("trans_a", 0)), int(op.attributes.get("trans_b", 0))
    st.bad([la[1 - ta], lb[tb]], f"contracted (K) by {why}")
    out = [la[ta], lb[1 - tb]]
    if len(op.operands) > 2:
        out = _align([(tuple(_shape(op.results[0])), tuple(out)), (_shape(op.operands[2]), ins[2])],
                     _shape(op.results[0]), st, why)
    return [tuple(out)]


def _reduce(op, ins, st, why):
    lab = ins[0]
    axes = [_norm_axis(int(a), len(lab)) for a in op.attributes.get("axes", [])]
    _mixed(lab, axes, st, f"reduced by {why}")
    keep = int(op.attributes.get("keepdims", 1))
    return [tuple(None if i in axes else x for i, x in enumerate(lab) if keep or i not in axes)]


def _normalizing(op, ins, st, why):
    """softmax / log_softmax / layer_norm / instance_norm / batch_norm: x keeps its labels unless they lie
    on the normalised axes; labeled parameters are unsafe."""
    lab, rank = ins[0], len(ins[0])
    axis = _norm_axis(int(op.attributes.get("axis", -1)), rank)
    if op.name in ("graph.softmax", "graph.log_softmax"):
        axes = range(axis, rank) if op.attributes.get("flatten") else [axis]
    elif op.name == "graph.layer_norm":
        axes = range(axis, rank)
    elif op.name == "graph.instance_norm":
        axes = range(2, rank)
    else:   # batch_norm (inference): per channel, no axis is normalised
        axes = []
    _mixed(lab, axes, st, f"normalised by {why}")
    for other in ins[1:]:
        st.bad(other, f"a labeled parameter of {why}")
    return [lab]


def _transpose(op, ins, st, why):
    return [tuple(ins[0][int(p)] for p in op.attributes["perm"])]


def _view(op, ins, st, why):
    """A labeled input dim keeps its label where it maps 1:1 to an output dim: equal sizes and equal
    products of the dims before it (then element (a, k, b) lands at (a, k, b) of the output)."""
    src, dst = _shape(op.operands[0]), _shape(op.results[0])
    out = [None] * len(dst)
    for i, label in enumerate(ins[0]):
        if label is None:
            continue
        before = prod(src[:i])
        j = next((j for j in range(len(dst)) if dst[j] == src[i] and prod(dst[:j]) == before
                  and out[j] is None), None)
        if j is None:
            st.bad([label], f"merged or split by {why}")
        else:
            out[j] = label
    return [tuple(out)]


def _concat(op, ins, st, why):
    axis = _norm_axis(int(op.attributes["axis"]), len(ins[0]))
    for lab in ins:
        _mixed(lab, [axis], st, f"concatenated along by {why}")
    out = [None] * len(ins[0])
    for lab in ins:
        for j, label in enumerate(lab):
            if label is None or j == axis:
                continue
            if out[j] not in (None, label):
                st.bad([label, out[j]], f"two dims meet on one axis in {why}")
            out[j] = label
    return [tuple(out)]


def _split(op, ins, st, why):
    axis = _norm_axis(int(op.attributes["axis"]), len(ins[0]))
    _mixed(ins[0], [axis], st, f"split along by {why}")
    return [ins[0]] * len(op.results)


def _slice(op, ins, st, why):
    """A labeled axis survives only when the slice keeps all of it in order (same size, step 1)."""
    lab, src, dst = ins[0], _shape(op.operands[0]), _shape(op.results[0])
    starts = list(op.attributes.get("starts", []))
    axes = [_norm_axis(int(a), len(src)) for a in op.attributes.get("axes") or range(len(starts))]
    steps = list(op.attributes.get("steps") or [1] * len(axes))
    step_of = dict(zip(axes, steps))
    cut = [i for i, label in enumerate(lab) if label is not None
           and (src[i] != dst[i] or int(step_of.get(i, 1)) != 1)]
    _mixed(lab, cut, st, f"sliced by {why}")
    return [tuple(None if i in cut else x for i, x in enumerate(lab))]


def _gather(op, ins, st, why):
    data, idx = ins
    axis = _norm_axis(int(op.attributes.get("axis", 0)), len(data))
    _mixed(data, [axis], st, f"gathered along by {why}")
    return [tuple(data[:axis]) + tuple(idx) + tuple(data[axis + 1:])]


def _windowed(op, ins, st, why):
    """conv and pooling: the batch axis 0 keeps its label; channels and spatial axes mix."""
    lab = ins[0]
    _mixed(lab, range(1, len(lab)), st, f"mixed by {why}")
    for other in ins[1:]:
        st.bad(other, f"a labeled parameter of {why}")
    return [(lab[0],) + (None,) * (len(_shape(op.results[0])) - 1)]


def _along_axis(op, ins, st, why):
    """arg_max / arg_min / top_k / cum_sum / cum_prod: the axis mixes; keepdims as the op says."""
    lab = ins[0]
    axis = _norm_axis(int(op.attributes.get("axis", 0)), len(lab))
    _mixed(lab, [axis], st, f"compared or accumulated along by {why}")
    if op.name in ("graph.arg_max", "graph.arg_min") and not int(op.attributes.get("keepdims", 1)):
        return [tuple(x for i, x in enumerate(lab) if i != axis)]
    return [tuple(None if i == axis else x for i, x in enumerate(lab))] * len(op.results)


def _einsum(op, ins, st, why):
    """Letters of the output keep their labels; a labeled summed letter (or diagonal) mixes. Equations with
    an ellipsis have no rule here."""
    eq = str(op.attributes["equation"]).replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if "." in eq or len(terms) != len(ins):
        st.bad({x for lab in ins for x in lab}, f"read by {why}, whose equation has no padding rule")
        return [(None,) * len(_shape(op.results[0]))]
    if not arrow:   # implicit output: the letters used once, sorted
        rhs = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    letter: dict = {}
    for term, lab in zip(terms, ins):
        for c, label in zip(term, lab):
            if label is None:
                continue
            if c not in rhs or term.count(c) > 1:
                st.bad([label], f"summed by {why}")
            elif letter.get(c, label) != label:
                st.bad([label, letter[c]], f"two dims meet on one axis in {why}")
            letter.setdefault(c, label)
    return [tuple(letter.get(c) for c in rhs)]


def _tile(op, ins, st, why):
    lab = ins[0]
    _mixed(lab, [i for i, r in enumerate(op.attributes["repeats"]) if int(r) != 1], st, f"repeated by {why}")
    return [tuple(x if int(r) == 1 else None for x, r in zip(lab, op.attributes["repeats"]))]


def _pad(op, ins, st, why):
    lab, pads = ins[0], [int(p) for p in op.attributes["pads"]]
    rank = len(lab)
    padded = [i for i in range(rank) if pads[i] or pads[i + rank]]
    _mixed(lab, padded, st, f"padded by {why}")
    return [tuple(None if i in padded else x for i, x in enumerate(lab))]


def _trilu(op, ins, st, why):
    lab = ins[0]
    _mixed(lab, [len(lab) - 2, len(lab) - 1], st, f"masked by position in {why}")
    return [lab]


RULES = {**{n: _elementwise for n in ELEMENTWISE}, **{n: _reduce for n in REDUCTIONS},
         **{n: _view for n in VIEWS}, **{n: _windowed for n in WINDOWED},
         **{n: _normalizing for n in ("graph.softmax", "graph.log_softmax", "graph.layer_norm",
                                      "graph.instance_norm", "graph.batch_norm")},
         **{n: _along_axis for n in ("graph.arg_max", "graph.arg_min", "graph.top_k", "graph.cum_sum",
                                     "graph.cum_prod")},
         "graph.matmul": _matmul, "graph.gemm": _gemm, "graph.transpose": _transpose,
         "graph.concat": _concat, "graph.split": _split, "graph.slice": _slice, "graph.gather": _gather,
         "graph.tile": _tile, "graph.pad": _pad, "graph.trilu": _trilu, "graph.einsum": _einsum}


def _region_labels(op: Operation, st: _Propagation) -> set:
    """Labels of outer values that ops inside ``op``'s regions read."""
    found = set()
    for inner in op.walk():
        if inner is op:
            continue
        for v in inner.operands:
            found.update(x for x in st.labels.get(v, ()) if x is not None)
    return found


def padding_facts(module: Operation, labels: dict) -> PaddingFacts:
    """Prove which labels of ``labels`` (input name -> a label or None per axis) are padding-safe in
    ``module``'s ``@main`` (graph IR as imported, at one bucket's shapes); see the module docstring."""
    fn = main_function(module)
    st = _Propagation()
    for name, arg in zip(arg_names(fn), fn.body.args):
        lab = tuple(labels.get(name) or ())
        if any(x is not None for x in lab):
            st.labels[arg] = lab
    facts = PaddingFacts()
    for op in fn.body.ops:
        if op.name == "func.return":
            for name, v in zip(fn.attributes.get("result_names") or [], op.operands):
                facts.outputs[name] = {x: i for i, x in enumerate(st.of(v)) if x is not None}
            continue
        ins = [st.of(v) for v in op.operands]
        touched = {x for lab in ins for x in lab if x is not None}
        if op.regions:
            st.bad(_region_labels(op, st), f"read inside the region of {_where(op)}")
        if not touched:
            continue
        rule = RULES.get(op.name)
        if rule is None or op.regions:
            st.bad(touched, f"read by {_where(op)}, which has no padding rule")
            continue
        try:
            results = rule(op, ins, st, _where(op))
        except (IndexError, KeyError, TypeError, ValueError):   # attributes out of the rule's reach
            st.bad(touched, f"read by {_where(op)}, which the padding rule could not read")
            continue
        for v, lab in zip(op.results, results):
            seen = [x for x in lab if x is not None]
            twice = {x for x in seen if seen.count(x) > 1}
            st.bad(twice, f"on two axes of the result of {_where(op)}")
            if any(x is not None for x in lab):
                st.labels[v] = tuple(lab)
    facts.unsafe = dict(sorted(st.unsafe.items()))
    return facts
