"""What a ``kernel.func`` does, asked of its IR: does it synchronise the block, is its grid shape-bound, which
block indices does it read? Rammer, Grinder and the persistent lowerings decide packing and guarding from
these facts, never from the rendered text.

A kernel built as kernel IR answers from its statement ops and their expression trees (``ir/kexpr``: every
expression attribute of :data:`EXPR_ATTRS` parses into one). A kernel with a hand-written ``source`` has no
IR to ask: its author declares the facts (:class:`SourceFacts`, registered with the hand-written kernel in
``backend/opaque``); an undeclared one gets the conservative answer (synchronises, shape-bound)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.kexpr import Call, Special, render, walk
from ..ir.kexpr.attrs import EXPR_ATTRS, expressions
from .opaque import SourceFacts, source_facts
from .opaque.common import let_line

SYNC_OPS = ("kernel.barrier", "kernel.warp_reduce")
# Calls that every thread of the block (``__syncthreads*``) or of the warp (``__shfl*``) must make together.
BARRIER_CALL_PREFIX = "__syncthreads"
SHUFFLE_CALL_PREFIX = "__shfl"
CLUSTER_CALL_PREFIX = "tl_cluster_"


def kernel_expressions(kernel):
    """Every expression tree of ``kernel``'s body (a ``kernel.func`` built as kernel IR)."""
    for op in kernel.walk():
        for _, tree in expressions(op):
            yield tree


@dataclass(frozen=True)
class KernelFacts:
    """The structural facts of one kernel.

    ``barrier``: it meets the block at a barrier (``__syncthreads``); ``shuffle``: warp lanes exchange values
    (a warp reduce, ``__shfl*``); ``shared``: it declares shared arrays; ``shape_bound``: it reads the real
    launch shape (``gridDim``, ``blockDim``, ``blockIdx.y|z``), dynamic shared memory or a cluster, so it
    cannot run with a virtual block index; ``block_axes``: the ``blockIdx`` axes it reads."""

    barrier: bool
    shuffle: bool
    shared: bool
    shape_bound: bool
    block_axes: frozenset

    @property
    def whole_block(self) -> bool:
        """Every thread of the block must run it (a narrower kernel runs guarded in a wider block)."""
        return self.barrier or self.shuffle

    @property
    def synchronises(self) -> bool:
        """Its threads depend on each other (barrier, shuffle or shared memory): Rammer's ``barriers``."""
        return self.barrier or self.shuffle or self.shared


def kernel_facts(kernel) -> KernelFacts:
    """The :class:`KernelFacts` of ``kernel`` (a ``kernel.func``)."""
    a = kernel.attributes
    dynamic = bool(a.get("smem", 0)) or a.get("cluster", 1) > 1
    if "source" in a:
        f = source_facts(kernel)
        return KernelFacts(f.barrier, f.shuffle, f.shared, f.shape_bound or dynamic, f.block_axes)
    barrier = shuffle = shared = bound = False
    axes = set()
    for op in kernel.walk():
        if op.name == "kernel.barrier":
            barrier = True
            bound = bound or op.attributes.get("scope") == "cluster"
        shuffle = shuffle or op.name == "kernel.warp_reduce"
        shared = shared or op.name == "kernel.shared"
    for tree in kernel_expressions(kernel):
        for node in walk(tree):
            if isinstance(node, Special) and node.kind != "threadIdx":
                bound = bound or node.kind != "blockIdx" or node.axis != "x"
                if node.kind == "blockIdx":
                    axes.add(node.axis)
            elif isinstance(node, Call):
                barrier = barrier or node.fn.startswith(BARRIER_CALL_PREFIX)
                shuffle = shuffle or node.fn.startswith(SHUFFLE_CALL_PREFIX)
                bound = bound or node.fn.startswith(CLUSTER_CALL_PREFIX)
    return KernelFacts(barrier, shuffle, shared, bound or dynamic, frozenset(axes))


def source_body(kernel, replace: dict | None = None) -> list:
    """The lines of ``kernel``'s hand-written ``source`` with ``replace`` (node -> node) applied to the index
    lines its :class:`SourceFacts` declare: the one way a virtual block or thread index reaches text that has
    no IR. Raises ValueError when a declared line is not the text the declaration renders to, or when a
    replaced register is also read outside the declared lines."""
    lines = kernel.attributes["source"].strip("\n").split("\n")
    if not replace:
        return lines
    f = source_facts(kernel)
    declared = {i: (ctype, name, tree) for i, ctype, name, tree in f.index_lets}
    if any(isinstance(n, Special) and not f.reads_only_declared(n) for n in replace):
        raise ValueError(f"kernel {kernel.sym_name}: its source reads {sorted(map(render, replace))} outside "
                         f"its declared index lines")
    out = []
    for i, line in enumerate(lines):
        if i in declared:
            ctype, name, tree = declared[i]
            if line != let_line(ctype, name, tree):
                raise ValueError(f"kernel {kernel.sym_name}: source line {i} is not its declared index line")
            line = let_line(ctype, name, tree, replace)
        out.append(line)
    return out


__all__ = ["EXPR_ATTRS", "KernelFacts", "SourceFacts", "expressions", "kernel_expressions", "kernel_facts",
           "source_body"]
