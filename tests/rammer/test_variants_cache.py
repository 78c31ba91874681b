"""Rammer's variants share Roller's candidates per problem (``variants(rtiles=...)``): the same Variants as
constructing them kernel by kernel, with one construction per distinct problem."""
from __future__ import annotations

from pathlib import Path

from tilec.analysis.hardware import get_arch
from tilec.backend.lower import variants as variants_module
from tilec.backend.lower.variants import variants
from tilec.backend.cstyle import render_body
from tilec.driver import pipeline_spec
from tilec.frontend.importer import import_onnx
from tilec.ir.printer import print_module
from tilec.passes.pipeline import parse_pipeline
from tilec.passes.rammer import Rammer

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "parallel" / "lstm_cell.onnx"


def _kernels():
    module = import_onnx(str(SAMPLE), {})
    passes = parse_pipeline(pipeline_spec("default"))
    for p in passes[:[p.name for p in passes].index("rammer")]:
        p.apply(module)
    return [op for op in module.body.ops if op.name == "kernel.func"]


def _seen(found: list) -> list:
    return [(v.index, v.rtile, v.kernel.attributes.get("origin"), render_body(v.kernel)) for v in found]


def test_shared_candidates_give_the_same_variants(monkeypatch):
    spec, calls, kernels = get_arch("h200"), [], _kernels()
    construct = variants_module.construct_rtiles

    def counted(problem, spec, topk=8):
        calls.append(problem)
        return construct(problem, spec, topk)
    monkeypatch.setattr(variants_module, "construct_rtiles", counted)
    alone = [_seen(variants(k, spec)) for k in kernels]
    constructed_alone = len(calls)
    shared: dict = {}
    together = [_seen(variants(k, spec, rtiles=shared)) for k in kernels]
    assert together == alone and any(alone)
    # eight gate GEMMs of one shape (four on x, four on h): one construction instead of eight
    assert len(calls) - constructed_alone == len(shared) == 1 and constructed_alone == 8



def _printed(op) -> str:
    return print_module(op, print_locs=True)


def test_equal_kernels_reuse_measured_variants():
    """``Rammer._alternatives`` with one ``measured`` memo over all kernels (a hit for every kernel equal to
    an earlier one but for name and location) gives the Members and, once built, the very kernels (text and
    locations) that measuring each kernel alone gives."""
    spec, kernels = get_arch("h200"), _kernels()
    alone = [Rammer._alternatives(k, spec, {}, {}) for k in kernels]
    measured: dict = {}
    shared = [Rammer._alternatives(k, spec, {}, measured) for k in kernels]
    hits = sum(1 for found in shared for v, _ in found if v.kernel is None)
    assert hits and sum(map(len, alone)) > len(measured)
    for a, s, k in zip(alone, shared, kernels):
        assert [alt for _, alt in a] == [alt for _, alt in s]
        assert [(v.index, v.rtile, _printed(v.built())) for v, _ in a] == \
            [(v.index, v.rtile, _printed(v.built())) for v, _ in s]
        assert all(v.of is k for v, _ in s)
    # the built kernels are distinct objects per kernel: each can join the module under its own name
    built = [id(v.built()) for found in shared for v, _ in found]
    assert len(built) == len(set(built))
