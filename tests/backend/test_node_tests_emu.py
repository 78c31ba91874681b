"""ONNX node tests compiled to CUDA and run under the emulator (normal and reverse thread order), for the
default GPU and for an AMD one (``mi250x``: HIP sources, 64-lane wavefronts; issue #23).

CI runs one case per op type (the first supported, non-excluded case of each); ``-m slow`` runs them all.
Each case is imported, compiled with the default pipeline into a build folder, and executed by the
same executor the CLI uses, so every kernel path the backend claims for these ops is exercised.
``TILEC_NODE_TEST_PIPELINE`` names another pipeline (e.g. ``grinder``) for sweeping the fuller ones.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "frontend"))
import node_harness as H  # noqa: E402


def _runnable():
    return [c for c in H.supported_cases() if c.name not in H.exclusions()]


def _one_per_op():
    seen, out = set(), []
    for c in _runnable():
        ops = H.case_ops(c)
        key = ops[-1] if len(ops) > 1 and ops[0] == "Constant" else ops[0]
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _pipeline() -> str:
    """The pipeline under test: the driver's default unless the environment names another."""
    from tilec.driver import DEFAULT_PIPELINE
    return os.environ.get("TILEC_NODE_TEST_PIPELINE") or DEFAULT_PIPELINE


_CI = {c.name for c in _one_per_op()}
_PARAMS = [pytest.param(c, id=c.name, marks=[] if c.name in _CI else [pytest.mark.slow]) for c in _runnable()]



def compile_and_run(case, build: Path, order: str, arch: str | None = None) -> None:
    """Compile ``case`` for ``arch`` (default: tilec's default GPU) and run it under the emulator."""
    from tilec.analysis.hardware import set_target
    from tilec.backend.build import module_text, write_build
    from tilec.driver import pipeline_spec
    from tilec.passes.pipeline import PassManager, parse_pipeline
    from tilec.runtime.emu_device import EmuDevice
    from tilec.runtime.executor import Executor
    graph = case.model.graph
    init = {t.name for t in graph.initializer}
    arg_names = [i.name for i in graph.input if i.name not in init]
    for inputs, outputs in case.data_sets[:1]:
        feeds = dict(zip(arg_names, (H._array(v) for v in inputs)))
        module = H._import(case, feeds)
        if arch:
            set_target(module, arch)
        pipeline = _pipeline()
        passes = parse_pipeline(pipeline_spec(pipeline))   # "default" and unknown names handled as the CLI does
        lower = next(i for i, p in enumerate(passes) if p.name == "lower-cuda")
        PassManager(passes[:lower]).run(module)
        reference = module_text(module)
        PassManager(passes[lower:]).run(module)
        write_build(module, build, model=case.name, pipeline=pipeline, stages=[],
                    start=time.perf_counter(), reference=reference)
        executor = Executor.from_build(str(build), EmuDevice(order=order))
        fn_args = {n: feeds[n] for n in arg_names if n in feeds}
        got = executor.run({k: v for k, v in fn_args.items() if k in _main_args(build)})
        for out, want in zip(graph.output, outputs):
            H.compare(out.name, got[out.name], H._array(want))


def _main_args(build: Path) -> set:
    import json
    return {b["input"] if isinstance(b.get("input"), str) else b["name"]
            for b in json.loads((build / "plan.json").read_text())["buffers"] if b.get("kind") == "input"}


@pytest.mark.parametrize("case", _PARAMS)
@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_node_case_under_emu(case, order, tmp_path):
    compile_and_run(case, tmp_path / "build", order)


@pytest.mark.parametrize("case", _PARAMS)
# CI runs one case per op in the normal thread order; the reverse order, like every other case, with -m slow
# (it keeps the CI run well under its 30 minutes).
@pytest.mark.parametrize("order", ["normal", pytest.param("reverse", marks=pytest.mark.slow)])
def test_node_case_under_emu_mi250x(case, order, tmp_path):
    compile_and_run(case, tmp_path / "build", order, arch="mi250x")
    assert all(p.suffix == ".hip" for p in (tmp_path / "build" / "kernels").glob("*.*")
               if p.suffix in (".cu", ".hip"))


def test_ci_subset_covers_every_op():
    ops = {op for c in _runnable() for op in H.case_ops(c)}
    covered = {op for c in _one_per_op() for op in H.case_ops(c)}
    assert len(_one_per_op()) >= 40
    # every op some runnable case uses is run in CI by at least one case (Constant only feeds other ops)
    assert ops - covered <= {"Constant"}, sorted(ops - covered)
