"""``make gpu-calibrate``'s dry run (scripts/gpu_calibrate.py on the emulator): every constant measured in its
own process, rows written as they finish, the measured file written whole and valid for the loader's checks;
a constant whose process times out costs that constant only, and the run says so (exit 1)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tilec.analysis.measured import MEASURABLE, check_measured
from tilec.bench.calibrate import BENCHMARKS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_calibrate.py"


def _run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), str(out), "--dry-run", "--arch", "h200", *extra],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_dry_run_measures_every_constant(tmp_path):
    assert set(BENCHMARKS) <= MEASURABLE   # the loader accepts what the calibration measures
    proc = _run(tmp_path / "cal")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (tmp_path / "cal" / "calibrate.jsonl").read_text().splitlines()]
    assert [r["constant"] for r in rows] == list(BENCHMARKS) and all(r["status"] == "ok" for r in rows)
    path = tmp_path / "cal" / "h200.measured.dry.json"
    data = json.loads(path.read_text())
    assert data["dry_run"] is True and not (tmp_path / "cal" / "h200.measured.json").exists()
    assert check_measured(data, "h200", path).keys() == set(BENCHMARKS)
    md = (tmp_path / "cal" / "calibrate.md").read_text()
    assert md.count("| ok |") == len(BENCHMARKS) and "6/6 constants measured" in md


def test_a_constant_that_times_out_costs_only_itself(tmp_path):
    proc = _run(tmp_path / "cal", "--only", "launch_overhead_us", "--row-timeout", "0.05")
    assert proc.returncode == 1
    (row,) = [json.loads(line) for line in (tmp_path / "cal" / "calibrate.jsonl").read_text().splitlines()]
    assert row["status"] == "timeout" and "killed" in row["error"]
    data = json.loads((tmp_path / "cal" / "h200.measured.dry.json").read_text())
    assert data["constants"] == {}
    assert "not measured: launch_overhead_us" in (tmp_path / "cal" / "calibrate.md").read_text()


def test_an_unknown_arch_is_a_usage_error(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--dry-run", "--arch", "nope"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and "unknown arch" in proc.stderr and "Traceback" not in proc.stderr
