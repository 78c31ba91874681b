"""Where a model reads tensor sizes as values: the part of padding safety the graph IR cannot show.

The importer folds ``Shape`` and ``Size`` into constants, so ``x / Cast(Shape(x)[1])`` reaches the graph IR
as a division by a number, and padding the dim would silently change it. :func:`size_value_uses` walks the
ONNX graph (and its subgraphs) instead: a size may only feed shape bookkeeping (integer index arithmetic)
that ends in an op where it means a shape (``Reshape``'s target, ``Expand``'s shape, ``ConstantOfShape``,
``Range``'s limit: their results do not change at the indices that survive slicing). Anything else that
reads one is listed; the profile builder then refuses to pad any dim of the model
(``analysis/padding.py``).
"""
from __future__ import annotations

# Ops through which a size stays bookkeeping (index arithmetic on small integer tensors).
PASS_THROUGH = frozenset("""Gather Slice Concat Unsqueeze Squeeze Reshape Identity Add Sub Mul Div Max Min
Abs Neg Floor Ceil Shape Size""".split())
# (op type, input index) pairs where a size is consumed as a shape.
SHAPE_INPUTS = frozenset({("Reshape", 1), ("Expand", 1), ("ConstantOfShape", 0), ("Range", 1)})
INT_TYPES = frozenset({6, 7, 12, 13})   # TensorProto INT32, INT64, UINT32, UINT64


def size_value_uses(graph) -> list:
    """``"<op> '<node>'"`` for every node of ``graph`` (an ``onnx.GraphProto``; subgraphs included) that
    reads a tensor size as a value, not as a shape; empty when sizes only shape things."""
    sized: set = set()
    found: list = []
    _walk(graph, sized, found)
    return found


def _walk(graph, sized: set, found: list) -> None:
    for node in graph.node:
        reads = [i for i, name in enumerate(node.input) if name in sized]
        if node.op_type in ("Shape", "Size"):
            sized.update(o for o in node.output if o)
        elif reads:
            to = next((a.i for a in node.attribute if a.name == "to"), None)
            if node.op_type in PASS_THROUGH or (node.op_type == "Cast" and to in INT_TYPES):
                if not all((node.op_type, i) in SHAPE_INPUTS for i in reads):
                    sized.update(o for o in node.output if o)
            elif not all((node.op_type, i) in SHAPE_INPUTS for i in reads):
                found.append(f"{node.op_type} '{node.name or node.output[0]}'")
        for a in node.attribute:
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                inner = set(sized)
                _walk(sub, inner, found)
    for out in graph.output:
        if out.name in sized:
            found.append(f"graph output '{out.name}'")
