"""The reference interpreter: runs graph- and tile-level IR with numpy. Ground truth for every backend."""
from __future__ import annotations

import numpy as np

from ..ir.attributes import DenseAttr, SymbolRef
from ..ir.core import Operation, arg_names, main_function
from ..ir.diagnostics import CompileError
from ..ir.opspec import get_spec, with_defaults
from ..ir.row_counts import ROWS_ATTR, trim_rows
from ..ir.types import np_dtype
from ..ir.weights import module_weights
from .reference import get_reference

# Handlers for non-graph ops, by name; graph ops go through the reference registry.
_HANDLERS: dict = {}


def handler(name: str):
    def deco(fn):
        _HANDLERS[name] = fn
        return fn
    return deco


def run_module(module: Operation, inputs: dict | list) -> dict:
    """Run ``@main`` on ``inputs`` (by name, or positional); returns outputs by name."""
    fn = main_function(module)
    inputs_named = arg_names(fn)
    if isinstance(inputs, dict):
        missing = [n for n in inputs_named if n not in inputs]
        if missing:
            raise CompileError(f"missing input(s): {', '.join(missing)}")
        args = [inputs[n] for n in inputs_named]
    else:
        args = list(inputs)
    if len(args) != len(fn.body.args):
        raise CompileError(f"@main takes {len(fn.body.args)} inputs, got {len(args)}")
    values = {}
    for name, a, v in zip(inputs_named, fn.body.args, args):
        arr = np.asarray(v)
        if tuple(arr.shape) != a.type.shape:
            raise CompileError(f"input '{name}' has shape {list(arr.shape)}, expected {list(a.type.shape)}")
        values[a] = arr.astype(np_dtype(a.type.dtype), copy=False)
    results = run_block(module, fn.body, values)
    names = fn.attributes.get("result_names") or [f"out{i}" for i in range(len(results))]
    return trim_rows(dict(zip(names, results)), fn.attributes.get(ROWS_ATTR))


def run_block(module: Operation, block, values: dict) -> list:
    """Execute the ops of ``block``; returns the terminator's operand values."""
    for op in block.ops:
        if op.name in ("func.return", "cf.yield", "tile.yield"):
            return [values[v] for v in op.operands]
        outs = run_op(module, op, [values[v] if v is not None else None for v in op.operands], values)
        for r, arr in zip(op.results, outs):
            values[r] = np.asarray(arr).astype(np_dtype(r.type.dtype), copy=False).reshape(r.type.shape)
    return []


def run_op(module: Operation, op: Operation, inputs: list, env: dict) -> list:
    h = _HANDLERS.get(op.name)
    if h is not None:
        return h(module, op, inputs, env)
    ref = get_reference(op.name)
    if ref is None:
        raise CompileError.at(f"no reference implementation for '{op.name}'", op.loc)
    spec = get_spec(op.name)
    attrs = with_defaults(spec, op.attributes) if spec else dict(op.attributes)
    return ref(inputs, attrs)


@handler("tile.const")
def _const(module, op, inputs, env):
    value = op.attributes["value"]
    if isinstance(value, DenseAttr):
        return [value.array]
    assert isinstance(value, SymbolRef)
    data = module_weights(module).get(value.name)
    if data is None:
        raise CompileError.at(f"weight @{value.name} has no data (is the .weights.npz sidecar there?)", op.loc)
    return [data]


@handler("tile.kernel")
def _kernel(module, op, inputs, env):
    """A Welder group: its block arguments stand for the operands; run the members, return the yield."""
    inner = dict(zip(op.body.args, inputs))
    return run_block(module, op.body, inner)


@handler("tile.compute")
def _compute(module, op, inputs, env):
    from ..ir.texpr import evaluate, parse_texpr
    expr = parse_texpr(op.attributes["expr"])
    out = op.result.type
    return [evaluate(expr, inputs, out.shape, out.dtype, pad=float(op.attributes.get("pad", 0.0)),
                     hints=op.attributes.get("axes"))]


from . import control_flow  # noqa: E402,F401  (registers the cf.loop / cf.if handlers)
