"""scripts/gpu_check.sh --dry-run: the GPU check's whole path (budget up front, one process per model, compile,
onnxruntime reference, executor, hot/cold timing, the table row by row) with the emu backend standing in for CuPy."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from build_fixtures import require_emu
from test_runtime_emu import small_onnx

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    require_emu()
    models = tmp_path / "models"
    models.mkdir()
    small_onnx(models / "tiny.onnx")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHON"] = sys.executable  # gpu_run.sh's interpreter: this one has onnx and onnxruntime
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out"), "--dry-run",
                        "--zoo", "none", "--models", str(models / "*.onnx"),
                        # a cold emulator cache on a loaded 2-core CI box compiles the runtime first: this test
                        # is not about timeouts (tests/bench/test_gpu_check_survives.py is)
                        "--row-timeout", "400"], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("gpu_check: 2 rows in 2 phase(s); budget 480s")  # the budget before any row
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| model | status | rel err |" in table and "| tiny | ok |" in table, table
    data = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    (row,) = data["models"]
    assert row["status"] == "ok" and row["rel_err"] < 1e-4, row
    assert row["kernels"] >= 1 and row["hot_ms"] > 0 and row["cold_ms"] > 0 and row["pid"] != os.getpid()
    assert data["machine"]["gpu"] == "dry-run"


def test_gpu_check_usage():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
