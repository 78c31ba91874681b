"""``scripts/gpu_check.py --dry-run`` end to end, with faults planted in rows (``TILEC_BENCH_FAULT``, the same
child code a GPU run starts): a hung row is killed at its timeout and a crashed row recorded, each costing that
row only; the budget is printed before any row runs; and when the parent itself is killed, the rows finished so
far are on disk and the hung row's process does not outlive it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.bench.rowrun import FAULT_ENV

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not any(Path(d, "g++").is_file() for d in os.environ.get("PATH", "").split(":")),
                                reason="the dry run's emu backend needs g++")


def _models(folder: Path, names) -> str:
    """The same small model (y = relu(x + w)) under each name: one emulator build serves them all."""
    folder.mkdir()
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])
    w = numpy_helper.from_array((np.arange(32, dtype=np.float32) - 16) / 8, "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
                          "g", [x], [y], [w])
    for n in names:
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(folder / f"{n}.onnx"))
    return str(folder / "*.onnx")


def _cmd(tmp_path: Path, row_timeout: float) -> list:
    return [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), str(tmp_path / "out"), "--dry-run", "--zoo",
            "none", "--models", _models(tmp_path / "models", "abc"), "--jobs", "1", "--row-timeout", str(row_timeout)]


def _env(fault: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, FAULT_ENV: fault, "PYTHONUNBUFFERED": "1"}


def test_hang_and_crash_cost_one_row_each_and_the_budget_comes_first(tmp_path):
    # Warm the emulator's cache with the same kernel first (a cold g++ build on a loaded CI box can take more
    # than the 4 s the ok row gets below: that would test the machine, not the survival of the run).
    warm = [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), str(tmp_path / "warm"), "--dry-run", "--zoo",
            "none", "--models", _models(tmp_path / "warm_models", "w"), "--row-timeout", "300"]
    assert subprocess.run(warm, capture_output=True, text=True, timeout=600, cwd=ROOT, env=_env("")).returncode == 0
    t0 = time.monotonic()
    r = subprocess.run(_cmd(tmp_path, 4), capture_output=True, text=True, timeout=300, cwd=ROOT,
                       env=_env("hang:tilec/a,crash:tilec/b"))
    assert r.returncode == 1, r.stdout + r.stderr  # rows not ok
    out = r.stdout
    plan = out.index("gpu_check: 4 rows in 2 phase(s); budget 480s")
    assert "3 x tilec" in out and "timeout 4s each" in out
    order = [out.index(f"gpu_check: {line}") for line in ("a: timeout", "b: crashed", "c: ok")]
    assert plan < order[0] < order[1] < order[2]
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| a | **timeout**: no result after 4s (killed) |" in md
    assert "| b | **crashed**: killed by SIGKILL" in md and "| c | ok |" in md
    assert "1/3 ok" in md and "Not ok: a, b." in md
    rows = {m["model"]: m for m in json.loads((tmp_path / "out" / "gpu_check.json").read_text())["models"]}
    assert [rows[k]["status"] for k in "abc"] == ["timeout", "crashed", "ok"]
    assert rows["c"]["rel_err"] < 1e-5 and rows["c"]["hot_ms"] > 0
    assert time.monotonic() - t0 < 120  # the hang cost its 4 s timeout, not the run


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _row_children(parent: int) -> list:
    """Pids of the row processes ``parent`` started (children of it that run tilec.bench.gpu_row)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().split(") ")[-1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"tilec.bench.gpu_row" in cmdline:
            found.append(int(stat.parent.name))
    return found


def _wait_for_hung_row(proc, jsonl: Path) -> list:
    """Pids of ``proc``'s row processes once row a is recorded and row b is running (hanging)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if jsonl.is_file() and jsonl.read_text().count("\n") == 1:
            hung = _row_children(proc.pid)
            if hung:
                return hung
    return []


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
def test_a_row_process_killed_from_outside_costs_that_row(tmp_path):
    proc = subprocess.Popen(_cmd(tmp_path, 120), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=_env("hang:tilec/b"))
    try:
        hung = _wait_for_hung_row(proc, tmp_path / "out" / "gpu_check.jsonl")
        assert hung, "row b never started"
        for pid in hung:
            os.kill(pid, signal.SIGKILL)  # what the OOM killer or a driver fault does to a row
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| a | ok |" in md and "| b | **crashed**: killed by SIGKILL" in md and "| c | ok |" in md


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc (Linux)")
def test_killed_parent_leaves_the_finished_rows_and_no_hung_row(tmp_path):
    proc = subprocess.Popen(_cmd(tmp_path, 120), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=ROOT, env=_env("hang:tilec/b"))
    jsonl = tmp_path / "out" / "gpu_check.jsonl"
    try:
        hung = _wait_for_hung_row(proc, jsonl)
        assert hung, "row b never started"
    finally:
        proc.send_signal(signal.SIGKILL)  # the parent dies mid-run: the machine is given back, say
        proc.communicate(timeout=30)
    md = (tmp_path / "out" / "gpu_check.md").read_text()
    assert "| a | ok |" in md and "| b |" not in md  # on disk row by row; b never finished
    assert [json.loads(ln)["model"] for ln in jsonl.read_text().splitlines()] == ["a"]
    t0 = time.monotonic()
    while any(_alive(p) for p in hung) and time.monotonic() - t0 < 10:
        time.sleep(0.1)
    survivors = [p for p in hung if _alive(p)]
    for pid in survivors:  # the test's own leftovers, by pid
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "the hung row outlived its parent"
