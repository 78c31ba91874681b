"""Parsing, printing and well-formedness of tensor expressions."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from tilec.ir.texpr import (Access, AxisRef, Binary, Call, Num, TensorExpr, TexprError, Unary, parse_texpr, walk)

EXAMPLES = [
    "C[m, n] += A[m, k] * B[k, n]",
    "Y[n, f, h, w] += X[n, c, h * 2 + kh - 3, w * 2 + kw - 3] * W[f, c, kh, kw]",
    "Y[i, j] = select(j >= i, X[i, j], 0.0)",
    "Y[] += X[i]",
    "Y[n, c] max= X[n, c, h / 4, h % 4]",
    "Y[i] = -X[i] * 1e-05 + -inf",
    "Y[i] = !(X[i] < 0.0) || X[i] != X[i] && isnan(X[i])",
    "Y[i] = f16(X[i]) / (X[i] - 1.5) % 2.0",
    "Y[i] *= X[i, k] - -(X[i, k])",
    "Y[a, b] min= X[b, a, r]",
    "Y[i] = nan",
    "Y[i] = (X[i] < 1) == (X[i] > 2)",
]


@pytest.mark.parametrize("text", EXAMPLES)
def test_round_trip(text):
    e = parse_texpr(text)
    assert parse_texpr(str(e)) == e
    assert str(parse_texpr(str(e))) == str(e)


def test_canonical_spacing_and_parens():
    assert str(parse_texpr("C[m,n]+=A[m,k]*B[k,n]")) == "C[m, n] += A[m, k] * B[k, n]"
    assert str(parse_texpr("Y[i] = ((X[i] + 1)) * (2 - X[i])")) == "Y[i] = (X[i] + 1) * (2 - X[i])"
    assert str(parse_texpr("Y[i] = X[i] - (X[i] - 1)")) == "Y[i] = X[i] - (X[i] - 1)"
    assert str(parse_texpr("Y[i] = (X[i] - X[i]) - 1")) == "Y[i] = X[i] - X[i] - 1"
    assert str(parse_texpr("Y[i]  max=  X[i, j]")) == "Y[i] max= X[i, j]"


def test_derived_fields():
    e = parse_texpr("Y[n, f, h, w] += X[n, c, h + kh, w + kw] * W[f, c, kh, kw] + X[n, c, h, w]")
    assert e.output == "Y" and e.combiner == "sum"
    assert e.inputs == ("X", "W")
    assert e.reduce_axes == ("c", "kh", "kw")
    assert e.axes == ("n", "f", "h", "w", "c", "kh", "kw")
    assert [a.tensor for a in e.accesses] == ["X", "W", "X"]
    assert parse_texpr("Y[] += X[i]").out_axes == ()
    assert {parse_texpr(t).combiner for t in ("Y[i] = X[i]", "Y[i] max= X[i]", "Y[i] min= X[i]",
                                              "Y[i] *= X[i]")} == {None, "max", "min", "prod"}


def test_literals_and_nodes():
    e = parse_texpr("Y[i] = -1.0 + 2 + 1e-05 + inf + X[i] + -X[i] + i")
    nums = [n.value for n in walk(e.body) if isinstance(n, Num)]
    assert nums[:4] == [-1.0, 2, 1e-05, math.inf]
    assert isinstance(nums[1], int) and isinstance(nums[0], float)
    assert any(isinstance(n, Unary) and n.op == "-" for n in walk(e.body))
    assert Num(1) != Num(1.0) and Num(math.nan) == Num(math.nan)
    assert hash(parse_texpr("Y[i] = X[i]")) == hash(parse_texpr("Y[i]=X[i]"))
    # Positions are 0-based offsets and take no part in equality.
    acc = parse_texpr("Y[i] = 1.0 + X[i]").accesses[0]
    assert acc.pos == 13 and acc == Access("X", (AxisRef("i"),))


@pytest.mark.parametrize("text, column, words", [
    ("C[m, n] += A[m, k] * ", 21, "end"),
    ("C[m, n] += A[m, k] $ B", 19, "character"),
    ("C[m, n] = A[m, k]", 15, "'k' is not an output axis"),
    ("Y[i] = foo(X[i])", 7, "unknown function 'foo'"),
    ("Y[i] = exp(X[i], X[i])", 7, "takes 1 argument"),
    ("Y[i] = X[i * j]", 9, "multiply by a constant"),
    ("Y[i] = X[i / 0]", 13, "positive integer constant"),
    ("Y[i] = X[i + 0.5]", 13, "float"),
    ("Y[i] = X[exp(i)]", 9, "(quasi-)affine"),
    ("Y[i, i] = X[i]", 5, "appears twice"),
    ("Y[i] = Y[i]", 7, "also read"),
    ("Y[i] = X[i] + X[i, i]", 14, "indices here"),
    ("Y[i] = valid(i)", 7, "access"),
    ("Y[i] = X[i] < X[i] < X[i]", 19, "unexpected"),
    ("Y[X] = X[X]", 2, "axis and a tensor"),
])
def test_error_columns(text, column, words):
    with pytest.raises(TexprError) as info:
        parse_texpr(text)
    assert info.value.column == column, info.value.message
    assert words in info.value.message


def test_error_is_a_compile_error():
    from tilec.ir.diagnostics import CompileError
    with pytest.raises(CompileError):
        parse_texpr("Y[i] =")


# --- hypothesis: random well-formed trees print and parse back to themselves ----------------------------
_AXES = ["i", "j", "k"]
_index = st.recursive(
    st.one_of(st.sampled_from(_AXES).map(AxisRef), st.integers(0, 9).map(Num)),
    lambda sub: st.one_of(
        st.tuples(st.sampled_from("+-"), sub, sub).map(lambda t: Binary(*t)),
        st.tuples(sub, st.integers(1, 5)).map(lambda t: Binary("*", t[0], Num(t[1]))),
        st.tuples(st.sampled_from("/%"), sub, st.integers(1, 5)).map(lambda t: Binary(t[0], t[1], Num(t[2])))),
    max_leaves=4)
_access = st.tuples(st.sampled_from(["A", "B"]), st.lists(_index, min_size=2, max_size=2)).map(
    lambda t: Access(t[0], tuple(t[1])))
_num = st.one_of(st.integers(-5, 100), st.floats(allow_nan=True, allow_infinity=True)).map(Num)
_leaf = st.one_of(_access, _num, st.sampled_from(_AXES).map(AxisRef))
_BIN = ["||", "&&", "<", "<=", ">", ">=", "==", "!=", "+", "-", "*", "/", "%"]
_value = st.recursive(
    _leaf,
    lambda sub: st.one_of(
        st.tuples(st.sampled_from(_BIN), sub, sub).map(lambda t: Binary(*t)),
        st.tuples(st.sampled_from("-!"), sub).filter(lambda t: not isinstance(t[1], Num)).map(lambda t: Unary(*t)),
        st.tuples(st.sampled_from(["exp", "abs", "f16", "i32"]), sub).map(lambda t: Call(t[0], (t[1],))),
        st.tuples(sub, sub, sub).map(lambda t: Call("select", t)),
        st.lists(sub, min_size=2, max_size=2).map(lambda t: Call("max", tuple(t)))),
    max_leaves=10)


@settings(max_examples=150, deadline=None)
@given(_value, st.sampled_from([None, "sum", "max"]))
def test_hypothesis_round_trip(body, combiner):
    e = TensorExpr("Y", ("i",), combiner, body) if combiner else TensorExpr("Y", ("i", "j", "k"), None, body)
    text = str(e)
    again = parse_texpr(text)
    assert again == e, text
    assert str(again) == text
