"""``scripts/gpu_bench.py --dry-run``: every step but GPU timing (emu backend, a small model, tiny GEMM and
conv), so the script does not meet its first bug on a lent GPU."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~17 s idle, ~45 s on a busy 2-core machine
def test_gpu_bench_dry_run(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "--out", str(tmp_path), "--work",
           str(tmp_path / "w"), "--date", "2000-01-01", "--models", "nerf_mlp", "--dry-run"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "gpu-2000-01-01-dry-run.json").read_text())
    (row,) = data["models"]
    assert "error" not in row["tilec"], row["tilec"]
    assert row["tilec"]["err"] < 1e-3 and row["tilec"]["ms"] > 0
    assert row["ort"]["provider"] == "CPUExecutionProvider"
    te = row["torch_eager"]
    assert ("err" in te and te["err"] < 1e-3) or te["error"] == "torch not installed"
    kinds = {r["kind"]: r for r in data["roofline"]}
    assert set(kinds) == {"gemm", "conv"}
    for r in kinds.values():
        assert "error" not in r, r
        assert r["rel_err"] < 1e-3 and r["tilec"]["ms"] > 0
    md = (tmp_path / "gpu-2000-01-01-dry-run.md").read_text()
    assert "| nerf_mlp | " in md and "## Roofline" in md
