"""Where a model reads dynamic tensor sizes as values: the part of padding safety the graph IR cannot show.

The importer folds ``Shape`` and ``Size`` into constants, so ``x / Cast(Shape(x)[0])`` reaches the graph IR
as a division by a number, and padding the dim would silently change it. :func:`size_value_uses` walks the
ONNX graph (and its subgraphs) instead. A *size* is what ``Shape`` / ``Size`` give for a dim that is not a
fixed number after ONNX shape inference, known by the ``dim_param`` inference gives it (``?`` where it has
none). 1-D shape tensors are followed element by element through the usual shape bookkeeping (``Gather`` /
``Slice`` with constant indices, ``Concat``, ``Squeeze``, ``Unsqueeze``), so ``Cast(Shape(k)[-1])`` for a
fixed head size is no size at all and ``Shape(x)[1]`` is only ``seq``. A size may end in an input where it
means a shape (``Reshape``'s target, ``Expand``'s shape, ``ConstantOfShape``, ``Range``'s limit, a
``Slice``'s end: their results do not change at the indices that survive slicing) or pass through integer
arithmetic on its way there; anything else that reads one is listed with the dims it may carry, and the
profile builder pads none of those (``analysis/padding.py``, ``driver_profile.py``).
"""
from __future__ import annotations

import numpy as np

# Ops through which a size stays shape bookkeeping (integer index arithmetic); sizes flow through them.
PASS_THROUGH = frozenset("""Gather Slice Concat Unsqueeze Squeeze Reshape Identity Add Sub Mul Div Mod Max Min
Abs Neg Floor Ceil Equal Less Greater Not Where""".split())
# (op type, input index) where a size is consumed as a shape: the result at an index that survives slicing
# does not depend on it (a slice's end only cuts, a range's limit only stops).
SHAPE_INPUTS = frozenset({("Reshape", 1), ("Expand", 1), ("ConstantOfShape", 0), ("Range", 1), ("Slice", 2)})
INT_TYPES = frozenset({6, 7, 9, 12, 13})   # TensorProto INT32, INT64, BOOL, UINT32, UINT64
UNKNOWN = "?"   # a size of a dim inference cannot name: it may be any dim


def size_value_uses(model) -> list:
    """``("<op> '<node>'", dims)`` for every node of ``model`` (an ``onnx.ModelProto``; subgraphs included)
    that reads a dynamic size as a value, not as a shape; ``dims`` is the frozenset of the dims whose sizes it
    may read (by ``dim_param``; ``?`` for any). Empty when sizes only shape things."""
    dims = _inferred_dims(model)
    consts = {t.name: t for t in model.graph.initializer}
    found: list = []
    _walk(model.graph, {}, dims, consts, found)
    return found


def _inferred_dims(model) -> dict:
    """Tensor name -> its dims after ONNX shape inference (an int, a ``dim_param``, or None where neither);
    empty where inference fails (then every size is of an unknown dim)."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - inference is an optimisation here; without it all sizes are unknown
        return {}
    g = inferred.graph
    out = {t.name: list(t.dims) for t in g.initializer}
    for vi in (*g.input, *g.value_info, *g.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape"):
            out[vi.name] = [int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
                            for d in tt.shape.dim]
    return out


def _const(name: str, consts: dict):
    from onnx import numpy_helper
    t = consts.get(name)
    return None if t is None else numpy_helper.to_array(t)


def _names(d) -> frozenset:
    """The dims a size of a tensor dim ``d`` (from :func:`_inferred_dims`) may read."""
    return frozenset() if isinstance(d, int) else frozenset({d or UNKNOWN})


def _union(value) -> frozenset:
    """Every dim a size value may read: a whole value is a frozenset, a 1-D one a tuple of them."""
    return value if isinstance(value, frozenset) else frozenset().union(*value)


def _flags(node, reads: dict, dims: dict, consts: dict):
    """What ``node``'s output holds: None (no dynamic size), a tuple with the dims of each element (a 1-D
    shape tensor followed element by element) or a frozenset of dims (a value of unknown structure)."""
    op = node.op_type
    if op in ("Shape", "Size"):
        shape = dims.get(node.input[0])
        if shape is None:
            return frozenset({UNKNOWN})
        if op == "Size":
            return _some(_union([_names(d) for d in shape]))
        start = next((a.i for a in node.attribute if a.name == "start"), 0)
        end = next((a.i for a in node.attribute if a.name == "end"), len(shape))
        return _some(tuple(_names(d) for d in shape[slice(start, end)]))
    flags = [reads.get(i) for i in range(len(node.input))]
    whole = _union([_union(f) for f in flags if f is not None])
    first = flags[0]
    if any(isinstance(f, frozenset) for f in flags) or first is None:
        return _some(whole)
    if op in ("Squeeze", "Unsqueeze", "Identity"):
        return first
    if op == "Gather" and flags[1] is None:
        idx = _const(node.input[1], consts)
        return whole if idx is None else _some(tuple(first[int(i)] for i in np.asarray(idx).reshape(-1)))
    if op == "Slice" and len(node.input) >= 3 and not any(f is not None for f in flags[1:]):
        bounds = [_const(n, consts) if n else None for n in node.input[1:5]]
        if bounds[0] is None or bounds[1] is None:
            return whole
        step = int(bounds[3][0]) if len(bounds) > 3 and bounds[3] is not None else 1
        return _some(first[int(bounds[0][0]):int(bounds[1][0]):step])
    if op == "Concat":
        parts = []
        for name, f in zip(node.input, flags):
            n = (dims.get(name) or [None])[0] if f is None else len(f)
            if not isinstance(n, int):
                return whole
            parts += list(f) if f is not None else [frozenset()] * n
        return _some(tuple(parts))
    return _some(whole)


def _some(value):
    return value if _union(value) else None


def _walk(graph, sized: dict, dims: dict, consts: dict, found: list) -> None:
    consts = {**consts, **{t.name: t for t in graph.initializer}}
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None:
                consts[node.output[0]] = value
        reads = {i: sized[n] for i, n in enumerate(node.input) if n in sized}
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        if node.op_type in ("Shape", "Size") or (reads and (node.op_type in PASS_THROUGH or (
                node.op_type == "Cast" and to in INT_TYPES))):
            if reads and all((node.op_type, i) in SHAPE_INPUTS for i in reads):
                continue   # Reshape's target: consumed as a shape
            try:
                flags = _flags(node, reads, dims, consts) if node.op_type != "Cast" else reads.get(0)
            except (IndexError, ValueError, TypeError):   # a malformed index: the importer reports it
                flags = _some(_union([_union(f) for f in reads.values()]) | {UNKNOWN})
            if flags is not None:
                sized.update({o: flags for o in node.output if o})
        elif reads and not all((node.op_type, i) in SHAPE_INPUTS for i in reads):
            used = _union([_union(f) for i, f in reads.items() if (node.op_type, i) not in SHAPE_INPUTS])
            found.append((f"{node.op_type} '{node.name or node.output[0]}'", used))
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _walk(sub, dict(sized), dims, consts, found)
    for out in graph.output:
        if out.name in sized:
            found.append((f"graph output '{out.name}'", _union(sized[out.name])))
