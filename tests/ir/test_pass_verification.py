"""A pass that leaves IR its verifier rejects is a tilec bug: exit 3 ("this is a bug in tilec"), never the
input error's exit 1; the message names the pass and the verifier's complaint, and ``TILEC_DEBUG=1`` shows the
traceback. A size limit the verifier finds after a pass stays the input's fault (exit 1)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from tilec.cli.main import cli
from tilec.ir.diagnostics import CompileError, PassVerificationError, SizeLimitError
from tilec.ir.io import read_ir
from tilec.ir.types import TensorType
from tilec.passes.canonicalize import Canonicalize
from tilec.passes.pipeline import PassManager

IR = """module {
  func.func @main(%x: tensor<4xf32>) -> (tensor<4xf32>) {
    %0 = "graph.relu"(%x) : (tensor<4xf32>) -> tensor<4xf32>
    return %0 : tensor<4xf32>
  }
}
"""


def _retype_relu(shape):
    """A canonicalize that gives the relu's result ``shape``: the pass under test breaks the IR."""
    def apply(self, module):
        relu = next(op for op in module.walk() if op.name == "graph.relu")
        relu.results[0].type = TensorType(shape, "f32")
    return apply


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.tir"
    path.write_text(IR)
    return str(path)


def _opt(model, env=None):
    return CliRunner().invoke(cli, ["opt", "--pass", "canonicalize", model], env=env or {})


def test_pass_that_breaks_the_ir_is_an_internal_error(model, monkeypatch):
    monkeypatch.setattr(Canonicalize, "apply", _retype_relu((5,)))
    r = _opt(model, {"TILEC_DEBUG": ""})
    assert r.exit_code == 3, r.output
    assert "internal error" in r.stderr and "this is a bug in tilec" in r.stderr
    assert "IR is invalid after pass 'canonicalize'" in r.stderr
    assert "'func.return' types do not match the signature of @main" in r.stderr   # the verifier's words
    assert "Traceback" not in r.stderr


def test_debug_shows_the_traceback(model, monkeypatch):
    monkeypatch.setattr(Canonicalize, "apply", _retype_relu((5,)))
    r = _opt(model, {"TILEC_DEBUG": "1"})
    assert r.exit_code == 3 and "Traceback" in r.stderr and "verify(module)" in r.stderr   # down to the verifier
    assert "PassVerificationError" in r.stderr


def test_the_error_keeps_the_verifiers_complaint(model, monkeypatch):
    monkeypatch.setattr(Canonicalize, "apply", _retype_relu((5,)))
    with pytest.raises(PassVerificationError) as info:
        PassManager([Canonicalize()]).run(read_ir(model))
    assert not isinstance(info.value, CompileError)
    assert info.value.pass_name == "canonicalize" and isinstance(info.value.cause, CompileError)
    assert "m.tir:4:5)" in str(info.value)   # where the verifier found it: the return


def test_size_limit_found_after_a_pass_stays_an_input_error(model, monkeypatch):
    # The pass leaves the IR as it was, but the limit drops under the module's 4-element tensors while it
    # runs: to the verifier after the pass that is a module grown past the limit (as a folded constant can).
    def shrink_limit(self, module):
        monkeypatch.setenv("TILEC_MAX_ELEMENTS", "2")
    monkeypatch.setattr(Canonicalize, "apply", shrink_limit)
    with pytest.raises(SizeLimitError):
        PassManager([Canonicalize()]).run(read_ir(model))
    monkeypatch.delenv("TILEC_MAX_ELEMENTS")
    r = _opt(model)
    assert r.exit_code == 1 and "more than tilec accepts" in r.stderr and "bug" not in r.stderr


def test_a_correct_pass_still_verifies(model):
    r = _opt(model)
    assert r.exit_code == 0 and "graph.relu" in r.stdout
