"""Outputs whose row count depends on the data (ONNX NonMaxSuppression's ``selected_indices``).

tilec compiles static shapes, so such an output is computed at its largest size (every row it could have),
its valid rows first, and ``@main`` also returns how many rows are valid: a hidden i64 scalar result. The
function attribute ``result_rows`` maps the output's name to the hidden result's name; every runtime (the
reference interpreter, the plan executor on the emulator or a GPU) slices the output to its first ``count``
rows and drops the count, so callers see exactly the ONNX output. Such a value may only be returned: an op
that reads it would see the padding rows, so the importer refuses one (a diagnostic naming the node).
"""
from __future__ import annotations

ROWS_ATTR = "result_rows"


def rows_suffix(name: str, taken) -> str:
    """The hidden result's name for output ``name``: ``name.rows`` (``name.rows2``... if that is taken)."""
    candidate, k = f"{name}.rows", 1
    while candidate in taken:
        k += 1
        candidate = f"{name}.rows{k}"
    return candidate


def trim_rows(outputs: dict, rows: dict, count_of=None) -> dict:
    """``outputs`` (by name) with each output of ``rows`` (output name -> count's name) cut to its valid
    rows and the counts left out. ``count_of(array) -> int`` reads a count (default: ``int()``)."""
    if not rows:
        return outputs
    read = count_of or (lambda a: int(a))
    out = {k: v for k, v in outputs.items() if k not in rows.values()}
    for name, count in rows.items():
        if name in out and count in outputs:
            out[name] = out[name][:read(outputs[count])]
    return out
