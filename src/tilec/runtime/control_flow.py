"""Interpreter handlers for ``cf.loop`` and ``cf.if``: bodies run with :func:`run_block` in a scope that
falls back to the enclosing one, so a body reads outer values (and, in the executor, fetches them from the
device only when it does)."""
from __future__ import annotations

import numpy as np

from ..ir.diagnostics import CompileError
from .interpreter import handler, run_block


class Scope(dict):
    """Values of one body execution; a miss looks the value up in the enclosing scope."""

    def __init__(self, parent, bindings):
        super().__init__(bindings)
        self.parent = parent

    def __missing__(self, key):
        return self.parent[key]


@handler("cf.loop")
def _loop(module, op, inputs, env):
    trip, cond = int(np.asarray(inputs[0])), bool(np.asarray(inputs[1]))
    n = len(inputs) - 2
    carried = list(inputs[2:])
    body = op.body
    scans = [[] for _ in range(op.attributes.get("num_scan", 0))]
    i = 0
    while i < trip and cond:
        args = [np.asarray(i, np.int64), np.asarray(cond)] + carried
        outs = run_block(module, body, Scope(env, zip(body.args, args)))
        cond, carried = bool(outs[0]), list(outs[1:1 + n])
        for s, v in zip(scans, outs[1 + n:]):
            s.append(v)
        i += 1
    results = carried
    for r, s in zip(op.results[n:], scans):
        if len(s) != r.type.shape[0]:
            raise CompileError.at(f"'cf.loop' ran {len(s)} iterations but its scan outputs were typed for "
                                  f"{r.type.shape[0]}", op.loc)
        results.append(np.stack(s) if s else np.zeros(r.type.shape))
    return results


@handler("cf.if")
def _if(module, op, inputs, env):
    region = op.regions[0 if bool(np.asarray(inputs[0]).reshape(-1)[0]) else 1]
    return run_block(module, region.block, Scope(env, {}))
