"""scripts/gpu_check.sh --dry-run: the GPU check's whole path (compile, numpy reference, executor, timing,
markdown table) with the emu backend standing in for CuPy."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from build_fixtures import require_emu
from test_runtime_emu import small_onnx

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run(tmp_path):
    require_emu()
    models = tmp_path / "models"
    models.mkdir()
    small_onnx(models / "tiny.onnx")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "out"), "--dry-run",
                        "--models", str(models / "*.onnx")], capture_output=True, text=True, env=env, timeout=300)
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert table.startswith("| model | kernels | launches |") and "| tiny.onnx |" in table, r.stderr
    (row,) = json.loads((tmp_path / "out" / "gpu_check.json").read_text())["models"]
    if not row["ok"] and ("ModuleNotFoundError" in row["error"] or "unsupported ONNX op" in row["error"]):
        pytest.skip(f"the front end / lowering is not complete yet: {row['error']}")
    assert r.returncode == 0 and row["ok"], (row, r.stderr)
    assert row["kernels"] >= 1 and row["max_abs_err"] < 1e-4 and row["median_ms"] > 0


def test_gpu_check_usage():
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True)
    assert r.returncode == 2 and "usage" in r.stderr
