"""The ``utask`` verifier hook (``ir/dialects/utask.py``): a Grinder device kernel whose grid could not be
co-resident on its target (its grid barriers would never complete) does not verify, as an over-resident
rProgram does not (``rprog.program``). A pass that emitted one would be an internal error (exit 3)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.cost import resident_blocks
from tilec.analysis.rammer.shared import shared_bytes
from tilec.driver import compile_model
from tilec.ir.attributes import SymbolRef
from tilec.ir.core import lookup_symbol
from tilec.ir.diagnostics import CompileError
from tilec.ir.io import read_ir
from tilec.ir.verifier import verify

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "control" / "lstm_loop.onnx"


@pytest.fixture(scope="module")
def tir(tmp_path_factory) -> str:
    build = tmp_path_factory.mktemp("lstm") / "b"
    compile_model(str(SAMPLE), str(build))   # the default pipeline runs grinder
    return str(build / "model.tir")


def _device_kernel(module):
    return next(op for op in module.body.ops if op.attributes.get("kind") == "device_loop")


def test_grinders_own_kernel_verifies_and_is_within_the_limit(tir):
    module = read_ir(tir)
    verify(module)
    k = _device_kernel(module)
    spec = get_arch(k.attributes["control"]["arch"])
    smem = sum(shared_bytes(lookup_symbol(module, s.attributes["kernel"].name)) for s in k.body.ops)
    per_sm = k.attributes["control"]["blocks_per_sm"]
    assert k.attributes["grid"][0] == per_sm * spec.num_sms
    assert 1 <= per_sm <= resident_blocks(spec, k.attributes["block"][0], smem)


def test_more_blocks_per_sm_than_an_sm_holds_does_not_verify(tir):
    module = read_ir(tir)
    k = _device_kernel(module)
    spec = get_arch(k.attributes["control"]["arch"])
    over = resident_blocks(spec, k.attributes["block"][0], 0) + 1
    k.attributes["control"] = {**k.attributes["control"], "blocks_per_sm": over}
    k.attributes["grid"] = [over * spec.num_sms, 1, 1]
    with pytest.raises(CompileError, match=f"needs {over * spec.num_sms} resident blocks at {over} per SM"):
        verify(module)


def test_a_grid_beyond_its_blocks_per_sm_does_not_verify(tir):
    module = read_ir(tir)
    k = _device_kernel(module)
    k.attributes["grid"] = [k.attributes["grid"][0] + 1, 1, 1]
    with pytest.raises(CompileError, match="resident-block limit, so its grid barriers could deadlock"):
        verify(module)


def test_a_stage_naming_no_kernel_does_not_verify(tir):
    module = read_ir(tir)
    stage = next(iter(_device_kernel(module).body.ops))
    stage.attributes["kernel"] = SymbolRef("no_such_kernel")
    with pytest.raises(CompileError, match="'utask.stage' refers to unknown kernel"):
        verify(module)


@pytest.mark.parametrize("control", [{}, {"arch": "h200"}, {"arch": "h200", "blocks_per_sm": 0},
                                     {"arch": 7, "blocks_per_sm": 1}, {"arch": "h200", "blocks_per_sm": "2"}])
def test_a_device_kernel_without_its_residency_does_not_verify(tir, control):
    module = read_ir(tir)
    k = _device_kernel(module)
    k.attributes["control"] = {**{c: v for c, v in k.attributes["control"].items()
                                  if c not in ("arch", "blocks_per_sm")}, **control}
    with pytest.raises(CompileError, match="needs control.arch"):
        verify(module)
