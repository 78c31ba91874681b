"""``scripts/bench.py`` (make bench): one small model x one pipeline end to end, and the table's handling
of failing rows (each must say why)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tilec.bench.table import full_table, small_table

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~20 s idle, over a minute on a busy 2-core machine (emulator runs)
def test_bench_one_model_one_pipeline(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--out", str(out), "--work", str(tmp_path / "w"),
           "--date", "2000-01-01", "--models", "nerf_mlp", "--pipelines", "none", "--full", "--no-ptx"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[1/1] nerf_mlp" in proc.stdout  # progress line
    data = json.loads((out / "cpu-2000-01-01.json").read_text())
    assert data["meta"]["command"].endswith("--full --no-ptx")
    (row,) = data["rows"]
    assert row["status"] == "ok", row
    assert (row["model"], row["size"], row["pipeline"]) == ("nerf_mlp", "small", "none")
    for key in ("ops", "kernels", "launches", "compile_seconds", "stages", "measured_bytes",
                "lower_bound_bytes", "emu_vs_ort", "numpy_vs_ort"):
        assert row[key] is not None, key
    assert row["measured_bytes"] >= row["lower_bound_bytes"] > 0
    assert row["emu_vs_ort"] < 1e-3 and row["numpy_vs_ort"] < 1e-3
    md = (out / "cpu-2000-01-01.md").read_text()
    assert "scripts/bench.py" in md.split("```")[1]  # the exact command on top
    table = [line for line in md.splitlines() if line.startswith("| nerf_mlp |")]
    assert len(table) == 1 and table[0].count("|") == 17 and "| ok |" in table[0]


def test_failing_rows_say_why():
    rows = [{"model": "m", "size": "small", "pipeline": "roller", "status": "timeout",
             "error": "row took longer than 5s (killed)"},
            {"model": "m", "size": "small", "pipeline": "none", "status": "failed",
             "error": "compile: CompileError: a|b"}]
    text = small_table(rows, 1e-3)
    assert "**timeout**: row took longer than 5s (killed)" in text
    assert "**failed**: compile: CompileError: a/b" in text  # a '|' in the reason must not split the row
    assert all(line.count("|") == 17 for line in text.splitlines())
    full = full_table([{**rows[0], "size": "full"}])
    assert all(line.count("|") == 15 for line in full.splitlines())


def test_wrong_results_are_flagged():
    row = {"model": "m", "size": "small", "pipeline": "none", "status": "ok", "emu_vs_ort": 0.5,
           "numpy_vs_ort": 0.0, "ref_max_abs": 2.0}
    assert "**wrong**: emu_vs_ort" in small_table([row], 1e-3)
