"""The tile-graph: ``tile.compute`` ops are nodes, SSA tensors are edges (DESIGN §4).

Besides producers and consumers, a node knows the facts the fusion rules need: whether it is elementwise,
which of its accesses read which producer, and whether an access is an *identity* (the consumer reads the
producer element at its own output coordinates, up to size-1 dims indexed by 0)."""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ...ir.texpr import parse_texpr
from ...ir.texpr.nodes import AxisRef, Num


@functools.lru_cache(maxsize=4096)
def _parsed(text: str):
    """Parsing a tensor expression (LALR over the lark grammar) dominated welder's time on BERT-base; the
    12 layers repeat the same few expressions, and a parsed expression is never mutated."""
    return parse_texpr(text)


@dataclass
class Node:
    """One ``tile.compute`` op in function order (``index``), with its parsed expression."""

    index: int
    op: object
    expr: object
    extents: dict
    producers: dict = field(default_factory=dict)   # operand position -> producer Node index
    consumers: list = field(default_factory=list)   # Node indices, in function order
    external_use: bool = False                      # a result used by a non-compute op or the return

    @property
    def elementwise(self) -> bool:
        return self.expr.combiner is None

    @property
    def shape(self) -> tuple:
        return tuple(self.op.result.type.shape)

    @property
    def out_bytes(self) -> int:
        from ...ir.types import itemsize
        return math.prod(self.shape) * itemsize(self.op.result.type.dtype)

    def accesses_of(self, operand: int) -> list:
        """The accesses of the texpr input bound to operand position ``operand``."""
        name = self.expr.inputs[operand]
        return [a for a in self.expr.accesses if a.tensor == name]

    def label(self) -> str:
        return self.op.attributes.get("origin", "tile.compute")


def plain_f32(nodes: list) -> bool:
    """Every operand and result is f32 and no member is a permuting layout op: what the shared-memory
    fusion kinds (conv chains, back-to-back GEMMs) are written for."""
    if any(d != "f32" for n in nodes for d in [v.type.dtype for v in n.op.operands] + [n.op.result.type.dtype]):
        return False
    return not any(permuting_layout(n) is not None for n in nodes)


def outside_values(ops: list) -> list:
    """Values ``ops`` read that none of them defines, first use first: a group's kernel operands, in the order
    the welder pass gives its ``tile.kernel`` (the fused lowerings rely on the same order)."""
    inside = {id(op) for op in ops}
    values: list = []
    for op in ops:
        for v in op.operands:
            if (v.defining_op is None or id(v.defining_op) not in inside) and all(v is not a for a in values):
                values.append(v)
    return values


def is_identity(node: Node, access) -> bool:
    """``access`` reads its tensor at ``node``'s own output coordinates (size-1 dims may read index 0)."""
    axes = node.expr.out_axes
    if len(access.indices) != len(axes):
        return False
    for ix, ax in zip(access.indices, axes):
        if isinstance(ix, AxisRef) and ix.name == ax:
            continue
        if isinstance(ix, Num) and ix.value == 0 and node.extents[ax] == 1:
            continue
        return False
    return True


class TileGraph:
    """The compute ops of one function body, in order, with their producer/consumer edges."""

    def __init__(self, block):
        self.block = block
        self.nodes: list[Node] = []
        by_op = {}
        for op in block.ops:
            if op.name != "tile.compute":
                continue
            expr = _parsed(op.attributes["expr"])
            shapes = [tuple(v.type.shape) for v in op.operands]
            extents = dict(expr.axis_extents(shapes, tuple(op.result.type.shape), op.attributes.get("axes")))
            node = Node(len(self.nodes), op, expr, extents)
            by_op[id(op)] = node
            self.nodes.append(node)
        for node in self.nodes:
            for i, v in enumerate(node.op.operands):
                prod = by_op.get(id(v.defining_op)) if v.defining_op is not None else None
                if prod is not None:
                    node.producers[i] = prod.index
                    if node.index not in prod.consumers:
                        prod.consumers.append(node.index)
            for user, _ in node.op.result.uses:
                if id(user) not in by_op:
                    node.external_use = True
        self.position = {id(op): i for i, op in enumerate(block.ops)}

    def pos(self, node: Node) -> int:
        """The node's position among all ops of the block (not only computes)."""
        return self.position[id(node.op)]

    def positions_of(self, users) -> list:
        """Block positions of ``users`` (an op nested in a region counts at its top-level ancestor)."""
        out = []
        for user in users:
            anc = user
            while anc is not None and id(anc) not in self.position:
                anc = anc.parent_op
            out.append(self.position[id(anc)] if anc is not None else len(self.position))
        return out


def layout_map(node: Node) -> list | None:
    """For a pure layout op (one read, no arithmetic: a transpose, possibly through a folded reshape) that
    reads every element of its input exactly once, ``[(input dim, coefficient, extent)]`` per output axis:
    output axis ``a`` is ``(input coordinate / coefficient) % extent``, so a producer fused with it can store
    its own element straight to the layout op's output (DESIGN §4, register level). None otherwise."""
    from ...ir.texpr.affine import to_affine
    from ...ir.texpr.nodes import Access
    body = node.expr.body
    if not node.elementwise or len(node.expr.inputs) != 1 or not isinstance(body, Access):
        return None
    shape = node.op.operands[0].type.shape
    if math.prod(shape) != math.prod(node.shape):
        return None
    where = {}
    for dim, (ix, size) in enumerate(zip(body.indices, shape)):
        aff = to_affine(ix)
        if aff is None or aff.const != 0:
            return None
        terms = sorted((c, a) for a, c in aff.coeffs if node.extents[a] > 1)
        stride = 1
        for c, a in terms:
            if c != stride or a in where:
                return None   # not a mixed radix: some element is read twice or never
            where[a] = (dim, c, node.extents[a])
            stride *= node.extents[a]
        if stride != size:
            return None
    if any(node.extents[a] > 1 and a not in where for a in node.expr.out_axes):
        return None
    return [where.get(a, (0, 1, 1)) for a in node.expr.out_axes]


def permuting_layout(node: Node) -> list | None:
    """:func:`layout_map` of a layout op that actually moves elements (not an identity copy), else None."""
    where = layout_map(node)
    return None if where is None or is_identity(node, node.expr.accesses[0]) else where
