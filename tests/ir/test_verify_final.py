"""compile_model without verify-each (a normal compile): the verifier checks the import, the reference IR
and the final IR only, and a pass that breaks the IR is still named, by the same error a verify-each run
gives (the compile is run again verifying after every pass)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec import driver
from tilec.ir.core import main_function
from tilec.ir.diagnostics import CompileError, PassVerificationError
from tilec.ir.types import TensorType
from tilec.passes.cse import CSE
from tilec.passes.roller import Roller

MLP = str(Path(__file__).resolve().parents[2] / "samples" / "mlp.onnx")


def _count_verifies(monkeypatch) -> list:
    calls = []
    real = driver.PassManager.run.__globals__["verify"]

    def verify(module, *args):
        calls.append(module.attributes.get("tilec.stage"))
        return real(module, *args)
    monkeypatch.setattr("tilec.passes.pipeline.verify", verify)
    monkeypatch.setattr("tilec.ir.verifier.verify", verify)
    return calls


def _break_relu_type(self, module):
    """A cse that gives the last op's result (before the return) a wrong shape: the IR does not verify."""
    op = main_function(module).body.ops[-2]
    op.results[0].type = TensorType((5,), "f32")


def test_normal_compile_verifies_import_reference_and_final_ir(monkeypatch, tmp_path):
    calls = _count_verifies(monkeypatch)
    driver.compile_model(MLP, str(tmp_path / "b"), verify_each=False)
    # the importer's and the driver's (stage None), before lower-cuda (after welder), the final IR
    assert calls == [None, None, "welder", "grinder"], calls
    calls.clear()
    driver.compile_model(MLP, str(tmp_path / "c"), verify_each=True)
    assert len(calls) == 2 + len(driver.pipeline_spec("default").split(","))
    assert (tmp_path / "b" / "model.tir").read_bytes() == (tmp_path / "c" / "model.tir").read_bytes()


def test_a_pass_that_breaks_the_ir_is_named_without_verify_each(monkeypatch, tmp_path):
    monkeypatch.setattr(CSE, "apply", _break_relu_type)
    with pytest.raises(PassVerificationError) as info:
        driver.compile_model(MLP, str(tmp_path / "b"), verify_each=False)
    assert info.value.pass_name == "cse" and isinstance(info.value.cause, CompileError)
    assert not (tmp_path / "b").exists()


def test_a_later_pass_tripping_over_broken_ir_still_names_the_pass_that_broke_it(monkeypatch, tmp_path):
    monkeypatch.setattr(CSE, "apply", _break_relu_type)

    def trips(self, module):
        raise CompileError("roller cannot read this IR")   # what a later pass might say of broken IR
    monkeypatch.setattr(Roller, "apply", trips)
    with pytest.raises(PassVerificationError) as info:
        driver.compile_model(MLP, str(tmp_path / "b"), verify_each=False)
    assert info.value.pass_name == "cse"


def test_an_error_of_a_pass_on_good_ir_is_reported_as_it_is(monkeypatch, tmp_path):
    def fails(self, module):
        raise CompileError("roller: unsupported")
    monkeypatch.setattr(Roller, "apply", fails)
    for each in (False, True):
        with pytest.raises(CompileError, match="roller: unsupported"):
            driver.compile_model(MLP, str(tmp_path / "b"), verify_each=each)
