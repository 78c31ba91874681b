"""What the importer checks of an ONNX graph before any converter sees a node: the order nodes convert in
(every input defined first; a tensor produced twice, an input nothing defines and a cycle are errors) and each
node against its ONNX schema at the model's opset (the op exists there and means there what tilec converts,
arity, absent required inputs, attribute types and required attributes). Converters read attributes
leniently, so a malformed node is rejected here rather than half-understood.
"""
from __future__ import annotations

import heapq

import onnx

from ..ir.diagnostics import CompileError
from .coverage import node_label

MIN_OPSET = 7


def toposort(graph: onnx.GraphProto, defined, file: str) -> list:
    """``[(index, node)]`` of ``graph`` in an order where every input is ``defined`` (names already bound)
    or produced by an earlier node: the file's order wherever that is already valid, so output is
    deterministic. CompileError for a tensor produced twice, an undefined input or a cycle."""
    nodes = list(graph.node)
    available = set(defined)
    produced = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if not o:
                continue
            if o in produced or o in available:
                raise CompileError(f"tensor '{o}' is produced twice (node '{node_label(i, n)}')", file)
            produced[o] = i
    waiting = {}
    ready, order = [], []
    missing_count = []
    for i, n in enumerate(nodes):
        deps = {x for x in n.input if x and x not in available}
        for x in deps:
            if x not in produced:
                raise CompileError(f"node '{node_label(i, n)}' reads tensor '{x}', which nothing defines", file)
            waiting.setdefault(x, []).append(i)
        missing_count.append(len(deps))
        if not deps:
            ready.append(i)
    heapq.heapify(ready)  # the lowest ready index first: the file's order whenever it is valid
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for o in nodes[i].output:
            for j in waiting.get(o, ()):
                missing_count[j] -= 1
                if missing_count[j] == 0:
                    heapq.heappush(ready, j)
    if len(order) != len(nodes):
        stuck = next(i for i in range(len(nodes)) if missing_count[i] > 0)
        raise CompileError(f"the graph has a cycle: node '{node_label(stuck, nodes[stuck])}' can never run", file)
    return [(i, nodes[i]) for i in order]


def check_opset(ctx, node: onnx.NodeProto, since: int) -> None:
    """``node`` at ``ctx.opset`` is an op its converter (first opset ``since``) handles."""
    if ctx.opset < MIN_OPSET and not _same_as_min_opset(node.op_type, ctx.opset):
        # Before opset 7 ops had other semantics (e.g. Add's broadcast attribute); tilec accepts an
        # older opset only for ops whose definition did not change since.
        raise ctx.error(node, f"ONNX op '{node.op_type}' at opset {ctx.opset} is not supported "
                              f"(tilec supports opset {MIN_OPSET} and newer)")
    if ctx.opset < since:
        raise ctx.error(node, f"ONNX op '{node.op_type}' needs opset {since} or newer (the model uses "
                              f"opset {ctx.opset})")


def _same_as_min_opset(op_type: str, opset: int) -> bool:
    try:
        old = onnx.defs.get_schema(op_type, opset, "")
        new = onnx.defs.get_schema(op_type, MIN_OPSET, "")
    except onnx.defs.SchemaError:
        return False
    return old.since_version == new.since_version


def check_schema(ctx, node: onnx.NodeProto) -> None:
    """Arity, required inputs and attributes, and attribute types of ``node`` from the ONNX schema at
    ``ctx.opset``; errors through ``ctx.error`` (they name the node)."""
    facts = _schema_facts(node.op_type, ctx.opset)
    if facts is None:
        raise ctx.error(node, f"ONNX op '{node.op_type}' does not exist at opset {ctx.opset}")
    min_in, max_in, single, declared, required = facts
    n_in = len(node.input)
    if n_in < min_in or n_in > max_in:
        raise ctx.error(node, f"'{node.op_type}' takes {min_in} to {max_in} inputs, got {n_in}")
    for i, (name, (formal, is_single)) in enumerate(zip(node.input, single)):
        if not name and is_single:  # '' means absent: only optional inputs may be
            raise ctx.error(node, f"'{node.op_type}' input #{i} ('{formal}') is required but absent")
    kinds = onnx.AttributeProto.AttributeType
    for a in node.attribute:
        spec = declared.get(a.name)
        if spec is not None and not a.ref_attr_name and int(a.type) != spec[0]:
            got = kinds.Name(a.type).lower() if a.type in kinds.values() else f"#{a.type}"
            raise ctx.error(node, f"attribute '{a.name}' of '{node.op_type}' must be of type {spec[1]}, got {got}")
    if required:
        given = {a.name for a in node.attribute}
        for name in required:
            if name not in given:
                raise ctx.error(node, f"'{node.op_type}' requires attribute '{name}'")


_SCHEMA_FACTS: dict = {}   # (op_type, opset) -> _schema_facts: a model has thousands of nodes of few ops


def _schema_facts(op_type: str, opset: int):
    """What check_schema reads of the ONNX schema, read once per op and opset (onnx builds the schema's
    Python objects on every get_schema): (min inputs, max inputs, ((formal name, is single), ...),
    {attribute: (type number, type name)}, required attributes in schema order); None: no such op."""
    key = (op_type, opset)
    if key not in _SCHEMA_FACTS:
        try:
            schema = onnx.defs.get_schema(op_type, opset, "")
        except onnx.defs.SchemaError:
            _SCHEMA_FACTS[key] = None
        else:
            single = onnx.defs.OpSchema.FormalParameterOption.Single
            declared = schema.attributes
            _SCHEMA_FACTS[key] = (
                schema.min_input, schema.max_input,
                tuple((f.name, f.option == single) for f in schema.inputs),
                {n: (int(a.type), a.type.name.lower()) for n, a in declared.items()},
                tuple(n for n, a in declared.items() if a.required))
    return _SCHEMA_FACTS[key]
