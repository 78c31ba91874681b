"""``scripts/bench.py`` (make bench): one small model x one pipeline end to end, and the table's handling
of failing rows (each must say why)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tilec.bench.table import PRECISION_TOL, full_table, small_table
from tilec.testing.scripts import load_file_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~20 s idle, over a minute on a busy 2-core machine (emulator runs)
def test_bench_one_model_one_pipeline(tmp_path):
    """One model x one pipeline is two rows: f32, and the default ``--precisions`` (fp16) with the fullest
    pipeline the model runs, here the only one (issue #17: every zoo model in fp32 and fp16)."""
    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--out", str(out), "--work", str(tmp_path / "w"),
           "--date", "2000-01-01", "--models", "nerf_mlp", "--pipelines", "none", "--full", "--no-ptx"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "bench: 2 rows (1 small, 0 full models x 1 pipelines + 1 precision row (fp16))" in proc.stdout
    assert "[2/2] nerf_mlp" in proc.stdout  # progress lines, one per row
    data = json.loads((out / "cpu-2000-01-01.json").read_text())
    assert data["meta"]["command"].endswith("--full --no-ptx")
    f32, f16 = data["rows"]  # zoo order: the f32 row first
    assert (f32["precision"], f16["precision"]) == ("fp32", "fp16")
    for row in (f32, f16):
        assert row["status"] == "ok", row
        assert (row["model"], row["size"], row["pipeline"]) == ("nerf_mlp", "small", "none")
        for key in ("ops", "kernels", "launches", "compile_seconds", "stages", "measured_bytes",
                    "lower_bound_bytes", "speed_of_light_us", "modelled_us", "dram_bytes", "emu_vs_ort",
                    "numpy_vs_ort"):
            assert row[key] is not None, key
        assert row["measured_bytes"] >= row["lower_bound_bytes"] > 0
    assert f32["emu_vs_ort"] < 1e-3 and f32["numpy_vs_ort"] < 1e-3
    # f16 contractions (f32 accumulation): within the fp16 tolerance, and really built in f16 (the
    # precision pass ran, and the f16 operands halve the lower bound of the weights' bytes)
    scale = max(1.0, f16["ref_max_abs"])
    assert f16["emu_vs_ort"] < PRECISION_TOL["fp16"] * scale and f16["numpy_vs_ort"] < PRECISION_TOL["fp16"] * scale
    assert "precision" in [s["pass"] for s in f16["stages"]]
    assert "precision" not in [s["pass"] for s in f32["stages"]]
    assert f16["lower_bound_bytes"] < f32["lower_bound_bytes"]
    md = (out / "cpu-2000-01-01.md").read_text()
    assert "scripts/bench.py" in md.split("```")[1]  # the exact command on top
    table = [line for line in md.splitlines() if line.startswith("| nerf_mlp |")]
    assert len(table) == 2 and all(line.count("|") == 21 and "| ok |" in line for line in table)
    assert table[0].startswith("| nerf_mlp | none |") and table[1].startswith("| nerf_mlp | none fp16 |")


def test_failing_rows_say_why():
    rows = [{"model": "m", "size": "small", "pipeline": "roller", "status": "timeout",
             "error": "row took longer than 5s (killed)"},
            {"model": "m", "size": "small", "pipeline": "none", "status": "failed",
             "error": "compile: CompileError: a|b"}]
    text = small_table(rows, 1e-3)
    assert "**timeout**: row took longer than 5s (killed)" in text
    assert "**failed**: compile: CompileError: a/b" in text  # a '|' in the reason must not split the row
    assert all(line.count("|") == 21 for line in text.splitlines())
    full = full_table([{**rows[0], "size": "full"}])
    assert all(line.count("|") == 19 for line in full.splitlines())


def test_wrong_results_are_flagged():
    row = {"model": "m", "size": "small", "pipeline": "none", "status": "ok", "emu_vs_ort": 0.5,
           "numpy_vs_ort": 0.0, "ref_max_abs": 2.0}
    assert "**wrong**: emu_vs_ort" in small_table([row], 1e-3)


def _bench_script():
    return load_file_module(ROOT / "scripts" / "bench.py", "bench_script")


def test_tool_failures_say_which_error():
    from tilec.bench.measure import error_summary
    log = ("tilec: error: nvcc failed on kernel 'rammer0' (exit 1):\nrammer0.cu(7): warning #177-D: unused\n"
           "rammer0.cu(9): error: too few arguments in function call\n  case 24: f(a);\n1 error detected")
    assert error_summary(log) == ("tilec: error: nvcc failed on kernel 'rammer0' (exit 1): "
                                  "rammer0.cu(9): error: too few arguments in function call")
    assert error_summary("one line\nmore") == "one line"


def test_grinder_rows_only_where_there_is_control_flow(tmp_path):
    bench = _bench_script()
    for name, ops in (("flat", {"MatMul": 2}), ("loop", {"Loop": 1, "Add": 1})):
        (tmp_path / f"{name}.json").write_text(json.dumps({"nodes": 3, "ops": ops}))
    assert not bench.has_control_flow(str(tmp_path / "flat.onnx"))
    assert bench.has_control_flow(str(tmp_path / "loop.onnx"))
    assert bench.has_control_flow(str(tmp_path / "missing.onnx"))  # unknown: run it


def test_header_says_how_busy_the_machine_was():
    bench = _bench_script()
    meta = {"jobs": 2, "cpus": 2, "load_average": {"mean": 6.8, "max": 7.4, "samples": 90}}
    assert "other processes shared the CPUs" in bench.machine_line(meta)
    meta["load_average"] = {"mean": 2.1, "max": 2.6, "samples": 90}
    assert "otherwise quiet" in bench.machine_line(meta)
    assert "not recorded" in bench.machine_line({"jobs": 2, "cpus": 2})


def test_phase_timer_restores_the_compiler():
    import tilec.backend.ptxas as ptxas
    from tilec.bench.measure import PhaseTimer
    before = ptxas.check_kernels
    with PhaseTimer() as t:
        assert ptxas.check_kernels is not before
    assert ptxas.check_kernels is before and set(t.seconds) == {"import", "build", "ptxas"}
