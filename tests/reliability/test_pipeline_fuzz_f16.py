"""f16 random graphs through every pipeline under the CUDA emulator. The f16 share of
``test_pipeline_fuzz.py``'s rotation (one seed in ``F16_EVERY``) always takes the default pipeline, since
``F16_EVERY`` equals the number of pipelines; these cases force f16 (``make_case(dtype="f16")``) so that
each pipeline sees f16 in CI too. ``make fuzz`` runs 500 such graphs (``--pipeline-f16-graphs``)."""
import numpy as np
import pytest

from tilec.testing import pipeline_fuzz as pf

SEED = 1_000_000   # scripts/fuzz.py's first f16-only seed (F16_SEEDS)
MAX_NODES = 4      # small graphs: about a second per case on the 2-core box


def _cases():
    return [pf.make_case(s, MAX_NODES, dtype="f16") for s in range(SEED, SEED + len(pf.pipelines()))]


def test_forced_f16_cases_cover_every_pipeline():
    cases = _cases()
    assert {c.pipeline for c in cases} == set(pf.pipelines())
    for c in cases:
        assert c.dtype == "f16" and not set(c.graph.ops) & pf.F16_EXCLUDED
        assert all(v.dtype == np.float16 for v in c.graph.inputs.values())
    assert pf.make_case(SEED, MAX_NODES, dtype="f32").dtype == "f32"
    with pytest.raises(ValueError):
        pf.make_case(SEED, dtype="bf16")


def test_f16_graphs_through_every_pipeline_under_the_emulator():
    bad = [(c.name, c.graph.ops, o) for c in _cases() if pf.is_failure(o := pf.run_case(c))]
    assert not bad, bad
