"""The GPU check / benchmark harness (tilec.bench.rowrun, runplan, journal, timing): one process per row, a row
that hangs is killed at its timeout and the next rows still run, a crashed row is recorded, the table is on disk
row by row, rows beyond the budget are skipped without starting, and cold runs are flushed, hot ones not."""
from __future__ import annotations

import os
import time
from pathlib import Path

from tilec.bench.journal import Journal
from tilec.bench.rowrun import FAULT_ENV, Row, run_row
from tilec.bench.runplan import Budget, run_rows
from tilec.bench.timing import Flush, hot_cold

ROOT = Path(__file__).resolve().parents[2]
PROBE = {"kind": "probe", "device": "cpu"}


def test_row_runs_in_its_own_process(tmp_path):
    r = run_row(Row("probe", PROBE, 60, {"model": "m"}), tmp_path, ROOT)
    assert r["status"] == "ok", r
    assert r["pid"] != os.getpid() and r["model"] == "m" and r["gpu"] == "dry-run"


def test_hung_row_is_killed_crashed_row_recorded_and_next_rows_run(tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "hang:a,crash:b")
    journal = Journal(tmp_path / "t.md", tmp_path / "t.jsonl", ["id", "status", "error"])
    journal.start(["# t"])
    rows = [Row("a", PROBE, 3, {}), Row("b", PROBE, 60, {}), Row("c", PROBE, 60, {})]
    on_disk = []

    def done(r):
        journal.append(r, [r["id"], r["status"], r.get("error")])
        on_disk.append(len(journal.rows()))  # what a killed parent would leave behind at this point

    t0 = time.monotonic()
    got = run_rows(rows, 1, Budget(600, [("all", rows, 1)]), tmp_path / "rows", ROOT, done)
    assert [r["status"] for r in got] == ["timeout", "crashed", "ok"], got
    assert "3s" in got[0]["error"] and "SIGKILL" in got[1]["error"]
    assert time.monotonic() - t0 < 40  # the hang cost its timeout, not the run
    assert on_disk == [1, 2, 3]
    md = (tmp_path / "t.md").read_text()
    assert "| a | timeout |" in md and "| b | crashed |" in md and "| c | ok |" in md


def test_rows_beyond_the_budget_are_skipped_without_starting(tmp_path):
    rows = [Row("late", PROBE, 60, {"model": "x"})]
    budget = Budget(5, [("all", rows, 1)])
    budget.start -= 10  # the budget is already spent
    (r,) = run_rows(rows, 1, budget, tmp_path, ROOT, lambda r: None)
    assert r["status"] == "skipped" and "not started" in r["error"]
    assert not (tmp_path / "late.row.json").exists()


def test_budget_plan_names_rows_timeouts_worst_case_and_budget():
    rows = [Row(f"t{i}", {"kind": "tilec"}, 100, {}) for i in range(4)] + [Row("o", {"kind": "ort"}, 30, {})]
    budget = Budget(500, [("compile", rows[:4], 2), ("measure", rows[4:], 1)])
    assert budget.worst_case() == 2 * 100 + 30
    text = budget.plan("x")
    assert "5 rows" in text and "budget 500s" in text and "worst case" in text and "230s" in text
    assert "4 x tilec" in text and "timeout 100s" in text and "1 x ort" in text and "2 at a time" in text
    assert budget.timeout_for(rows[0]) == 100


def test_cold_runs_are_flushed_and_hot_runs_are_not():
    events = []

    class Clock:
        name = "fake"

        def mark(self):
            events.append("mark")
            return len(events)

        def ms(self, a, b):
            return float(b - a)

    flush = Flush(1 << 20, lambda v: events.append("flush"))
    out = hot_cold(lambda: events.append("run"), Clock(), flush, runs=3, warmup=2)
    assert events[:2] == ["run", "run"]  # warm-up, untimed
    hot, cold = events[2:11], events[11:]
    assert hot == ["mark", "run", "mark"] * 3
    assert cold == ["flush", "mark", "run", "mark"] * 3  # the flush is outside the timed interval
    assert out["hot_ms"] == out["cold_ms"] == 2.0 and out["runs"] == 3 and out["flush_bytes"] == 1 << 20


def test_compile_row_warms_the_nvrtc_cache_the_gpu_load_reads(tmp_path, monkeypatch):
    """``nvrtc_warm`` compiles every kernel into tilec's NVRTC cache under the key the cupy runtime's load
    (``compile_cubin``) looks up: afterwards no kernel of the build needs NVRTC again."""
    from tilec.backend import nvrtc_lib
    from tilec.backend.nvrtc import compile_cubin
    from tilec.bench import gpu_systems
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(gpu_systems, "gpu_sm_arch", lambda: "sm_90")  # no GPU here: the H100/H200's arch
    build = tmp_path / "b"
    row = {}
    gpu_systems.tilec({"model": str(ROOT / "samples" / "mlp.onnx"), "build": str(build), "pipeline": "default",
                       "backend": "cupy", "compile_only": True, "nvrtc_warm": True}, row)
    kernels = sorted(build.glob("kernels/*.cu"))
    assert row["nvrtc_kernels"] == len(kernels) >= 1 and row["nvrtc_s"] >= 0

    def no_compile(*a, **k):
        raise AssertionError("NVRTC ran: the warm-up missed this kernel")
    monkeypatch.setattr(nvrtc_lib.NvrtcLibrary, "compile", no_compile)
    for cu in kernels:
        assert compile_cubin(cu.stem, cu.read_text(), "sm_90").startswith(b"\x7fELF")


def test_peaks_come_from_the_card_measured():
    from tilec.bench.gpu_systems import arch_for, device_arch
    assert arch_for("NVIDIA H100 80GB HBM3") == "h100" and arch_for("NVIDIA H200") == "h200"
    assert arch_for("NVIDIA A100-SXM4-80GB") == "a100" and arch_for("Tesla V100-SXM2-16GB") == "v100"
    assert arch_for("NVIDIA GeForce RTX 4090") == "h200" and arch_for(None, "a100") == "a100"
    assert device_arch({"device": "cpu"}) == "h200" and device_arch({"device": "cpu", "arch": "h100"}) == "h100"
