"""The ONNX backend node tests (``onnx.backend.test.case.node``) through tilec.

Every case whose ops all have converters runs twice: on the imported graph IR, and after ``decompose``
(tensor expressions). Cases are excluded only through ``node_test_exclusions.txt``, with a reason.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import node_harness as H  # noqa: E402

_PARAMS = []
for _case in H.supported_cases():
    for _stage in H.STAGES:
        marks = []
        if _case.name in H.exclusions():
            marks.append(pytest.mark.skip(reason=H.exclusions()[_case.name]))
        _PARAMS.append(pytest.param(_case, _stage, id=f"{_case.name}[{_stage}]", marks=marks))


def _has_decompose() -> bool:
    return importlib.util.find_spec("tilec.passes.decompose") is not None


@pytest.mark.parametrize("case,stage", _PARAMS)
def test_node(case, stage, record_property):
    record_property("node_case", case.name)
    record_property("node_stage", stage)
    if stage == "decomposed" and not _has_decompose():
        pytest.skip("the decompose pass does not exist yet")
    try:
        H.run_case(case, stage)
    except H.NotDecomposed as e:
        pytest.skip(str(e))


def test_enough_cases_run():
    """The harness runs a meaningful share of the suite: 1,416 cases over 177 op types in December 2026
    (docs/node_tests.md); a converter lost or a case newly excluded shows here."""
    runnable = [c for c in H.supported_cases() if c.name not in H.exclusions()]
    assert len(runnable) >= 1400


def test_exclusions_name_real_cases():
    names = {c.name for c in H.all_cases()}
    stale = sorted(set(H.exclusions()) - names)
    assert not stale, f"node_test_exclusions.txt names cases that do not exist: {stale}"
