"""``graph.gather`` (ONNX Gather) with data-dependent indices: one thread per output element reads its index,
wraps negative ones, and copies one element (out-of-range indices read 0 rather than fault)."""
from __future__ import annotations

import math

from ...ir.types import itemsize
from ..cstyle import CUDA
from . import opaque_kernel
from .common import coords, elementwise_facts, elementwise_source_func, linear, params_of


@opaque_kernel("graph.gather", facts=elementwise_facts)
def gather_kernel(op, name: str):
    data, indices = op.operands[0].type, op.operands[1].type
    if indices.dtype not in ("i32", "i64"):
        return None
    out = op.results[0].type
    axis = int(op.attributes.get("axis", 0))
    axis = axis + data.rank if axis < 0 else axis
    params = params_of(op, ["data", "indices"], ["out"])
    D, I, Y = (p["name"] for p in params[:2] + params[-1:])
    lines = coords(out.shape)
    q, r = axis, indices.rank
    c = [f"k_c{i}" for i in range(out.rank)]
    lines.append(f"long long k_j = (long long)TL_LD({I}, {linear(c[q:q + r], indices.shape)});")
    lines.append(f"if (k_j < 0) k_j += {data.shape[axis]}LL;")
    src = c[:q] + ["k_j"] + c[q + r:]
    value = f"TL_LD({D}, {linear(src, data.shape)})"
    lines.append(f"if (k_j >= 0 && k_j < {data.shape[axis]}LL) TL_ST({Y}, k_t, {value});")
    lines.append(f"else TL_ST({Y}, k_t, ({_ctype(out.dtype)})0);")
    total = math.prod(out.shape)
    loaded = total * (itemsize(indices.dtype) + itemsize(data.dtype))
    return elementwise_source_func(op, name, params, "\n".join(lines), total, loaded)


def _ctype(dtype: str) -> str:
    return CUDA.ctype(dtype)
