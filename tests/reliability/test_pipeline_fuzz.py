"""Random graphs through whole driver pipelines under the CUDA emulator (tilec.testing.pipeline_fuzz):
CI runs 100 per run, rotating pipelines, emulator orders and f16; ``make fuzz`` runs 2,000 more."""
import json

import numpy as np
import onnx
import pytest

from tilec.testing import pipeline_fuzz as pf
from tilec.testing.guard import CRASH, DIAGNOSTIC, Outcome

CI_CASES = 100
CI_MAX_NODES = 6   # 2-6 ops, small dims (30% wide): well under a second per case on the 2-core box
# Known open bugs, seed -> what goes wrong (each has a reproducer in tests/regressions/). A listed case that
# starts passing fails this test too: remove it from the list.
KNOWN: dict = {}


def test_cases_rotate_pipelines_orders_and_dtypes():
    cases = [pf.make_case(s, CI_MAX_NODES) for s in range(CI_CASES)]
    assert {c.pipeline for c in cases} == set(pf.pipelines()) and len(pf.pipelines()) >= 4
    assert {c.order for c in cases} == set(pf.ORDERS)
    assert {(c.pipeline, c.order) for c in cases} == {(p, o) for p in pf.pipelines() for o in pf.ORDERS}
    f16 = [c for c in cases if c.dtype == "f16"]
    assert len(f16) == CI_CASES // pf.F16_EVERY
    assert all(2 <= len(c.graph.ops) for c in cases)
    for c in f16:
        assert not set(c.graph.ops) & pf.F16_EXCLUDED
        assert all(v.dtype == np.float16 for v in c.graph.inputs.values())
        onnx.checker.check_model(c.graph.model, full_check=True)


def test_cases_are_deterministic():
    a, b = pf.make_case(17), pf.make_case(17)
    assert a.graph.model.SerializeToString() == b.graph.model.SerializeToString()
    assert (a.pipeline, a.order, a.dtype) == (b.pipeline, b.order, b.dtype)


def test_only_documented_diagnostics_are_allowed(monkeypatch):
    assert pf.is_failure(Outcome(DIAGNOSTIC, "model.onnx: error: something unsupported"))
    assert pf.is_failure(Outcome(CRASH, "KeyError"))
    monkeypatch.setattr(pf, "UNSUPPORTED", [(r"something unsupported", "docs/x.md")])
    assert not pf.is_failure(Outcome(DIAGNOSTIC, "model.onnx: error: something unsupported"))


def test_a_failing_case_is_saved_for_reproduction(tmp_path):
    case = pf.make_case(3)
    out = pf.save_case(case, Outcome("mismatch", "output 'y': max abs error 1"), tmp_path)
    info = json.loads((out / "case.json").read_text())
    assert info["seed"] == 3 and info["pipeline"] == case.pipeline and info["ops"] == case.graph.ops
    assert onnx.load(out / "model.onnx").SerializeToString() == case.graph.model.SerializeToString()
    with np.load(out / "inputs.npz") as f:
        assert set(f.files) == set(case.graph.inputs)


def test_a_wrong_result_is_a_mismatch(monkeypatch):
    # The comparison must be able to fail: perturb onnxruntime's answer.
    real = pf._reference
    monkeypatch.setattr(pf, "_reference", lambda c: {k: v + 1 for k, v in real(c).items()})
    o = pf.run_case(pf.make_case(0, CI_MAX_NODES))
    assert o.kind == "mismatch" and "emu vs onnxruntime" in o.detail, o


def test_random_graphs_through_every_pipeline_under_the_emulator():
    # Every kernel also goes through NVRTC with CuPy's options (--check-nvrtc), as the GPU will compile it.
    bad = []
    for seed in range(CI_CASES):
        case = pf.make_case(seed, CI_MAX_NODES)
        o = pf.run_case(case, check_nvrtc=True)
        if pf.is_failure(o) != (seed in KNOWN):
            bad.append((case.name, case.graph.ops, o, KNOWN.get(seed, "")))
    assert not bad, bad


@pytest.mark.slow
def test_make_fuzz_sized_pipeline_sweep(tmp_path):
    tallies = pf.pipeline_campaign(500, seed=100_000, save_dir=tmp_path)
    assert not tallies["all"].findings, tallies["all"].findings
