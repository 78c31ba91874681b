"""``make bench``'s precision rows: labelled with their mode, held to its tolerance, compared with the f32
``none`` row for *x none*."""
from __future__ import annotations

from tilec.bench.table import PRECISION_TOL, full_table, small_table


def _row(pipeline: str, precision: str | None, err: float, **extra) -> dict:
    row = {"model": "m", "size": "small", "pipeline": pipeline, "status": "ok", "emu_vs_ort": err,
           "numpy_vs_ort": 0.0, "ref_max_abs": 2.0, **extra}
    if precision is not None:
        row["precision"] = precision
    return row


def test_a_precision_row_is_named_and_held_to_its_tolerance():
    err = 0.5 * PRECISION_TOL["fp16"] * 2.0      # half the fp16 tolerance of a scale-2 output
    f32, f16 = _row("rammer", None, err), _row("rammer", "fp16", err)
    lines = small_table([f32, f16], 1e-3).splitlines()[2:]
    assert "| m | rammer | **wrong**: emu_vs_ort |" in lines[0]
    assert "| m | rammer fp16 | ok |" in lines[1]
    assert "| m | rammer fp16 | **wrong**" in small_table([_row("rammer", "fp16", 3 * err)], 1e-3)


def test_x_none_compares_with_the_f32_none_row():
    none = _row("none", None, 0.0, measured_bytes=4e6)
    none16 = _row("none", "fp16", 0.0, measured_bytes=1e6)
    row = _row("rammer", "fp16", 0.0, measured_bytes=2e6)
    line = small_table([none, none16, row], 1e-3).splitlines()[-1]
    assert " 0.50 |" in line   # 2 MB over the f32 none row's 4 MB, not the fp16 one's 1 MB
    assert "| m | rammer fp16 |" in full_table([{**row, "size": "full"}])
