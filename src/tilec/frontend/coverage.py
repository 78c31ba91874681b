"""Which ops of an ONNX graph tilec cannot convert, counted per op type, so the importer names every one
of them in one diagnostic instead of stopping at the first (a real export often lacks several)."""
from __future__ import annotations

from dataclasses import dataclass

import onnx

from .registry import get_converter

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class Unsupported:
    """One unsupported op type: how many nodes use it and the first one, in file order."""

    op_type: str
    domain: str
    count: int
    first: str

    def describe(self) -> str:
        what = f"'{self.op_type}'" + (f" from domain '{self.domain}'" if self.domain not in DEFAULT_DOMAINS else "")
        nodes = f"{self.count} node{'s' if self.count != 1 else ''}"
        return f"{what}: {nodes}, first '{self.first}'"


def node_label(index: int, node: onnx.NodeProto) -> str:
    """A node's name, or ``OpType_index`` for an unnamed one (the importer's label for it too)."""
    return node.name or f"{node.op_type}_{index}"


def walk_nodes(graph: onnx.GraphProto, prefix: str = ""):
    """``(label, node)`` for every node of ``graph`` in file order, each followed by the nodes of its Loop / If /
    Scan bodies (labelled ``holder/node``), depth first."""
    for index, node in enumerate(graph.node):
        label = prefix + node_label(index, node)
        yield label, node
        for a in node.attribute:   # by the attribute's type: a malformed one may fill fields of another
            if a.type == onnx.AttributeProto.GRAPH:
                yield from walk_nodes(a.g, f"{label}/")
            elif a.type == onnx.AttributeProto.GRAPHS:
                for g in a.graphs:
                    yield from walk_nodes(g, f"{label}/")


def qualified(domain: str, op_type: str) -> str:
    """An op type as tables name it: bare for the default ONNX domain, ``domain.Op`` for another."""
    return op_type if domain in DEFAULT_DOMAINS else f"{domain}.{op_type}"


def unsupported_ops(graph: onnx.GraphProto) -> list:
    """:class:`Unsupported` per op type no converter handles (or from a domain tilec does not import), in
    the order of first use; Loop / If / Scan bodies are searched too, after the node that holds them."""
    found: dict = {}
    for label, node in walk_nodes(graph):
        default = node.domain in DEFAULT_DOMAINS
        if not default or get_converter(node.op_type) is None:
            key = ("" if default else node.domain, node.op_type)
            entry = found.get(key)
            if entry is None:
                found[key] = Unsupported(node.op_type, node.domain, 1, label)
            else:
                entry.count += 1
    return list(found.values())
