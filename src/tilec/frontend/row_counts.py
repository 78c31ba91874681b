"""The importer's side of outputs whose row count depends on the data (``ir/row_counts.py``): a converter
records ``ctx.row_counts[value] = count``; such a value may only be returned from the main graph, where it
gets its hidden count result; a node (other than Identity) or a Loop/If body that would read its padding
rows is refused with a diagnostic."""
from __future__ import annotations

from ..ir.diagnostics import CompileError
from ..ir.row_counts import ROWS_ATTR, rows_suffix


def refuse_padded_inputs(ctx, node) -> None:
    """A CompileError naming ``node`` if it reads a value with a data-dependent row count."""
    for name in node.input:
        if name and node.op_type != "Identity" and ctx.values.get(name) in ctx.row_counts:
            raise ctx.error(node, f"'{name}' has a row count that depends on the data, so tilec computes it "
                                  f"padded and can only return it as a graph output, not feed it to '{node.op_type}'")


def refuse_padded_body_outputs(ctx, graph, prefix: str) -> None:
    """A CompileError if a control-flow body would return a value with a data-dependent row count."""
    dynamic = [o.name for o in graph.output if ctx.values[o.name] in ctx.row_counts]
    if dynamic:
        raise CompileError(f"body output '{dynamic[0]}' has a row count that depends on the data ({prefix}): "
                           "tilec returns such a value only from the main graph", ctx.file)


def add_row_counts(ctx, names: list, results: list) -> dict:
    """Append each returned value's hidden row count to ``names`` and ``results`` (in place); the func
    attributes that say so (``{"result_rows": {...}}``, or nothing)."""
    rows = {}
    for name, v in list(zip(names, results)):
        if v in ctx.row_counts:
            rows[name] = rows_suffix(name, names)
            names.append(rows[name])
            results.append(ctx.row_counts[v])
    return {ROWS_ATTR: rows} if rows else {}
