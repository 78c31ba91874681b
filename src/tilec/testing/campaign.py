"""The three fuzz campaigns as functions returning a :class:`Tally`; ``scripts/fuzz.py`` prints them and
the pytest suite asserts on them (with smaller counts)."""
from __future__ import annotations

import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .guard import CRASH, DIAGNOSTIC, MEMORY, OK, TIMEOUT, run_guarded


@dataclass
class Tally:
    """Counts of outcomes for one kind of input, and one example per distinct finding."""

    kind: str
    counts: Counter = field(default_factory=Counter)
    findings: dict = field(default_factory=dict)  # detail -> example name

    def add(self, name: str, outcome, finding: bool = False) -> None:
        self.counts[outcome.kind] += 1
        if outcome.is_finding or finding or outcome.kind == "mismatch":
            self.findings.setdefault(f"{outcome.kind}: {outcome.detail[:150]}", name)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def internal_errors(self) -> int:
        return self.counts[CRASH] + self.counts[TIMEOUT] + self.counts[MEMORY]

    def row(self) -> str:
        c = self.counts
        return (f"| {self.kind} | {self.total} | {c[OK]} | {c[DIAGNOSTIC]} | {c['mismatch']} | "
                f"{self.internal_errors} | {c['skipped']} |")


HEADER = ("| inputs | tried | accepted (ok) | clean diagnostics (exit 1) | mismatches | internal errors "
          "(crash/timeout/memory) | skipped |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")


def ir_campaign(n: int, seed: int = 0, seconds: float = 5.0, seeds: dict | None = None) -> Tally:
    from .ir_mutator import check_ir, mutants
    if seeds is None:
        from .corpus import ir_seeds
        seeds = ir_seeds()
    tally = Tally("mutated IR (parse + verify + front passes)")
    for name, text in mutants(seeds, n, seed):
        tally.add(name, run_guarded(check_ir, text, True, seconds=seconds))
    return tally


def onnx_campaign(n: int, seed: int = 0, seconds: float = 10.0, bases: dict | None = None,
                  hostile: bool = True) -> Tally:
    from .onnx_cases import check_model_file, hostile_cases, mutated_models
    if bases is None:
        from .corpus import onnx_bases
        bases = onnx_bases()
    tally = Tally("adversarial ONNX (hand-made + mutated)")
    passes = True  # imports are also run through the front passes
    with tempfile.TemporaryDirectory(prefix="tilec-onnx-fuzz-") as d:
        if hostile:
            for name, path, expect in hostile_cases(Path(d) / "hostile"):
                o = run_guarded(check_model_file, path, seconds=seconds)
                tally.add(name, o, finding=expect == "diagnostic" and o.kind != DIAGNOSTIC)
        path = Path(d) / "mutant" / "model.onnx"
        path.parent.mkdir()
        for name, data in mutated_models(bases, n, seed):
            path.write_bytes(data)
            tally.add(name, run_guarded(check_model_file, path, passes, seconds=seconds))
    return tally


def graph_campaign(n: int, seed: int = 0, n_nodes: int = 8, seconds: float = 30.0, stages=None,
                   regressions: str | None = None, emu_limit: int | None = None) -> dict:
    """{stage: Tally}; with ``regressions``, each failing graph is shrunk and written there. The ``emu``
    stage (a g++ build per graph, about a second each) runs on the first ``emu_limit`` graphs only."""
    from .differential import STAGES, check_graph, failing
    from .graphgen import generate
    stages = stages or STAGES
    tallies = {s: Tally(f"random graphs vs onnxruntime: {s}") for s in stages}
    written = set()  # (stage, message with numbers and names blurred): one reproducer per kind of failure
    for k in range(n):
        g = generate(seed + k, n_nodes)
        run = [s for s in stages if s != "emu" or emu_limit is None or k < emu_limit]
        outcomes = check_graph(g.model, g.inputs, run, seconds)
        for s, o in outcomes.items():
            # The graph is valid, so a diagnostic means tilec rejected a model it claims to support.
            tallies[s].add(f"seed {seed + k}", o, finding=o.kind == DIAGNOSTIC)
        bad = failing(outcomes)
        if bad and regressions:
            from .shrink import shrink_generated
            stage = bad[0]
            key = (stage, re.sub(r"'[^']*'|\d+", "_", outcomes[stage].detail))
            if key in written:
                continue  # shrinking costs dozens of runs; one reproducer per kind of failure

            def still_fails(model, inputs, stage=stage):
                try:
                    return bool(failing(check_graph(model, inputs, (stage,), seconds)))
                except Exception:  # noqa: BLE001 - onnxruntime rejecting a shrunk graph: not a reproducer
                    return False
            from .shrink import write_regression
            model, inputs = shrink_generated(seed + k, n_nodes, 7, still_fails)
            written.add(key)
            write_regression(model, inputs, stage, outcomes[stage].detail, regressions)
    return tallies
