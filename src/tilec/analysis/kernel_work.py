"""What one block of a lowered ``kernel.func`` does, read from its kernel IR (for the latency model, issue #18).

A walk over the kernel's ops counts, per block, multiplying by the trip counts of the ``kernel.for`` loops
around them:
- ``barriers``: ``kernel.barrier`` (``__syncthreads``) the block passes;
- ``smem_accesses``: elements of ``kernel.shared`` arrays read or written, over all the block's threads;
- ``sfu_ops``: calls of special-function intrinsics (exp, tanh, erf, rsqrt, ...), over all threads;
- ``shuffles``: warp-shuffle steps of ``kernel.warp_reduce`` (log2 of the warp per reduction), per thread summed.

A loop whose start depends on the thread (``lo = "threadIdx.x"``, ``step`` = the block) is a block-stride loop:
its iterations are spread over the threads, so the block runs ``(hi - 0) / step`` per thread on average. A loop
bound that is not a number (rare: data-dependent) counts once. ``kernel.if`` bodies count as taken (an upper
bound). A shared element whose subscripts do not use a loop's variable is read once across that loop (kept in
a register: the loops are unrolled, or nvcc hoists the load); writes always count. Expressions are the IR's
own attribute strings (``kernel.assign``'s ``value``, ``kernel.load``'s ``target``): they are split into
identifiers and subscripts, never matched against rendered CUDA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SFU_CALLS = frozenset({"expf", "__expf", "exp2f", "logf", "__logf", "log2f", "tanhf", "erff", "rsqrtf", "sqrtf",
                       "sinf", "cosf", "__sinf", "__cosf", "powf", "__fdividef"})


@dataclass(frozen=True)
class BlockWork:
    """Per-block counts (see the module docstring); ``known`` is False for a kernel with no kernel IR body
    (a hand-written source), whose counts are zeros."""

    barriers: float = 0.0
    smem_accesses: float = 0.0
    sfu_ops: float = 0.0
    shuffles: float = 0.0
    known: bool = True


def _scan(text: str) -> list:
    """The identifiers of an IR expression in order, as ``(name, next character, identifiers inside the
    brackets that follow it)``: ``k_s0[ax_m][ax_k]`` gives ``("k_s0", "[", {"ax_m", "ax_k"})``."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] in "_."):
                j += 1
            k = j
            while k < n and text[k] == " ":
                k += 1
            nxt, inside = (text[k] if k < n else ""), set()
            if nxt == "[":   # the subscripts: every [..] group right after the name
                depth, m = 0, k
                while m < n and (depth or text[m] == "["):
                    depth += text[m] == "["
                    depth -= text[m] == "]"
                    m += 1
                inside = {name for name, _, _ in _scan(text[k + 1:m - 1])}
            out.append((text[i:j], nxt, inside))
            i = j
        elif c.isdigit():   # a number (with any suffix letters) is not an identifier
            while i < n and (text[i].isalnum() or text[i] in "._"):
                i += 1
        else:
            i += 1
    return out


def _number(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def loop_trips(attrs: dict, consts: dict | None = None, threads: int = 1) -> float:
    """Iterations of one ``kernel.for`` per thread (fractional for a block-stride loop). Bounds may name a
    ``kernel.let`` constant (``consts``); a block-stride loop whose step is not known strides by the block."""
    def value(key, default):
        v = attrs.get(key, default)
        return _number(consts.get(v, v) if consts and isinstance(v, str) else v)
    lo, hi, step = value("lo", 0), value("hi", None), value("step", 1)
    if hi is None:
        return 1.0
    if step is None or step <= 0:
        step = float(threads) if lo is None else 1.0
    if lo is None:   # thread-dependent start: a block-stride loop, spread over the threads
        return max(0.0, hi / step)
    return float(max(0, math.ceil((hi - lo) / step)))


def block_work(kernel) -> BlockWork:
    """:class:`BlockWork` of ``kernel`` (a ``kernel.func``)."""
    if not kernel.regions or not kernel.regions[0].blocks[0].ops or "source" in kernel.attributes:
        return BlockWork(known=False)
    threads = math.prod(kernel.attributes["block"])
    shared = {op.attributes["name"] for op in kernel.walk() if op.name == "kernel.shared"}
    tally = {"barriers": 0.0, "smem": 0.0, "sfu": 0.0, "shuffles": 0.0}
    deps: dict = {}   # kernel.let name -> the loop variables its value depends on
    consts: dict = {}  # kernel.let name -> its value, when that is a number (loop bounds name them)

    def depends(names) -> set:
        out = set()
        for name in names:
            out |= deps.get(name, {name})
        return out

    def expr(text, loops: list, write: bool) -> None:
        for name, nxt, inside in _scan(str(text)):
            if nxt == "[" and name in shared:
                # A shared element read in a loop whose variable its subscripts do not use is kept in a
                # register across that loop (the loops are unrolled, or hoisted by nvcc's LICM): it costs the
                # trips of the loops it depends on only. A write happens every time.
                used = depends(inside)
                tally["smem"] += math.prod(t for var, t, stride in loops if write or stride or var in used)
            elif nxt == "(" and name in SFU_CALLS:
                tally["sfu"] += math.prod(t for _, t, _ in loops)

    def visit(ops, loops: list) -> None:
        for op in ops:
            a = op.attributes
            if op.name == "kernel.for":
                stride = _number(a.get("lo", 0)) is None   # a block-stride loop: no register reuse across it
                inner = loops + [(a.get("var"), loop_trips(a, consts, threads), stride)]
                for r in op.regions:
                    visit(r.blocks[0].ops, inner)
                continue
            mult = math.prod(t for _, t, _ in loops)
            if op.name == "kernel.let":
                deps[a["name"]] = depends(name for name, _, _ in _scan(str(a.get("value", ""))))
                if _number(a.get("value")) is not None:
                    consts[a["name"]] = a["value"]
            elif op.name == "kernel.barrier":
                tally["barriers"] += mult
            elif op.name == "kernel.warp_reduce":
                tally["shuffles"] += mult * math.log2(max(2, int(a.get("width", 32) or 32)))
            for key in ("target", "value", "index", "pred"):
                if key in a:
                    expr(a[key], loops, key == "target")
            for r in op.regions:
                visit(r.blocks[0].ops, loops)

    visit(kernel.regions[0].blocks[0].ops, [])
    # Counts so far are per thread (each thread runs the body); barriers are per block.
    return BlockWork(barriers=tally["barriers"], smem_accesses=tally["smem"] * threads,
                     sfu_ops=tally["sfu"] * threads, shuffles=tally["shuffles"] * threads)
