"""A run's plan and budget: phases of rows (each phase ``jobs`` rows at a time), the whole budget printed before
anything runs, and the loop that runs every row in its own process and appends it to the table as it finishes.

A row that would start with less than ``floor`` seconds of the budget left is recorded as ``skipped`` (not run);
a row that starts gets its own timeout, capped by what is left, so the run ends within the budget.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .rowrun import Row, run_row


class Budget:
    """``Budget(seconds, phases, start=None)`` with ``phases`` a list of ``(name, rows, jobs)``; ``start`` (a
    ``time.monotonic()`` reading, default now) is when the budget began: the script's start, so that building
    the models before the plan counts too."""

    def __init__(self, seconds: float, phases: list, floor: float = 15.0, start: float | None = None):
        self.seconds, self.phases, self.floor = seconds, phases, floor
        self.start = time.monotonic() if start is None else start

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def worst_case(self) -> float:
        """Every row running up to its timeout: per phase, rows packed longest first on ``jobs`` slots."""
        total = 0.0
        for _, rows, jobs in self.phases:
            slots = [0.0] * max(1, jobs)
            for t in sorted((r.timeout for r in rows), reverse=True):
                slots[slots.index(min(slots))] += t
            total += max(slots, default=0.0)
        return total

    def plan(self, what: str) -> str:
        """The text printed up front: rows per phase and kind, each kind's timeout, worst case and budget."""
        n = sum(len(rows) for _, rows, _ in self.phases)
        lines = [f"{what}: {n} rows in {len(self.phases)} phase(s); budget {self.seconds:.0f}s from the script's "
                 f"start ({max(0.0, self.left()):.0f}s left now); worst case if every row hits its timeout "
                 f"{self.worst_case():.0f}s (no row runs past the budget: a row's timeout is capped by what is left, "
                 "rows not started within it are recorded as skipped)"]
        for name, rows, jobs in self.phases:
            lines.append(f"  phase '{name}': {len(rows)} rows, {jobs} at a time")
            groups: dict = {}
            for r in rows:
                key = (" ".join(str(r.spec[k]) for k in ("kind", "mode", "dtype") if r.spec.get(k)), r.timeout)
                groups[key] = groups.get(key, 0) + 1
            lines += [f"    {c:3d} x {kind:34s} timeout {t:.0f}s each" for (kind, t), c in sorted(groups.items())]
        return "\n".join(lines)

    def timeout_for(self, row: Row) -> float | None:
        """The row's timeout capped by the budget left; None when the row must be skipped."""
        left = self.left()
        if left < min(self.floor, row.timeout):
            return None
        return float(math.floor(min(row.timeout, left)))


def run_rows(rows: list, jobs: int, budget: Budget, work: Path, root: Path, on_row) -> list:
    """Run ``rows`` (``jobs`` at a time), each in its own process; ``on_row(row)`` is called as each finishes
    (the caller appends it to its table). Returns the results in the order of ``rows``."""
    def one(row: Row) -> dict:
        limit = budget.timeout_for(row)
        if limit is None:
            result = {"id": row.id, **row.labels, "status": "skipped",
                      "error": f"not started: {max(0.0, budget.left()):.0f}s of the {budget.seconds:.0f}s budget left",
                      "seconds": 0.0}
        else:
            result = run_row(row, work, root, timeout=limit)
        on_row(result)
        return result

    if jobs <= 1:
        return [one(r) for r in rows]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, rows))
