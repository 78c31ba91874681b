"""The tensor-core tile shape Roller and the lowering agree on: whether a tensor expression is a tensor-core
matmul (``match_expr``), the mma tile (``MMA``) its block tiles are multiples of, and the shared memory the
wmma kernel stages per block (``smem_bytes``). Analysis-level facts: Roller aligns its tiles with them
(``analysis/roller.py``) and ``backend/lower/tiled_mma.py`` lowers what they accept.
"""
from __future__ import annotations

from ..ir.texpr.evaluate import product_factors
from ..ir.texpr.nodes import Access, AxisRef, Num
from ..ir.types import itemsize

MMA = (16, 16, 16)
PAD_AB = 8     # halves: keeps ldm a multiple of 8 and fragment rows 32-B aligned, shifts banks per row
PAD_C = 4      # floats
OUT_DTYPES = ("f16", "bf16", "f32")   # what a tensor-core kernel writes


def match_expr(e, dtypes, out_dtype, precision: str | None = None, shapes=None, out_shape=None) -> dict | None:
    """:func:`match` on the parts Roller's TileProblem has too (it aligns these tiles to the mma shape).
    ``a_batched``/``b_batched``: whether the operand holds the batch axes (False: broadcast over them);
    ``dtype``: the operands' type, f32 only for a product marked ``precision = "tf32"`` (the precision pass),
    whose f32 result then comes from tf32 tensor cores.

    ``shapes`` (the inputs', in ``e.inputs`` order) and ``out_shape``, where given, let a batch-1 product match:
    an importer writes a size-1 operand dim as the constant index ``0`` (``Y[b0, b1, m, n] += A[0, b1, m, k] *
    B[0, b1, k, n]``), which addresses nothing, as a batch axis of extent 1 does not; both are treated as
    absent (:func:`_batch_indices`). ``a`` and ``b`` stay the operands' accesses as written."""
    if e.combiner != "sum" or len(e.reduce_axes) != 1 or len(e.out_axes) < 2:
        return None
    tf32 = precision == "tf32" and set(dtypes) == {"f32"} and out_dtype == "f32"
    if (set(dtypes) not in ({"f16"}, {"bf16"}) and not tf32) or len(dtypes) != 2 or out_dtype not in OUT_DTYPES:
        return None
    pf = product_factors(e.body)
    if pf is None or pf[1] != 1 or len(pf[0]) != 2 or not all(isinstance(f, Access) for f in pf[0]):
        return None
    *batch, m, n = e.out_axes
    k = e.reduce_axes[0]
    fa, fb = pf[0]
    if fa.tensor == fb.tensor:
        return None
    unit = {b for b, d in zip(batch, out_shape or ()) if d == 1}   # batch axes of extent 1
    ia, ib = (_batch_indices(f, shapes[list(e.inputs).index(f.tensor)] if shapes else None, unit) for f in (fa, fb))
    if ia is None or ib is None:
        return None
    # An operand holds every batch axis or none (broadcast: a linear layer's weight under a batched input).
    wide = [b for b in batch if b not in unit]
    if ia[:-2] not in (wide, []) or ib[:-2] not in (wide, []):
        return None
    if sorted(ia[-2:]) != sorted([m, k]):
        fa, fb, ia, ib = fb, fa, ib, ia      # B * A: swap so A is the one holding m
    if sorted(ia[-2:]) != sorted([m, k]) or sorted(ib[-2:]) != sorted([k, n]):
        return None
    return {"m": m, "n": n, "k": k, "batch": batch, "a": fa, "b": fb,
            "a_kmajor": ia[-1] == m, "b_nmajor": ib[-1] == k,
            "a_batched": _batched(fa, ia, wide, batch), "b_batched": _batched(fb, ib, wide, batch),
            "dtype": dtypes[0]}


def match_problem(problem) -> dict | None:
    """:func:`match_expr` of a ``TileProblem`` (its shapes included: batch-1 products match)."""
    return match_expr(problem.expr, problem.input_dtypes, problem.out_dtype, problem.precision,
                      problem.input_shapes, problem.out_shape)


def _batch_indices(f: Access, shape, unit: set) -> list | None:
    """The axis names of access ``f`` that address it: its batch indices without the ones that are always 0
    (a constant ``0`` on a size-1 dim, an axis in ``unit``), then its two matrix axes; None where an index is
    neither an axis nor such a constant. Without ``shape`` every index must be an axis (no batch-1 match)."""
    names = []
    for pos, i in enumerate(f.indices):
        lead = pos < len(f.indices) - 2
        if isinstance(i, AxisRef):
            if not (lead and i.name in unit):
                names.append(i.name)
            continue
        zero = isinstance(i, Num) and i.is_int and i.value == 0
        if not (lead and zero and shape is not None and shape[pos] == 1):
            return None
    return names


def _batched(f: Access, names: list, wide: list, batch: list) -> bool:
    """Whether the engines offset operand ``f`` by the block's batch entry (``k_batch`` times its matrix): it
    holds the batch axes (all of them of extent > 1, ``wide``), or there are none. An operand with only
    always-0 batch indices under batch axes all of extent 1 counts as holding them (``k_batch`` is 0 then),
    as an operand indexed by every batch axis of extent 1 always did."""
    return (len(f.indices) > 2 and names[:-2] == wide) or not batch


def tensor_core_dtype(dtype: str) -> str:
    """The tensor-core type a matched product's ``dtype`` runs in (``GPUSpec.tensor_core_flops``): f32 is tf32."""
    return "tf32" if dtype == "f32" else dtype


def smem_bytes(bm: int, bn: int, bk: int, dtype: str, warps: int = 8) -> int:
    """Staged A and B tiles plus one 16×16 fp32 epilogue scratch per warp (at most 8)."""
    e = itemsize(dtype)
    return bm * (bk + PAD_AB) * e + bk * (bn + PAD_AB) * e + warps * 16 * (16 + PAD_C) * 4
