"""The welder pass' latency check prices each member op alone once (issue #19): an op that sits in several
candidate groups, or is checked again in a later search round, reuses its pricing (``Welder._alone_seconds``'
memo), and the build is the one a fresh pricing per call gives."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.driver import compile_model
from tilec.passes import welder

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "conv_block.onnx"


def _build(out: Path) -> dict:
    compile_model(str(SAMPLE), str(out))
    files = [out / "plan.json", out / "model.tir", *sorted((out / "kernels").iterdir())]
    return {p.name: p.read_bytes() for p in files}


def test_each_op_priced_once_and_build_unchanged(tmp_path):
    calls, lowered = [], []
    orig_alone, orig_lower = welder.Welder._alone_seconds, welder.lower_compute

    def alone(self, op, spec, tiles, memo, key):
        calls.append(id(op))
        return orig_alone(self, op, spec, tiles, memo, key)

    def lower(op, index):
        lowered.append((id(op), repr(op.attributes)))
        return orig_lower(op, index)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(welder.Welder, "_alone_seconds", alone)
        mp.setattr(welder, "lower_compute", lower)
        memoised = _build(tmp_path / "memo")
    # conv_block: 9 pricings asked for, of 6 distinct ops (one in several checked groups, or equal ops)
    assert len(lowered) < len(calls)
    assert len(lowered) == len(set(lowered))

    with pytest.MonkeyPatch.context() as mp:   # every pricing fresh: the memo never hits
        mp.setattr(welder.Welder, "_alone_seconds",
                   lambda self, op, spec, tiles, memo, key: orig_alone(self, op, spec, tiles, {}, key))
        fresh = _build(tmp_path / "fresh")
    assert memoised == fresh
