"""The zoo's control-flow models (lstm, nasrnn, seq2seq, blockdrop; small) under ``--pipeline grinder``:
compiled, run under the CUDA emulator and compared with onnxruntime on the tests' seeded inputs.

Grinder moves the time loops, the greedy decoder's early-exit loop and BlockDrop's per-block ``If`` onto the
device, so the run takes no host round trip but the final read of the results (one host sync, where the
host-driven schedule of ``rammer`` reads a trip count, condition or predicate back per iteration or branch),
and a handful of launches (measured 2026-11-29: 4 / 1 / 3 / 12; rammer took 98 / 303 / 226 / 39).
"""
from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from samples.models import build  # noqa: E402

# Launch ceilings: the measured counts (a regression that moves control flow back to the host shows up
# here and in the host syncs).
MAX_LAUNCHES = {"lstm": 4, "nasrnn": 1, "seq2seq": 3, "blockdrop": 12}


@pytest.mark.parametrize("name", sorted(MAX_LAUNCHES))
def test_grinder_build_matches_onnxruntime_under_emu(name, tmp_path):
    from tilec.bench.measure import onnx_feeds
    from tilec.driver import compile_model, make_executor
    model = build(name, "small")
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    compile_model(str(path), str(tmp_path / "build"), pipeline="grinder")
    ex = make_executor(str(tmp_path / "build"), "emu")
    feeds = onnx_feeds(str(path))    # the seeded inputs of tests/zoo and the bench
    got = ex.run(feeds)
    totals = ex.report()["totals"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for vi, want in zip(model.graph.output, sess.run(None, feeds)):
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(np.asarray(got[vi.name], np.float64) - want).max())
        assert err <= 1e-4 * scale, f"{vi.name}: max abs err {err:.2e}"
    assert totals["host_syncs"] == 1, totals
    assert totals["host_ops"] == 0, totals
    assert totals["launches"] <= MAX_LAUNCHES[name], totals
