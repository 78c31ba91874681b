"""Every persistent kernel of the samples completes in the emulator's resident-limit mode (issue #15): run with
no more blocks at once than the target GPU holds (arch spec, ``__launch_bounds__``, shared memory), each
rProgram and device loop / if of samples/*.onnx, samples/parallel, samples/control and the small zoo finishes
and gives numpy's answer, so none of them could hang a GPU of that arch.

The default pipeline (grinder, which includes rammer) runs in CI; on the models without control flow the
rammer pipeline's plan is the same. The rammer pipeline on every sample and the whole small zoo under both
pipelines are the slow sweep (``-m slow``)."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tilec.bench.measure import model_feeds, onnx_feeds
from tilec.backend.plan import walk_fallbacks, walk_steps
from tilec.driver import compile_model, load_target, make_executor
from tilec.runtime.interpreter import run_module
from tilec.runtime.residency import step_limit

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
PLAIN = ["conv_block", "dw_separable", "mlp", "transformer_layer", "parallel/inception_block",
         "parallel/lstm_cell", "parallel/nasnet_cell", "parallel/resnext_block"]
CONTROL = ["control/greedy_decoder", "control/lstm_loop", "control/nasrnn_loop", "control/skipnet_if",
           "control/torch_gru", "control/torch_lstm", "control/torch_rnn"]
# Under rammer, only these control samples have rPrograms (the others' kernels sit alone in host loops).
CONTROL_RAMMER = ["control/torch_gru", "control/torch_lstm"]
ZOO_CI = ["bert_base", "lstm"]   # three rPrograms; two device loops


def _feeds(model: onnx.ModelProto, seed: int = 0) -> dict:
    """Seeded inputs: normal floats; integers in [1, 6) so that trip counts and token ids make loops run."""
    return model_feeds(model, seed, ints=(1, 6))


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from samples.models import ZOO, build  # noqa: E402


def _zoo(name: str, pipeline: str, tmp_path: Path, sweep: bool = False) -> None:
    """:func:`_check` on the small zoo model ``name``, on the zoo tests' seeded inputs (token ids 0/1)."""
    path = tmp_path / f"{name}-small.onnx"
    onnx.save(build(name, "small"), str(path))
    _check(path, pipeline, tmp_path / "build", sweep=sweep, feeds=onnx_feeds(str(path)))


def _check(model: Path, pipeline: str, build: Path, sweep: bool = False, feeds: dict | None = None) -> None:
    """Compile ``model``, check every persistent step's grid fits the resident limit of its arch, then run it
    in resident-limit mode on ``feeds`` (default :func:`_feeds`) and compare with numpy. A model with no
    persistent kernel is a failure (the case would prove nothing), or in a ``sweep`` a skip."""
    compile_model(str(model), str(build), pipeline=pipeline)
    plan = json.loads((build / "plan.json").read_text())
    steps = [s for s in walk_steps(plan["steps"]) if s.get("concurrent")]
    steps += [s for s in walk_fallbacks(plan["steps"]) if s.get("concurrent")]
    if not steps and sweep:
        pytest.skip(f"{model.name} under {pipeline} has no persistent kernel")
    assert steps, f"{model.name} under {pipeline} has no persistent kernel: nothing to check"
    for s in steps:
        limit = step_limit(s)
        assert math.prod(s["grid"]) <= limit.blocks, f"{s['kernel']}: {limit.describe()}"
    feeds = feeds if feeds is not None else _feeds(onnx.load(str(model), load_external_data=False))
    got = make_executor(str(build), "emu", emu_resident_limit=True).run(feeds)
    ref = run_module(load_target(str(model)), feeds)
    for name, want in ref.items():
        want = np.asarray(want, np.float64)
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        err = float(np.abs(np.asarray(got[name], np.float64) - want).max(initial=0.0))
        assert err <= 1e-4 * scale, f"{name}: max abs err {err:.2e}"


@pytest.mark.parametrize("name", PLAIN + CONTROL)
def test_samples_complete_under_the_resident_limit(name, tmp_path):
    _check(SAMPLES / f"{name}.onnx", "default", tmp_path / "build")


@pytest.mark.parametrize("name", CONTROL_RAMMER)
def test_control_samples_under_rammer_complete(name, tmp_path):
    _check(SAMPLES / f"{name}.onnx", "rammer", tmp_path / "build")


@pytest.mark.parametrize("name", ZOO_CI)
def test_small_zoo_subset_completes(name, tmp_path):
    _zoo(name, "default", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", PLAIN)
def test_plain_samples_under_rammer_complete(name, tmp_path):
    _check(SAMPLES / f"{name}.onnx", "rammer", tmp_path / "build")


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["rammer", "grinder"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_small_zoo_completes(name, pipeline, tmp_path):
    _zoo(name, pipeline, tmp_path, sweep=True)
