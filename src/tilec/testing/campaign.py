"""The campaign runner (issue #22) and the three fuzz campaigns as functions returning a :class:`Tally`;
``scripts/fuzz.py`` prints them and the pytest suite asserts on them (with smaller counts).

Each campaign cuts its inputs into content-addressed work units (``executors.Unit``: the mutated IR text, the
ONNX bytes, the generated graph) and hands them to an executor: :class:`LocalExecutor` (the default: this
process, in order, as before) or :class:`RayExecutor` (``--ray``). Results come back in unit order and are
tallied here, so the table is the same either way. ``worker_memory``: on Ray, each worker caps its own address
space (what ``scripts/fuzz.py`` does to itself when it runs everything locally).
"""
from __future__ import annotations

import re
import resource
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .executors import (FileInput, LocalExecutor, RayExecutor, Unit, add_ray_argument,  # noqa: F401 - the API
                        content_hash, executor_for)
from .guard import CRASH, DIAGNOSTIC, MEMORY, OK, TIMEOUT, cap_address_space, run_guarded, vm_size

IR_CHUNK, ONNX_CHUNK, GRAPH_CHUNK = 250, 50, 10   # inputs per unit: a few seconds of work each
LIFT = "lift"   # worker_memory for the emulator campaigns: no address-space cap (see scripts/fuzz.py)


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


_BASE_VM: list = []   # this process's address space when its first unit capped it


def worker_memory_limit(memory) -> None:
    """In a Ray worker, before a unit: ``None`` leaves the limit alone (the local run: the script capped
    itself), ``LIFT`` removes the cap, a byte count caps the address space at the worker's size before its
    first unit plus that much (``guard.cap_address_space``)."""
    if memory is None:
        return
    if memory == LIFT:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (hard, hard))
        return
    if not _BASE_VM:
        vm = vm_size()
        if vm is None:
            return   # not Linux: no cap, as guard.cap_address_space
        _BASE_VM.append(vm)
    cap_address_space(int(memory), _BASE_VM[0])


def _chunks(items: list, size: int) -> list:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _ir_unit(texts: list, seconds: float, memory) -> list:
    from .ir_mutator import check_ir
    worker_memory_limit(memory)
    return [run_guarded(check_ir, text, True, seconds=seconds) for text in texts]


def ir_campaign(n: int, seed: int = 0, seconds: float = 5.0, seeds: dict | None = None, executor=None,
                worker_memory=None) -> Tally:
    from .ir_mutator import mutants
    if seeds is None:
        from .corpus import ir_seeds
        seeds = ir_seeds()
    tally = Tally("mutated IR (parse + verify + front passes)")
    items = _chunks(list(mutants(seeds, n, seed)), IR_CHUNK)
    units = [Unit.of(_ir_unit, [text for _, text in chunk], seconds, worker_memory) for chunk in items]
    for chunk, outcomes in zip(items, (executor or LocalExecutor()).run(units)):
        for (name, _), o in zip(chunk, outcomes):
            tally.add(name, o)
    return tally


def _onnx_hostile_unit(seconds: float, memory) -> list:
    """``[(name, outcome, expected)]`` of the hand-made hostile models (written into a temporary folder)."""
    from .onnx_cases import check_model_file, hostile_cases
    worker_memory_limit(memory)
    with tempfile.TemporaryDirectory(prefix="tilec-onnx-fuzz-") as d:
        return [(name, run_guarded(check_model_file, path, seconds=seconds), expect)
                for name, path, expect in hostile_cases(Path(d) / "hostile")]


def _onnx_mutant_unit(models: list, passes: bool, seconds: float, memory) -> list:
    from .onnx_cases import check_model_file
    worker_memory_limit(memory)
    out = []
    with tempfile.TemporaryDirectory(prefix="tilec-onnx-fuzz-") as d:
        path = Path(d) / "mutant" / "model.onnx"
        path.parent.mkdir()
        for data in models:
            path.write_bytes(data)
            out.append(run_guarded(check_model_file, path, passes, seconds=seconds))
    return out


def onnx_campaign(n: int, seed: int = 0, seconds: float = 10.0, bases: dict | None = None,
                  hostile: bool = True, executor=None, worker_memory=None) -> Tally:
    from .onnx_cases import mutated_models
    if bases is None:
        from .corpus import onnx_bases
        bases = onnx_bases()
    tally = Tally("adversarial ONNX (hand-made + mutated)")
    passes = True  # imports are also run through the front passes
    items = _chunks(list(mutated_models(bases, n, seed)), ONNX_CHUNK)
    units = [Unit.of(_onnx_hostile_unit, seconds, worker_memory)] if hostile else []
    units += [Unit.of(_onnx_mutant_unit, [data for _, data in chunk], passes, seconds, worker_memory)
              for chunk in items]
    results = (executor or LocalExecutor()).run(units)
    if hostile:
        for name, o, expect in results.pop(0):
            tally.add(name, o, finding=expect == "diagnostic" and o.kind != DIAGNOSTIC)
    for chunk, outcomes in zip(items, results):
        for (name, _), o in zip(chunk, outcomes):
            tally.add(name, o)
    return tally


def _graph_unit(graphs: list, seconds: float, memory) -> list:
    """``check_graph`` of each ``(model, inputs, stages)``."""
    from .differential import check_graph
    worker_memory_limit(memory)
    return [check_graph(model, inputs, run, seconds) for model, inputs, run in graphs]


def graph_campaign(n: int, seed: int = 0, n_nodes: int = 8, seconds: float = 30.0, stages=None,
                   regressions: str | None = None, emu_limit: int | None = None, executor=None,
                   worker_memory=None) -> dict:
    """{stage: Tally}; with ``regressions``, each failing graph is shrunk and written there (here, after the
    units ran). The ``emu`` stage (a g++ build per graph, about a second each) runs on the first ``emu_limit``
    graphs only."""
    from .differential import STAGES, check_graph, failing
    from .graphgen import generate
    stages = stages or STAGES
    tallies = {s: Tally(f"random graphs vs onnxruntime: {s}") for s in stages}
    written = set()  # (stage, message with numbers and names blurred): one reproducer per kind of failure
    graphs = []
    for k in range(n):
        g = generate(seed + k, n_nodes)
        graphs.append((g.model, g.inputs, [s for s in stages if s != "emu" or emu_limit is None or k < emu_limit]))
    items = _chunks(graphs, GRAPH_CHUNK)
    units = [Unit.of(_graph_unit, chunk, seconds, worker_memory) for chunk in items]
    results = [o for chunk in (executor or LocalExecutor()).run(units) for o in chunk]
    for k, outcomes in enumerate(results):
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
