"""Kernel-expression trees (``tilec.ir.kexpr``): the parser and the one renderer agree on every form the
lowerings write, hand-built trees get the parentheses C needs, affine detection and simplification, and the
render-time replacements (the virtual block index)."""
import pytest

from tilec.backend.lower.builder import KernelBuilder, group, linear_index, linearize, thread_index, unflatten
from tilec.ir.kexpr import (Binary, BlockIdx, Call, Cast, Const, Group, Index, KExprSyntaxError, Member, Select,
                            Special, ThreadIdx, Unary, Var, affine, parse, render, simplify)

ROUND_TRIP = [
    "(long long)blockIdx.x * 256 + threadIdx.x",
    "k_red[threadIdx.x >> 5]",
    "threadIdx.x < 8 ? k_red[threadIdx.x] : -__int_as_float(0x7f800000)",
    "(k_e / 64) % 4",
    "k_g0 >= 0 && k_g0 < 56 && k_g1 >= 0 && k_g1 < 56",
    "tl_cluster_map(&k_s0[0][0], (int)tl_cluster_rank() + k_hs)[((k_d0 - k_hs * 2)) * 17 + k_d1]",
    "((float)((x) > 0.0f) - (float)((x) < 0.0f))",
    "make_float4(0.0f, 0.0f, 0.0f, 0.0f)",
    "k_v0.x * 1e-05f + 2.5",
    "!(k_share_all || (k_d1 >= 1 && k_d1 < 9))",
    "a - (b - c)",
    "c ? a : b ? d : e",
    "__shfl_xor_sync(0xffffffffu, k_acc, k_o)",
    "256LL",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_parse_then_render_gives_the_text_back(text):
    assert render(parse(text)) == text


def test_parse_builds_the_expected_tree():
    e = parse("(long long)blockIdx.x * 256 + threadIdx.x")
    assert e == Binary("+", Binary("*", Cast("long long", BlockIdx()), Const(256)), ThreadIdx())
    assert parse("k_s0[i][j]") == Index(Index(Var("k_s0"), Var("i")), Var("j"))
    assert parse("k_v0.y") == Member(Var("k_v0"), "y")
    assert parse("gridDim.y") == Special("gridDim", "y")
    assert parse("a ? b : c") == Select(Var("a"), Var("b"), Var("c"))
    assert parse("(a)") == Group(Var("a"))
    assert parse("f()") == Call("f", ())
    # * binds tighter than +, and - is left-associative
    assert parse("a + b * c") == Binary("+", Var("a"), Binary("*", Var("b"), Var("c")))
    assert parse("a - b - c") == Binary("-", Binary("-", Var("a"), Var("b")), Var("c"))


@pytest.mark.parametrize("bad", ["a +", "(a", "a b", "a $ b", "f(a,", "x[1"])
def test_bad_text_is_a_syntax_error(bad):
    with pytest.raises(KExprSyntaxError):
        parse(bad)


def test_hand_built_trees_get_the_parentheses_c_needs():
    a, b, c = Var("a"), Var("b"), Var("c")
    assert render(Binary("*", Binary("+", a, b), c)) == "(a + b) * c"
    assert render(Binary("-", a, Binary("-", b, c))) == "a - (b - c)"
    assert render(Binary("-", Binary("-", a, b), c)) == "a - b - c"
    assert render(Unary("-", Binary("+", a, b))) == "-(a + b)"
    assert render(Cast("long long", Binary("+", a, b))) == "(long long)(a + b)"
    assert render(Index(Binary("+", a, b), c)) == "(a + b)[c]"
    assert render(Select(Select(a, b, c), b, c)) == "(a ? b : c) ? b : c"
    assert render((BlockIdx() * 4 + ThreadIdx())) == "blockIdx.x * 4 + threadIdx.x"


def test_replace_renders_the_virtual_block_index():
    e = parse("(long long)blockIdx.x * 256 + threadIdx.x")
    assert render(e, {BlockIdx(): Var("k_vb")}) == "(long long)k_vb * 256 + threadIdx.x"
    assert render(e, {BlockIdx(): Var("k_vb"), ThreadIdx(): Var("k_tid")}) == "(long long)k_vb * 256 + k_tid"
    # blockIdx.y is another register: untouched
    assert render(parse("blockIdx.y + blockIdx.x"), {BlockIdx(): Var("k_vb")}) == "blockIdx.y + k_vb"
    # a replacement that binds less tightly is parenthesised where it lands
    assert render(parse("blockIdx.x * 2"), {BlockIdx(): Binary("+", Var("v"), Const(1))}) == "(v + 1) * 2"


def test_affine_detection():
    coefs, const = affine(parse("(long long)blockIdx.x * 256 + threadIdx.x - 3"))
    assert coefs == {BlockIdx(): 256, ThreadIdx(): 1} and const == -3
    assert affine(parse("2 * (k_a - k_b) + k_b + 7")) == ({Var("k_a"): 2, Var("k_b"): -1}, 7)
    assert affine(parse("-(k_a)")) == ({Var("k_a"): -1}, 0)
    assert affine(parse("k_a - k_a")) == ({}, 0)
    for not_affine in ("k_a * k_b", "k_a / 2", "k_a % 4", "s[k_a]", "f(k_a)", "(float)k_a", "k_a << 1"):
        assert affine(parse(not_affine)) is None, not_affine


def test_simplify():
    assert render(simplify(parse("(k_a + 0) * 1 + 2 * 3"))) == "k_a + 6"
    assert render(simplify(parse("k_b * 4 + k_a - k_b * 4"))) == "k_a"
    assert render(simplify(parse("3 - k_a * 2"))) == "-2 * k_a + 3"
    assert render(simplify(parse("(k_a / 4) * 1 + 0"))) == "(k_a / 4)"
    assert render(simplify(parse("f(2 + 3, (x))"))) == "f(5, x)"
    assert render(simplify(parse("7 / 2 + k_t % (1 * 8)"))) == "3 + k_t % 8"
    assert render(simplify(parse("k_a * 0 + s[k_i]"))) == "s[k_i]"
    # a cast fixes the width the arithmetic runs in: kept, not folded into an affine form
    assert render(simplify(parse("(long long)blockIdx.x * 4 + 0"))) == "(long long)blockIdx.x * 4"


def test_builder_helpers_build_trees_with_the_old_spelling():
    assert render(linear_index(["k_a", "0", "k_b + 1", BlockIdx()], [2, 3, 4, 5])) == \
        "k_a * 60 + (k_b + 1) * 5 + blockIdx.x"
    assert linearize(["0", "0"], [2, 2]) == "0"
    assert render(group("-1")) == "(-1)" and render(group("k_v0.x")) == "k_v0.x"
    assert render(thread_index(256, "long long")) == "(long long)blockIdx.x * 256 + threadIdx.x"
    assert render(thread_index(256, None, 32)) == "blockIdx.x * 8 + (threadIdx.x >> 5)"
    kb = KernelBuilder()
    unflatten(kb, "k_t", ["k_a", "k_b", "k_c"], [2, 1, 5])
    assert [op.attributes["value"] for op in kb.body.ops] == ["k_t / 5", "0", "k_t % 5"]
    kb = KernelBuilder()
    with kb.cond(Binary("<", Var("k_t"), Const(10))):
        kb.store("y", Binary("+", Var("k_t"), Const(1)), "1.0f")
    cond = kb.body.ops[0]
    assert cond.attributes["cond"] == "k_t < 10"   # stored as its C text: the .tir format is unchanged
    assert cond.regions[0].block.ops[0].attributes["index"] == "k_t + 1"
