"""Hand-written CUDA for opaque graph ops (gather, resize, ...): each module registers a function
``fn(op, name) -> kernel.func | None`` under the op name; ops without one stay on the host.

A hand-written body is text, so the passes cannot ask its IR what it does: each entry declares it as
:class:`SourceFacts` (``facts=``, a function of the built kernel), found again by the kernel's ``origin``
(the op name). Hand-written kernels lowered elsewhere declare theirs with :func:`declare_source_facts`
(their modules are in :data:`ELSEWHERE`, so a module read back from text finds them too)."""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

_KERNELS: dict = {}
_FACTS: dict = {}
# Modules outside this package that write hand-written kernels and declare their facts here.
ELSEWHERE = ("tilec.backend.lower.argreduce",)


@dataclass(frozen=True)
class SourceFacts:
    """What a hand-written body does, declared by its author. The default is the conservative answer for a
    body nobody described: it synchronises, uses shared memory and reads the real launch shape.

    ``index_lets``: ``(line, ctype, name, tree)`` for each source line ``const ctype name = tree;`` through
    which the body reads ``blockIdx.x`` / ``threadIdx.x``; a virtual block (thread) index is rendered into
    exactly these lines (``kernel_facts.source_body``). ``other_reads``: the index registers (``kexpr``
    ``Special`` nodes) the body also reads elsewhere, which therefore cannot be replaced; None: unknown."""

    barrier: bool = True
    shuffle: bool = True
    shared: bool = True
    shape_bound: bool = True
    block_axes: frozenset = frozenset("x")
    index_lets: tuple = ()
    other_reads: frozenset | None = None

    def reads_only_declared(self, node) -> bool:
        """Whether the body reads register ``node`` only in its declared index lines."""
        return self.other_reads is not None and node not in self.other_reads


UNKNOWN = SourceFacts()


def opaque_kernel(op_name: str, facts=None):
    """Register ``fn(op, name)`` as the kernel builder of graph op ``op_name``; ``facts(kernel) ->
    SourceFacts`` declares what its hand-written bodies do."""
    def deco(fn):
        _KERNELS[op_name] = fn
        if facts is not None:
            _FACTS[op_name] = facts
        return fn
    return deco


def declare_source_facts(*op_names: str):
    """Register ``facts(kernel) -> SourceFacts`` for the hand-written kernels of ``op_names`` lowered outside
    this package (their module must be listed in :data:`ELSEWHERE`)."""
    def deco(facts):
        for name in op_names:
            _FACTS[name] = facts
        return facts
    return deco


def source_facts(kernel) -> SourceFacts:
    """The declared :class:`SourceFacts` of a ``kernel.func`` with a ``source``, or :data:`UNKNOWN`."""
    _load()
    a = kernel.attributes
    facts = _FACTS.get(a.get("origin")) if a.get("kind") == "opaque" else None
    return facts(kernel) if facts is not None else UNKNOWN


def _load() -> None:
    if not _KERNELS:
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
            importlib.import_module(f"{__name__}.{info.name}")
        for name in ELSEWHERE:
            importlib.import_module(name)


def lower_opaque(op, index: int):
    """The ``kernel.func`` of an opaque op, or None when it has no hand-written kernel (or this instance is
    not supported: dynamic shapes, unusual attributes)."""
    _load()
    fn = _KERNELS.get(op.name)
    if fn is None or not all(getattr(v.type, "is_static", False) for v in list(op.operands) + op.results):
        return None
    from ..lower import kernel_symbol
    func = fn(op, kernel_symbol(index, op.name, "opaque"))
    if func is not None:
        func.attributes.setdefault("origin", op.name)
        func.loc = op.loc
    return func
