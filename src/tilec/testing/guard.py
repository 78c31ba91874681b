"""Run one fuzz input under a time limit and classify what happened.

A robust compiler answers every input with a result or a :class:`CompileError` (a diagnostic). Anything
else is a finding: another exception (``crash``), running past the limit (``timeout``), or a
``MemoryError`` / a jump in peak RSS (``memory``: a hostile size reached an allocation).
"""
from __future__ import annotations

import os
import resource
import signal
import traceback
from contextlib import contextmanager
from dataclasses import dataclass

from ..ir.diagnostics import CompileError

OK, DIAGNOSTIC, CRASH, TIMEOUT, MEMORY = "ok", "diagnostic", "crash", "timeout", "memory"
FINDINGS = (CRASH, TIMEOUT, MEMORY)

# Peak-RSS growth during one input beyond this counts as a huge allocation even when it succeeded.
RSS_GROWTH_LIMIT = 512 << 20


class Timeout(BaseException):
    """Raised by the alarm; a BaseException so tilec's ``except Exception`` boundaries cannot swallow it."""


@dataclass
class Outcome:
    kind: str
    detail: str = ""

    @property
    def is_finding(self) -> bool:
        return self.kind in FINDINGS


@contextmanager
def time_limit(seconds: float):
    """Raise :class:`Timeout` in the main thread after ``seconds`` (SIGALRM; Unix only)."""
    def on_alarm(signum, frame):
        raise Timeout(f"no answer within {seconds}s")
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_guarded(fn, *args, seconds: float = 5.0, **kwargs) -> Outcome:
    """Call ``fn(*args, **kwargs)`` and classify the result (see the module docstring)."""
    before = _peak_rss()
    try:
        with time_limit(seconds):
            fn(*args, **kwargs)
    except CompileError as e:
        outcome = Outcome(DIAGNOSTIC, e.diagnostic.message[:200])
    except Timeout as e:
        outcome = Outcome(TIMEOUT, str(e))
    except MemoryError:
        outcome = Outcome(MEMORY, "MemoryError")
    except RecursionError:
        # The CLI turns this into a clean 'nests too deeply' exit 1, so it is not a crash.
        outcome = Outcome(DIAGNOSTIC, "input nests too deeply (RecursionError)")
    except Exception as e:  # noqa: BLE001 - classifying every escape is the point
        tb = traceback.extract_tb(e.__traceback__)
        where = next((f"{os.path.basename(f.filename)}:{f.lineno}" for f in reversed(tb)
                      if "/tilec/" in f.filename and "/testing/" not in f.filename), "?")
        outcome = Outcome(CRASH, f"{type(e).__name__} at {where}: {str(e)[:160]}")
    else:
        outcome = Outcome(OK)
    grew = _peak_rss() - before
    if grew > RSS_GROWTH_LIMIT and outcome.kind in (OK, DIAGNOSTIC):
        outcome = Outcome(MEMORY, f"peak RSS grew by {grew >> 20} MiB")
    return outcome


def vm_size() -> int | None:
    """This process's address space in bytes (``VmSize``), or None where /proc does not say (not Linux)."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return None


def cap_address_space(extra_bytes: int = 4 << 30, base: int | None = None) -> None:
    """Limit this process's address space to ``base`` (default: its current size) plus ``extra_bytes``, so a
    hostile size raises MemoryError instead of paging the machine to death. For fuzz processes, not pytest
    itself."""
    vm = vm_size() if base is None else base
    if vm is None:
        return
    limit = vm + extra_bytes
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def in_child(fn, *args, mem_bytes: int = 3 << 30, timeout: float = 600.0):
    """Run ``fn(*args)`` in a forked child with a capped address space; returns its (picklable) result.

    pytest must not cap its own memory, so batches that may allocate go through here. A child that dies
    (a signal, the OOM killer) or overruns ``timeout`` raises RuntimeError.
    """
    import pickle
    import select
    import time
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 0
        try:
            cap_address_space(mem_bytes)
            payload = pickle.dumps(("ok", fn(*args)))
        except BaseException as e:  # noqa: BLE001 - everything must reach the parent
            payload = pickle.dumps(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
            code = 1
        with os.fdopen(w, "wb") as f:
            f.write(payload)
        os._exit(code)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    with os.fdopen(r, "rb") as f:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([f], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise RuntimeError(f"fuzz child ran past {timeout}s")
            chunk = os.read(f.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError(f"fuzz child died (wait status {status})")
    kind, value = pickle.loads(b"".join(chunks))
    if kind != "ok":
        raise RuntimeError(f"fuzz child failed: {value}")
    return value
