"""The tensor-core tile shape Roller and the lowering agree on: whether a tensor expression is a tensor-core
matmul (``match_expr``), the mma tile (``MMA``) its block tiles are multiples of, and the shared memory the
wmma kernel stages per block (``smem_bytes``). Analysis-level facts: Roller aligns its tiles with them
(``analysis/roller.py``) and ``backend/lower/tiled_mma.py`` lowers what they accept.
"""
from __future__ import annotations

from ..ir.texpr.evaluate import product_factors
from ..ir.texpr.nodes import Access, AxisRef
from ..ir.types import itemsize

MMA = (16, 16, 16)
PAD_AB = 8     # halves: keeps ldm a multiple of 8 and fragment rows 32-B aligned, shifts banks per row
PAD_C = 4      # floats
OUT_DTYPES = ("f16", "bf16", "f32")   # what a tensor-core kernel writes


def match_expr(e, dtypes, out_dtype, precision: str | None = None) -> dict | None:
    """:func:`match` on the parts Roller's TileProblem has too (it aligns these tiles to the mma shape).
    ``a_batched``/``b_batched``: whether the operand holds the batch axes (False: broadcast over them);
    ``dtype``: the operands' type, f32 only for a product marked ``precision = "tf32"`` (the precision pass),
    whose f32 result then comes from tf32 tensor cores."""
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
    if fa.tensor == fb.tensor or not all(isinstance(i, AxisRef) for i in fa.indices + fb.indices):
        return None
    ia, ib = [i.name for i in fa.indices], [i.name for i in fb.indices]
    # An operand holds every batch axis or none (broadcast: a linear layer's weight under a batched input).
    if ia[:-2] not in (batch, []) or ib[:-2] not in (batch, []):
        return None
    if sorted(ia[-2:]) != sorted([m, k]):
        fa, fb, ia, ib = fb, fa, ib, ia      # B * A: swap so A is the one holding m
    if sorted(ia[-2:]) != sorted([m, k]) or sorted(ib[-2:]) != sorted([k, n]):
        return None
    return {"m": m, "n": n, "k": k, "batch": batch, "a": fa, "b": fb,
            "a_kmajor": ia[-1] == m, "b_nmajor": ib[-1] == k,
            "a_batched": len(ia) > 2 or not batch, "b_batched": len(ib) > 2 or not batch, "dtype": dtypes[0]}


def tensor_core_dtype(dtype: str) -> str:
    """The tensor-core type a matched product's ``dtype`` runs in (``GPUSpec.tensor_core_flops``): f32 is tf32."""
    return "tf32" if dtype == "f32" else dtype


def smem_bytes(bm: int, bn: int, bk: int, dtype: str, warps: int = 8) -> int:
    """Staged A and B tiles plus one 16×16 fp32 epilogue scratch per warp (at most 8)."""
    e = itemsize(dtype)
    return bm * (bk + PAD_AB) * e + bk * (bn + PAD_AB) * e + warps * 16 * (16 + PAD_C) * 4
