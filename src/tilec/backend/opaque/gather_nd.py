"""``graph.gather_nd`` (ONNX GatherND): one thread per output element reads its index tuple (the output's
leading coordinates pick the tuple, the trailing ones the element of the gathered slice), wraps negative
entries and copies one element; a tuple out of range reads 0 rather than fault."""
from __future__ import annotations

import math

from ...ir.types import itemsize
from ..cstyle import CUDA
from . import opaque_kernel
from .common import coords, elementwise_facts, elementwise_source_func, linear, params_of


@opaque_kernel("graph.gather_nd", facts=elementwise_facts)
def gather_nd_kernel(op, name: str):
    data, indices, out = op.operands[0].type, op.operands[1].type, op.results[0].type
    b, k = int(op.attributes.get("batch_dims", 0)), indices.shape[-1]
    params = params_of(op, ["data", "indices"], ["out"])
    D, I, Y = (p["name"] for p in params[:2] + params[-1:])
    lines = coords(out.shape)
    c = [f"k_c{i}" for i in range(out.rank)]
    tuple_at, rest = c[:indices.rank - 1], c[indices.rank - 1:]
    inside = []
    for j in range(k):
        dim = data.shape[b + j]
        lines.append(f"long long k_i{j} = (long long)TL_LD({I}, {linear(tuple_at + [str(j)], indices.shape)});")
        lines.append(f"if (k_i{j} < 0) k_i{j} += {dim}LL;")
        inside.append(f"k_i{j} >= 0 && k_i{j} < {dim}LL")
    src = tuple_at[:b] + [f"k_i{j}" for j in range(k)] + rest
    lines.append(f"if ({' && '.join(inside)}) TL_ST({Y}, k_t, TL_LD({D}, {linear(src, data.shape)}));")
    lines.append(f"else TL_ST({Y}, k_t, ({CUDA.ctype(out.dtype)})0);")
    total = math.prod(out.shape)
    loaded = total * (k * itemsize(indices.dtype) + itemsize(data.dtype))
    return elementwise_source_func(op, name, params, "\n".join(lines), total, loaded)
