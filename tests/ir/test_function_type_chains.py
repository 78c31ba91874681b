"""An unbracketed chain of function types, ``() -> () -> () -> ...``, nests one function type per ``->``
without holding a bracket open: thousands of links used to end in RecursionError after seconds of parsing
(100,000 links: 8 s). The lexer counts the links as nesting levels, beside the open brackets, and stops at
the first ``->`` past the limit with a diagnostic at it."""
import sys

import pytest

from tilec.ir import CompileError, parse_module
from tilec.ir.types import FunctionType


def _attr(value: str) -> str:
    return 'module {\n  "t.op"() {v = ' + value + '} : () -> ()\n}\n'


def _error(text: str) -> CompileError:
    with pytest.raises(CompileError) as info:
        parse_module(text, "chain.tir")
    return info.value


def test_a_chain_past_the_limit_stops_at_its_first_arrow_past_it():
    # 100,000 links and a syntax error at the end: the parse stops at the link that makes level limit + 1
    text = _attr(" -> ".join(["()"] * 100000) + " }}}")
    d = _error(text).diagnostic
    limit = sys.getrecursionlimit()
    assert d.message == (f"input nests too deeply (more than {limit} levels: 2 open, and {limit - 1} function "
                         "types chained by '->' without brackets)")
    line = text.splitlines()[d.line - 1]
    assert d.line == 2 and line[d.col - 1:d.col + 1] == "->"
    assert line[:d.col - 1].count("->") == limit - 2   # two levels open (the module and the attribute dict)


def test_a_chain_in_an_op_signature_is_counted_too():
    d = _error('module {\n  "t.op"() : ' + " -> ".join(["(tensor<f32>)"] * 5000) + " -> tensor<f32>\n}\n").diagnostic
    assert d.line == 2 and "function types chained by '->'" in d.message


def test_a_chain_under_the_limit_but_too_deep_to_build_is_a_diagnostic():
    e = _error(_attr(" -> ".join(["()"] * (sys.getrecursionlimit() - 10))))
    assert e.diagnostic.message == "input nests too deeply"


def test_a_short_chain_nests_one_function_type_per_arrow():
    m = parse_module(_attr(" -> ".join(["(tensor<f32>)"] * 50) + " -> tensor<2xi8>"), "chain.tir")
    t, depth = m.body.ops[0].attributes["v"], 0
    while isinstance(t, FunctionType):
        assert [str(x) for x in t.inputs] == ["tensor<f32>"]
        (t,), depth = t.results, depth + 1
    assert (str(t), depth) == ("tensor<2xi8>", 50)


@pytest.mark.parametrize("item", ["(tensor<f32>) -> tensor<f32>", "() -> ()", "(tensor<f32>) -> (tensor<f32>)"])
def test_many_function_types_side_by_side_are_no_chain(item):
    """A list, and ops one after another, each hold one ``->``: no count carries over between them (1,200 of
    them would pass the limit if it did)."""
    m = parse_module(_attr("[" + ", ".join([item] * 1200) + "]"), "list.tir")
    assert len(m.body.ops[0].attributes["v"]) == 1200
    ops = "\n".join(['  "t.op"() {v = ' + item + '} : () -> ()'] * 1200)
    assert len(parse_module("module {\n" + ops + "\n}\n", "ops.tir").body.ops) == 1200
