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


def error_line(e: BaseException) -> str:
    """``"ValueError: the first line of its message"`` (200 characters at most): an exception as a row's or a
    candidate's one-line error."""
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or ["no output"])[-1][:240]


@dataclass
class ChildResult:
    """How one child process ended: ``status`` ok / timeout / crashed (a signal) / failed (a non-zero exit,
    or no result file), its wall ``seconds``, ``error`` (one line), the tail of its log and its JSON result."""

    status: str
    seconds: float
    error: str = ""
    tail: str = ""
    result: dict | None = None


def run_child(cmd: list, out: Path, timeout: float, env: dict, cwd=None) -> ChildResult:
    """Run ``cmd`` in a new session (process group) with its output in a temporary log, wait at most
    ``timeout`` seconds, kill the whole group on expiry and after it ends (workers it left), and read the JSON
    it wrote to ``out``. Shared by the GPU rows and ``make bench``'s CPU rows."""
    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return ChildResult("timeout", round(time.perf_counter() - t0, 1),
                               f"no result after {timeout:.0f}s (killed)", _log_tail(log))
        finally:
            _kill_leftovers(proc.pid)
        tail = _log_tail(log)
    seconds = round(time.perf_counter() - t0, 1)
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        return ChildResult("crashed", seconds, f"killed by {name}: {_last_line(tail)}", tail)
    if proc.returncode != 0 or not out.is_file():
        return ChildResult("failed", seconds, f"exited {proc.returncode}: {_last_line(tail)}", tail)
    return ChildResult("ok", seconds, tail=tail, result=json.loads(out.read_text()))


def run_row(row: Row, work: Path, root: Path, timeout: float | None = None) -> dict:
    """Run ``row`` in a child process; always returns a dict with ``id``, ``status`` and ``seconds``."""
    limit = row.timeout if timeout is None else timeout
    work.mkdir(parents=True, exist_ok=True)
    out = work / f"{row.id.replace('/', '__')}.row.json"
    cmd = [sys.executable, "-m", "tilec.bench.gpu_row", "--id", row.id, "--spec", json.dumps(row.spec),
           "--out", str(out)]
    base = {"id": row.id, **row.labels}
    r = run_child(cmd, out, limit, child_env(root), cwd=root)
    if r.status != "ok":
        return {**base, "status": r.status, "error": r.error, "seconds": r.seconds, "log_tail": r.tail}
    return {**base, **r.result, "id": row.id, "seconds": r.seconds}


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
