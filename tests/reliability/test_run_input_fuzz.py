"""Mutated ``tilec run`` inputs (``tilec.testing.run_inputs``): every one either runs or is a clean
diagnostic that wrote no outputs; CI runs 200, ``make fuzz`` 1,000."""
from __future__ import annotations

import numpy as np

from tilec.testing import run_inputs
from tilec.testing.guard import CRASH, DIAGNOSTIC, OK


def test_mutated_run_inputs_run_or_fail_cleanly():
    tally = run_inputs.run_input_campaign(200, seed=11)
    assert tally.total == 200 and not tally.findings, tally.findings
    # Both outcomes really happen: valid files run, broken ones are refused.
    assert tally.counts[OK] >= 80 and tally.counts[DIAGNOSTIC] >= 60, tally.counts


def test_every_mutation_kind_is_generated():
    import random
    declared = [("a", np.dtype(np.float32), (4, 3)), ("ids", np.dtype(np.int64), (2,))]
    seen = set()
    pyrng = random.Random(0)
    for _ in range(400):
        for label, _, _ in run_inputs.mutations(declared, np.random.default_rng(0), pyrng):
            seen.add(label.split()[0])
    assert {"valid", "missing", "extra", "misspelt", "dtype", "shape", "rank", "truncated", "bit", "npy", "huge",
            "random", "object", "folder"} <= seen, seen


def test_a_crash_is_a_finding(monkeypatch):
    # The campaign can fail: a run that raises a non-CompileError is counted as an internal error.
    def boom(*args, **kwargs):
        raise KeyError("planted")
    monkeypatch.setattr(run_inputs, "_check", boom)
    tally = run_inputs.run_input_campaign(4, seed=0)
    assert tally.counts[CRASH] == 4 and tally.findings
