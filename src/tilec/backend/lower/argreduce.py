"""ArgMax / ArgMin kernels (``graph.arg_max`` / ``graph.arg_min``, ONNX semantics): the i64 index of the
largest (smallest) element of every row along ``axis``; the first one on a tie, or the last with
``select_last_index``. ``keepdims`` only changes the output's shape, not its row-major order.

A NaN wins over every number, as in numpy's ``argmax`` / ``argmin`` (the reference interpreter), so the
kernel and the host op agree. Half types compare as f32. Two shapes of kernel, neither using shared memory,
so both run as ``__device__`` functions inside rammer's and grinder's persistent kernels:

- ``arg_serial``: one thread per output row walks the row (rows of at most ``SERIAL_MAX`` elements);
- ``arg_warp``: one warp per row; lanes stride over the row, then a shuffle tree combines (value, index)
  pairs. The comparison is a total order (NaN first, then value, then index), so the result does not depend
  on which lane saw which element. A warp is the target's (``spec.warp_size``: 32, or a 64-lane wavefront).
"""
from __future__ import annotations

import math

from ...analysis.hardware import target_spec
from ...ir.kexpr import ThreadIdx
from ...ir.types import itemsize
from ..cstyle import CUDA
from ..opaque import SourceFacts, declare_source_facts
from ..opaque.common import flat_thread_index, let_line, params_of
from . import kernel_symbol
from .builder import KernelBuilder

SERIAL_MAX = 64        # longest row one thread walks alone
ROWS_PER_BLOCK = 8     # warps (rows) per block of the warp kernel
SERIAL_THREADS = 256
OPS = ("graph.arg_max", "graph.arg_min")
_DTYPES = ("f32", "f64", "f16", "bf16", "i32", "i64", "i8", "u8")


def lower_arg_reduce(op, index: int):
    """The ``kernel.func`` of an ``arg_max`` / ``arg_min`` op, or None when it stays on the host (dynamic
    shapes, an element type without a kernel)."""
    x, y = op.operands[0].type, op.results[0].type
    if not all(getattr(t, "is_static", False) for t in (x, y)) or x.dtype not in _DTYPES or x.rank == 0 \
            or y.dtype != "i64":
        return None
    axis = int(op.attributes.get("axis", 0))
    axis = axis + x.rank if axis < 0 else axis
    if not 0 <= axis < x.rank:
        return None  # the verifier rejects this; a kernel must not index outside the row
    reduce, inner = x.shape[axis], math.prod(x.shape[axis + 1:])
    rows = math.prod(x.shape) // max(1, reduce)
    if reduce == 0 or rows == 0:
        return None
    params = params_of(op, ["x"], ["y"])
    X, Y = params[0]["name"], params[1]["name"]
    last = bool(op.attributes.get("select_last_index", 0))
    better = _better(op.name == "graph.arg_max", last, x.dtype)
    load = f"{CUDA.convert(f'TL_LD({X}, k_base + k_j * {inner}LL)', x.dtype, _cmp_dtype(x.dtype))}"
    vt = CUDA.ctype(_cmp_dtype(x.dtype))
    head = [f"const long long k_base = (k_row / {inner}LL) * {reduce * inner}LL + k_row % {inner}LL;"]
    W = target_spec(op).warp_size
    if reduce <= SERIAL_MAX:
        threads = SERIAL_THREADS if rows >= SERIAL_THREADS else max(W, -(-rows // W) * W)
        lines = [let_line("long long", "k_row", flat_thread_index(threads)),
                 f"if (k_row >= {rows}LL) return;", *head,
                 "long long k_j = 0;",
                 f"{vt} k_best = {load};",
                 "long long k_bi = 0;",
                 f"for (k_j = 1; k_j < {reduce}LL; ++k_j) {{",
                 f"  const {vt} k_v = {load};",
                 f"  if ({better('k_v', 'k_j', 'k_best', 'k_bi')}) {{ k_best = k_v; k_bi = k_j; }}",
                 "}",
                 f"TL_ST({Y}, k_row, k_bi);"]
        grid, kind = -(-rows // threads), "arg_serial"
    else:
        threads = W * min(ROWS_PER_BLOCK, rows)
        width = "" if W == 32 else f", {W}"   # CUDA's default width is its 32-lane warp
        # A warp is either wholly in range or wholly out, so the early return never splits a shuffle.
        lines = [let_line("long long", "k_row", flat_thread_index(threads, W)),
                 f"if (k_row >= {rows}LL) return;", *head,
                 f"long long k_j = threadIdx.x & {W - 1};",
                 f"{vt} k_best = {load};",
                 "long long k_bi = k_j;",
                 f"for (k_j += {W}; k_j < {reduce}LL; k_j += {W}) {{",
                 f"  const {vt} k_v = {load};",
                 f"  if ({better('k_v', 'k_j', 'k_best', 'k_bi')}) {{ k_best = k_v; k_bi = k_j; }}",
                 "}",
                 f"for (int k_off = {W // 2}; k_off > 0; k_off >>= 1) {{",
                 f"  const {vt} k_v = __shfl_down_sync(0xffffffffu, k_best, k_off{width});",
                 f"  const long long k_i = __shfl_down_sync(0xffffffffu, k_bi, k_off{width});",
                 f"  if ({better('k_v', 'k_i', 'k_best', 'k_bi')}) {{ k_best = k_v; k_bi = k_i; }}",
                 "}",
                 f"if ((threadIdx.x & {W - 1}) == 0) TL_ST({Y}, k_row, k_bi);"]
        grid, kind = -(-rows // (threads // W)), "arg_warp"
    total = math.prod(x.shape)
    func = KernelBuilder().func(
        kernel_symbol(index, op.name, "arg"), [max(1, grid)], [threads], params, kind="opaque",
        source="\n".join([f"// {kind}: {_WHAT[kind]}", *lines]) + "\n", flops=total,
        bytes_modelled=total * itemsize(x.dtype) + rows * 8, origin=op.name)
    func.loc = op.loc
    return func


@declare_source_facts(*OPS)
def arg_reduce_facts(kernel) -> SourceFacts:
    """What the two hand-written bodies do: line 1 (after the comment) reads the block and thread index
    into ``k_row``; the warp kernel also reads ``threadIdx.x`` for its lane and shuffles."""
    threads = kernel.attributes["block"][0]
    x, y = (p["shape"] for p in kernel.attributes["params"])
    warp = math.prod(x) // max(1, math.prod(y)) > SERIAL_MAX
    # The warp width, from the kernel's own shape (a warp per row, ROWS_PER_BLOCK rows or all of them a block).
    lanes = threads // min(ROWS_PER_BLOCK, max(1, math.prod(y))) if warp else 1
    row = flat_thread_index(threads, lanes)
    return SourceFacts(barrier=False, shuffle=warp, shared=False, shape_bound=False,
                       index_lets=((1, "long long", "k_row", row),),
                       other_reads=frozenset({ThreadIdx()}) if warp else frozenset())


_WHAT = {"arg_serial": "one thread per output row", "arg_warp": "one warp per output row, shuffle tree"}


def _cmp_dtype(dtype: str) -> str:
    return "f32" if dtype in ("f16", "bf16") else dtype


def _better(is_max: bool, last: bool, dtype: str):
    """``f(a, ia, b, ib)``: C text, true when (a, ia) beats (b, ib): NaN over numbers, then the larger
    (smaller) value, then on equal values the lower index (the higher with ``select_last_index``)."""
    op, tie = (">" if is_max else "<"), (">" if last else "<")

    def f(a, ia, b, ib):
        win = f"{a} {op} {b} || ({a} == {b} && {ia} {tie} {ib})"
        if dtype in ("i32", "i64", "i8", "u8"):
            return win
        # (a != a) is NaN: a NaN beats a number; two NaNs compare by index.
        return (f"({a} != {a}) ? (!({b} != {b}) || {ia} {tie} {ib}) : (!({b} != {b}) && ({win}))")
    return f
