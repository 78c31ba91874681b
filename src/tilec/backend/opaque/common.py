"""Shared helpers of the hand-written kernels: params from an op's operands and results, and the kernel.func
that carries a hand-written body in its ``source`` attribute."""
from __future__ import annotations

import math

from ...analysis.hardware import target_spec
from ...ir.kexpr import render
from ...ir.types import itemsize
from ..cstyle import sanitize_identifier
from ..lower.builder import KernelBuilder, thread_index
from . import SourceFacts

THREADS = 256


def params_of(op, in_names=None, out_names=None) -> list:
    """Kernel params for every operand (``in``) and result (``out``) of ``op``, with sanitised names."""
    taken: set = set()
    params = []
    for role, values, names in (("in", op.operands, in_names), ("out", op.results, out_names)):
        for i, v in enumerate(values):
            hint = (names[i] if names and i < len(names) else None) or f"{role}{i}"
            params.append({"name": sanitize_identifier(hint, taken, role), "dtype": v.type.dtype, "role": role,
                           "shape": list(v.type.shape)})
    return params


def elementwise_source_func(op, name: str, params: list, body: str, total: int, loaded_bytes: int):
    """A one-thread-per-output-element ``kernel.func`` whose body is ``body`` (C text using ``k_t``, the flat
    output index, already checked against ``total``)."""
    warp = target_spec(op).warp_size   # a small launch is still whole warps (wavefronts)
    threads = THREADS if total >= THREADS else max(warp, -(-total // warp) * warp)
    source = (f"{let_line('long long', 'k_t', flat_thread_index(threads))}\n"
              f"if (k_t >= {total}) return;\n{body.rstrip()}\n")
    out_bytes = sum(math.prod(p["shape"]) * itemsize(p["dtype"]) for p in params if p["role"] == "out")
    func = KernelBuilder().func(name, [max(1, -(-total // threads))], [threads], params, kind="opaque",
                                source=source, bytes_modelled=loaded_bytes + out_bytes, flops=0)
    return func


def flat_thread_index(threads: int, lanes_per_row: int = 1):
    """The ``long long`` flat index of a thread (of a warp, with 32 lanes per row), as a tree."""
    return thread_index(threads, "long long", lanes_per_row)


def elementwise_facts(kernel) -> SourceFacts:
    """The facts of :func:`elementwise_source_func`'s kernels: independent threads, the block and thread
    index read only in line 0 (``k_t``)."""
    return SourceFacts(barrier=False, shuffle=False, shared=False, shape_bound=False,
                       index_lets=((0, "long long", "k_t", flat_thread_index(kernel.attributes["block"][0])),),
                       other_reads=frozenset())


def let_line(ctype: str, name: str, tree, replace: dict | None = None) -> str:
    """``const ctype name = tree;`` (``replace``: the renderer's node replacements)."""
    return f"const {ctype} {name} = {render(tree, replace)};"


def coords(out_shape, flat: str = "k_t", prefix: str = "k_c") -> list:
    """C lines that split ``flat`` into row-major coordinates ``k_c0, k_c1, ...`` of ``out_shape``."""
    lines, stride = [], 1
    strides = []
    for d in reversed(out_shape):
        strides.append(stride)
        stride *= d
    strides.reverse()
    for i, (d, st) in enumerate(zip(out_shape, strides)):
        lines.append(f"const long long {prefix}{i} = ({flat} / {st}LL) % {d}LL;")
    return lines


def linear(names, shape) -> str:
    """Row-major linear index text of coordinate names over ``shape``."""
    text = "0LL"
    for n, d in zip(names, shape):
        text = f"({text}) * {d}LL + {n}"
    return text
