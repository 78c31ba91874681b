"""``Constant``: a node that is a tensor known at import time; it folds into whatever reads it."""
from __future__ import annotations

import numpy as np

from ..registry import converter

_SCALAR_ATTRS = {"value_float": np.float32, "value_int": np.int64, "value_floats": np.float32,
                 "value_ints": np.int64}


@converter("Constant")
def constant(ctx, node):
    value = ctx.attr(node, "value")
    if value is not None:
        return [ctx.constant(value)]
    for key, dtype in _SCALAR_ATTRS.items():
        v = ctx.attr(node, key)
        if v is not None:
            return [ctx.constant(np.asarray(v, dtype=dtype))]
    kinds = [a.name for a in node.attribute]
    raise ctx.error(node, "Constant with " + (", ".join(kinds) or "no value") + " is not supported "
                    "(tilec carries numeric tensors only)")
