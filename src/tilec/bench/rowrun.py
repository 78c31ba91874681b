"""Run one benchmark row in its own process, with a timeout: a crash or a hang costs that row only.

The parent (``scripts/gpu_check.py``, ``scripts/gpu_bench.py``) builds a ``Row`` per measurement; ``run_row``
starts ``python -m tilec.bench.gpu_row`` in a new session (process group), waits up to the row's timeout, kills
the whole group on expiry (NVRTC, inductor's compile workers and g++ are children too) and returns the row's
JSON, or a row saying ``timeout`` / ``crashed`` / ``failed`` and why, with the tail of its log.

``TILEC_BENCH_FAULT`` (``hang:ROW_ID,crash:ROW_ID``) makes the child of that row hang or kill itself before it
measures anything: the tests use it to prove the parent survives both, on the same code path a GPU run takes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

FAULT_ENV = "TILEC_BENCH_FAULT"


@dataclass
class Row:
    """One measurement: ``id`` names it in the table, ``spec`` is what the child measures (its ``kind`` picks
    the function in ``tilec.bench.gpu_row``), ``timeout`` bounds its wall time in seconds."""

    id: str
    spec: dict
    timeout: float
    labels: dict = field(default_factory=dict)  # columns the parent knows before the row runs (model, system)


def child_env(root: Path) -> dict:
    """The parent's environment with ``src/`` and the repository root (for ``samples``) on PYTHONPATH."""
    paths = [str(root / "src"), str(root), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))


def _log_tail(log, limit: int = 2000) -> str:
    log.seek(0)
    return log.read().decode(errors="replace")[-limit:]


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][:240]


def run_row(row: Row, work: Path, root: Path, timeout: float | None = None) -> dict:
    """Run ``row`` in a child process; always returns a dict with ``id``, ``status`` and ``seconds``."""
    limit = row.timeout if timeout is None else timeout
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{row.id.replace('/', '__')}.row.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "tilec.bench.gpu_row", "--id", row.id, "--spec", json.dumps(row.spec),
           "--out", str(out)]
    base = {"id": row.id, **row.labels}
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env(root), cwd=root,
                                start_new_session=True)
        try:
            proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return {**base, "status": "timeout", "error": f"no result after {limit:.0f}s (killed)",
                    "seconds": round(time.perf_counter() - t0, 1), "log_tail": _log_tail(log)}
        finally:
            _kill_leftovers(proc.pid)
        tail = _log_tail(log)
    seconds = round(time.perf_counter() - t0, 1)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return {**base, "status": "crashed", "error": f"killed by {name}: {_last_line(tail)}", "seconds": seconds,
                "log_tail": tail}
    if proc.returncode != 0 or not out.is_file():
        return {**base, "status": "failed", "error": f"exited {proc.returncode}: {_last_line(tail)}",
                "seconds": seconds, "log_tail": tail}
    result = json.loads(out.read_text())
    return {**base, **result, "id": row.id, "seconds": seconds}


def _kill_leftovers(pgid: int) -> None:
    """A finished child may leave workers in its group (inductor's compile pool); they must not outlive it."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def injected_fault(row_id: str) -> str | None:
    """``hang`` or ``crash`` when ``TILEC_BENCH_FAULT`` names this row (see the module docstring)."""
    for item in filter(None, os.environ.get(FAULT_ENV, "").split(",")):
        what, _, target = item.partition(":")
        if target == row_id and what in ("hang", "crash"):
            return what
    return None
