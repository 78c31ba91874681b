"""Malformed IR gives file:line:col diagnostics with the source line and a caret."""
import pytest

from tilec.ir import CompileError, parse_module, verify


def error_of(text: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        m = parse_module(text, "bad.tir")
        verify(m, text)
    return info.value


def test_syntax_error_points_at_token():
    e = error_of('module {\n  func.func @main() -> () {\n    %0 = "t.op"( : () -> ()\n  }\n}\n')
    d = e.diagnostic
    assert (d.file, d.line) == ("bad.tir", 3)
    rendered = e.render()
    assert rendered.startswith("bad.tir:3:")
    assert ": error: unexpected" in rendered
    lines = rendered.splitlines()
    assert lines[1] == '    %0 = "t.op"( : () -> ()'
    assert lines[2].endswith("^") and len(lines[2]) == d.col


def test_undefined_value():
    e = error_of('module {\n  func.func @main() -> () {\n    "t.op"(%nope) : (tensor<f32>) -> ()\n    return\n  }\n}\n')
    assert "undefined value '%nope'" in e.render()
    assert e.diagnostic.line == 3 and e.diagnostic.col == 12


def test_redefinition():
    e = error_of('module {\n  func.func @main(%x: tensor<f32>) -> () {\n'
                 '    %x = "tile.const"() {value = dense<1.0> : tensor<f32>} : () -> tensor<f32>\n    return\n  }\n}\n')
    assert "redefinition" in e.diagnostic.message and e.diagnostic.line == 3


def test_unknown_op_is_rejected_by_verifier():
    e = error_of('module {\n  func.func @main() -> () {\n    "nope.op"() : () -> ()\n    return\n  }\n}\n')
    assert "not a known op" in e.diagnostic.message and e.diagnostic.line == 3


def test_wrong_return_type():
    e = error_of('module {\n  func.func @main(%x: tensor<2xf32>) -> (tensor<3xf32>) {\n    return %x : tensor<2xf32>\n  }\n}\n')
    assert "do not match" in e.diagnostic.message


def test_bad_attribute_type():
    e = error_of('module {\n  func.func @main() -> () {\n    %0 = "tile.const"() {value = 3} : () -> tensor<f32>\n    return\n  }\n}\n')
    assert "attribute 'value'" in e.diagnostic.message


def test_const_type_mismatch():
    e = error_of('module {\n  func.func @main() -> () {\n'
                 '    %0 = "tile.const"() {value = dense<[1.0, 2.0]> : tensor<2xf32>} : () -> tensor<3xf32>\n    return\n  }\n}\n')
    assert "tensor<3xf32>" in e.diagnostic.message


def test_missing_weight():
    e = error_of('module {\n  func.func @main() -> () {\n    %0 = "tile.const"() {value = @w9} : () -> tensor<3xf32>\n    return\n  }\n}\n')
    assert "unknown weight @w9" in e.diagnostic.message


def test_dense_shape_mismatch():
    e = error_of('module {\n  "t.op"() {v = dense<[1.0, 2.0]> : tensor<3xf32>} : () -> ()\n}\n')
    assert "shape" in e.diagnostic.message and e.diagnostic.line == 2


def test_unexpected_eof():
    e = error_of('module {\n  func.func @main() -> () {\n')
    assert "end of input" in e.diagnostic.message


def test_weights_sidecar_cannot_escape(tmp_path):
    from tilec.ir.io import read_ir
    p = tmp_path / "m.tir"
    p.write_text('module @m attributes {tilec.weights = "../../etc/passwd"} {\n  tile.weight @w : tensor<2xf32>\n}\n')
    with pytest.raises(CompileError) as info:
        read_ir(str(p))
    assert "plain file name" in info.value.diagnostic.message


def _func(body: str) -> str:
    return 'module {\n  func.func @main() -> () {\n    ' + body + '\n    return\n  }\n}\n'


def test_too_deep_nesting_stops_at_the_first_bracket_past_the_limit():
    # scripts/fuzz.py's deep mutants: 20,000 nested regions, then a syntax error 500,000 columns on. The
    # builder could never build it (a frame per bracket level), so the parse stops at bracket limit + 1
    # instead of reading the whole megabyte first.
    import sys
    deep = '"t.r"() ({ ' * 20000 + "}) : () -> () " * 20000
    e = error_of(_func(deep + "{"))
    d = e.diagnostic
    assert d.message == f"input nests too deeply (more than {sys.getrecursionlimit()} brackets open)"
    # reported at the bracket that opens level limit + 1 (module, func, then '(' ')' '(' '{' per level)
    line = _func(deep + "{").splitlines()[2]
    opened = line[:d.col]
    assert line[d.col - 1] in "({["
    assert sum(opened.count(c) for c in "({[") - sum(opened.count(c) for c in ")}]") + 2 == sys.getrecursionlimit() + 1


def test_syntax_errors_before_the_depth_limit_are_reported_as_before():
    e = error_of(_func('"t.x"() {a = [1, 2 3' + "[" * 5000 + "}"))
    assert e.diagnostic.message.startswith("unexpected '3'") and e.diagnostic.col == 24


def test_deep_nesting_the_builder_can_build_still_parses():
    m = parse_module(_func('"t.x"() {a = ' + "[" * 300 + "1" + "]" * 300 + "} : () -> ()"), "deep.tir")
    (op,) = [o for o in m.walk() if o.name == "t.x"]
    value, depth = op.attributes["a"], 0
    while isinstance(value, list):
        value, depth = value[0], depth + 1
    assert (value, depth) == (1, 300)
