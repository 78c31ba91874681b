"""Random f32 graphs with a MatMul / Gemm / Conv compiled with ``--precision fp16`` and ``bf16``
(``tilec.testing.pipeline_fuzz``'s precision cases, ``scripts/fuzz.py --precision-graphs``): the emulator
matches onnxruntime and the numpy reference at the format's tolerance; no mismatch, crash or diagnostic."""
from __future__ import annotations

import pytest

from tilec.testing.pipeline_fuzz import PRECISION_TOL, make_case, run_case

FIRST = 2_000_000   # scripts/fuzz.py's PRECISION_SEEDS: the campaign's own graphs


def test_a_precision_case_has_a_contraction_and_its_mode():
    for k in range(5):
        case = make_case(FIRST + k, precision="bf16")
        ops = {n.op_type for n in case.graph.model.graph.node}
        assert ops & {"MatMul", "Gemm", "Conv"} and case.dtype == "f32" and case.tolerance == PRECISION_TOL["bf16"]
        assert "--precision bf16" in case.name


@pytest.mark.parametrize("mode", ["fp16", "bf16"])
def test_fuzz_fast(mode):
    case = make_case(FIRST + 2, precision=mode)   # welder pipeline, a MatMul
    outcome = run_case(case)
    assert outcome.kind == "ok", (case.name, outcome.detail)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp16", "bf16"])
@pytest.mark.parametrize("k", range(20))
def test_fuzz(mode, k):
    case = make_case(FIRST + k, precision=mode)
    outcome = run_case(case)
    assert outcome.kind == "ok", (case.name, outcome.detail)
