"""The launch graph of a lowered ``@main``: every non-structural op is a node (kernel launches, host ops,
views), an edge runs from the op defining a value to each op using it, and a node's *level* is the length of
the longest path to it from the function's inputs. Ops of one level have all their inputs ready together:
that is Rammer's wave."""
from __future__ import annotations

from ...ir.core import Operation

# Ops that carry no work and never order anything (constants are ready at the start).
_FREE = ("tile.const", "func.return")


def outer_operands(op: Operation) -> list:
    """The values ``op`` reads, including those its regions (Loop / If bodies) use from outside."""
    inner, out = set(), []
    for o in op.walk():
        inner.update(id(r) for r in o.results)
        for region in o.regions:
            for block in region.blocks:
                inner.update(id(a) for a in block.args)
    for o in op.walk():
        out.extend(v for v in o.operands if id(v) not in inner)
    return out


class LaunchGraph:
    """Nodes, producers and levels of ``fn``'s ops, in program order."""

    def __init__(self, fn: Operation):
        self.fn = fn
        self.ops = [op for op in fn.body.ops if op.name not in _FREE]
        index = {id(op): i for i, op in enumerate(self.ops)}
        self.producers: list = []
        self.level: list = []
        for op in self.ops:
            prods = sorted({index[id(v.owner)] for v in outer_operands(op)
                            if isinstance(v.owner, Operation) and id(v.owner) in index})
            self.producers.append(prods)
            self.level.append(1 + max((self.level[p] for p in prods), default=-1))

    def waves(self) -> list:
        """``[[node, ...] per level]``, each in program order."""
        out: list = [[] for _ in range(max(self.level, default=-1) + 1)]
        for i, lv in enumerate(self.level):
            out[lv].append(i)
        return out

    def consumers(self) -> list:
        out: list = [[] for _ in self.ops]
        for i, prods in enumerate(self.producers):
            for p in prods:
                out[p].append(i)
        return out
