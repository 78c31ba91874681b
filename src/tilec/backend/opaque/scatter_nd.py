"""``graph.scatter_nd`` (ONNX ScatterND): one thread per output element starts from ``data`` and walks
every index tuple in order, applying each update that lands on its element. Walking in order makes the
result the reference's exactly (the last duplicate wins for ``none``; floating-point reductions combine in
the same order) with no atomics and no second kernel, at the price of reading all N tuples per element:
fine for the shape-computation and cache-update sizes real exports use, quadratic for a scatter whose
tuple count and output are both large."""
from __future__ import annotations

import math

from ...ir.types import itemsize
from ..cstyle import CUDA, compute_dtype
from . import opaque_kernel
from .common import coords, elementwise_facts, elementwise_source_func, linear, params_of

# ``k_v`` combined with the update ``k_u``; max / min propagate NaN as numpy's maximum / minimum do.
_COMBINE = {"none": "k_v = k_u;", "add": "k_v = k_v + k_u;", "mul": "k_v = k_v * k_u;",
            "max": "if (k_u != k_u || k_u > k_v) k_v = k_u;", "min": "if (k_u != k_u || k_u < k_v) k_v = k_u;"}


@opaque_kernel("graph.scatter_nd", facts=elementwise_facts)
def scatter_nd_kernel(op, name: str):
    data, indices, updates = (v.type for v in op.operands)
    reduction = op.attributes.get("reduction", "none")
    if reduction not in _COMBINE or data.dtype == "bool" and reduction != "none":
        return None  # stays on the host (its reference)
    k = indices.shape[-1]
    n = math.prod(indices.shape[:-1])
    slice_shape = data.shape[k:]
    params = params_of(op, ["data", "indices", "updates"], ["out"])
    D, I, U, Y = (p["name"] for p in params)
    cdt = compute_dtype(data.dtype)
    c = [f"k_c{i}" for i in range(data.rank)]
    lines = coords(data.shape)
    lines.append(f"const long long k_s = {linear(c[k:], slice_shape)};")
    lines.append(f"{CUDA.ctype(cdt)} k_v = {CUDA.convert(f'TL_LD({D}, k_t)', data.dtype, cdt)};")
    lines.append(f"for (long long k_n = 0; k_n < {n}LL; ++k_n) {{")
    for j in range(k):
        dim = data.shape[j]
        lines.append(f"  long long k_i{j} = (long long)TL_LD({I}, k_n * {k}LL + {j}LL);")
        lines.append(f"  if (k_i{j} < 0) k_i{j} += {dim}LL;")
        lines.append(f"  if (k_i{j} != {c[j]}) continue;")
    update = CUDA.convert(f"TL_LD({U}, k_n * {math.prod(slice_shape)}LL + k_s)", updates.dtype, cdt)
    lines.append(f"  const {CUDA.ctype(cdt)} k_u = {update};")
    lines.append(f"  {_COMBINE[reduction]}")
    lines.append("}")
    lines.append(f"TL_ST({Y}, k_t, {CUDA.convert('k_v', cdt, data.dtype)});")
    total = math.prod(data.shape)
    loaded = total * (itemsize(data.dtype) + n * k * itemsize(indices.dtype)) + math.prod(updates.shape) * \
        itemsize(updates.dtype)
    return elementwise_source_func(op, name, params, "\n".join(lines), total, loaded)
