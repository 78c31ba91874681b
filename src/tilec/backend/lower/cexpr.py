"""Tensor-expression AST → C expression text, and affine analysis of index expressions.

The body of a ``tile.compute`` is rendered with every input access replaced by a name the kernel loaded it
into (``access_name``) and every axis by its C variable (``axis_name``). Values are computed in the
output's compute type (f32 for f16/bf16 outputs): fp32 accumulation.
"""
from __future__ import annotations

import math

from ...ir.diagnostics import CompileError
from ...ir.kexpr.affine import combine_affine


def _kind(node) -> str:
    return type(node).__name__


# Function name -> (f32 spelling, f64 spelling); {0}, {1}, ... are the rendered arguments.
FLOAT_CALLS = {
    "exp": ("expf({0})", "exp({0})"), "log": ("logf({0})", "log({0})"), "sqrt": ("sqrtf({0})", "sqrt({0})"),
    "rsqrt": ("rsqrtf({0})", "(1.0 / sqrt({0}))"), "abs": ("fabsf({0})", "fabs({0})"),
    "tanh": ("tanhf({0})", "tanh({0})"), "erf": ("erff({0})", "erf({0})"), "sin": ("sinf({0})", "sin({0})"),
    "cos": ("cosf({0})", "cos({0})"), "floor": ("floorf({0})", "floor({0})"), "ceil": ("ceilf({0})", "ceil({0})"),
    "round": ("rintf({0})", "rint({0})"), "pow": ("powf({0}, {1})", "pow({0}, {1})"),
    "max": ("fmaxf({0}, {1})", "fmax({0}, {1})"), "min": ("fminf({0}, {1})", "fmin({0}, {1})"),
    "sigmoid": ("(1.0f / (1.0f + expf(-({0}))))", "(1.0 / (1.0 + exp(-({0}))))"),
    "relu": ("fmaxf({0}, 0.0f)", "fmax({0}, 0.0)"), "neg": ("(-({0}))", "(-({0}))"),
    "recip": ("(1.0f / ({0}))", "(1.0 / ({0}))"), "tan": ("tanf({0})", "tan({0})"),
    "atan": ("atanf({0})", "atan({0})"), "sign": ("(float)(({0}) > 0.0f) - (float)(({0}) < 0.0f)",
                                                  "(double)(({0}) > 0.0) - (double)(({0}) < 0.0)"),
    "isnan": ("isnan({0})", "isnan({0})"), "isinf": ("isinf({0})", "isinf({0})"),
    "sinh": ("sinhf({0})", "sinh({0})"), "cosh": ("coshf({0})", "cosh({0})"),
    "asin": ("asinf({0})", "asin({0})"), "acos": ("acosf({0})", "acos({0})"),
    "log1p": ("log1pf({0})", "log1p({0})"), "expm1": ("expm1f({0})", "expm1({0})"),
    "trunc": ("truncf({0})", "trunc({0})"), "fmod": ("fmodf({0}, {1})", "fmod({0}, {1})"),
    "bits_f32": ("__int_as_float((int)({0}))", "(double)__int_as_float((int)({0}))"),
    "bits_f64": ("(float)__longlong_as_double((long long)({0}))", "__longlong_as_double((long long)({0}))"),
    # Integer-typed C expressions even where the kernel computes in floats (a float input): no float
    # temporary holds them, the store takes the int.
    "bits_i32": ("__float_as_int((float)({0}))", "__float_as_int((float)({0}))"),
    "bits_i64": ("__double_as_longlong((double)({0}))", "__double_as_longlong((double)({0}))"),
}
INT_CALLS = {
    "abs": "(({0}) < 0 ? -({0}) : ({0}))", "max": "(({0}) > ({1}) ? ({0}) : ({1}))",
    "min": "(({0}) < ({1}) ? ({0}) : ({1}))", "neg": "(-({0}))", "relu": "(({0}) > 0 ? ({0}) : 0)",
    "sign": "((({0}) > 0) - (({0}) < 0))", "pow": "tl_ipow({0}, {1})",   # tl_ipow: cuda_prelude.h
    "bitand": "(({0}) & ({1}))", "bitor": "(({0}) | ({1}))", "bitxor": "(({0}) ^ ({1}))", "bitnot": "(~({0}))",
    # shl shifts the unsigned bits (a negative value's left shift is undefined in C); the store wraps it.
    "shl": "((long long)((unsigned long long)({0}) << ({1})))", "shr": "(({0}) >> ({1}))",
    "bits_i32": "__float_as_int((float)({0}))", "bits_i64": "__double_as_longlong((double)({0}))",
}
CAST_TYPES = {"f32": "float", "f64": "double", "f16": "float", "bf16": "float", "i64": "long long",
              "i32": "int", "i8": "signed char", "u8": "unsigned char", "bool": "bool"}
BINARY_C = {"+": "+", "-": "-", "*": "*", "/": "/", "%": "%", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
            "==": "==", "!=": "!=", "&&": "&&", "||": "||", "and": "&&", "or": "||", "^": "^", "&": "&",
            "|": "|"}


class CRenderer:
    """Renders one expression body; ``access_name(access) -> str`` and ``axis_name(axis) -> str``."""

    def __init__(self, access_name, axis_name, dtype: str):
        self.access_name = access_name
        self.axis_name = axis_name
        self.dtype = dtype               # the compute type: f32, f64 or an integer/bool type
        self.is_float = dtype in ("f32", "f64")

    def num(self, value) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, int) and not self.is_float:
            return f"{value}LL" if abs(value) >= 2 ** 31 else str(value)
        v = float(value)
        if math.isnan(v):
            return "(0.0f / 0.0f)" if self.dtype != "f64" else "(0.0 / 0.0)"
        if math.isinf(v):
            text = "__int_as_float(0x7f800000)" if self.dtype != "f64" else "__longlong_as_double(0x7ff0000000000000LL)"
            return text if v > 0 else f"(-{text})"
        if not self.is_float:
            return repr(v)
        text = repr(v)
        return text if self.dtype == "f64" else text + "f"

    def __call__(self, node) -> str:
        kind = _kind(node)
        if kind == "Num":
            return self.num(node.value)
        if kind == "AxisRef":
            return self.axis_name(node.name)
        if kind == "Access":
            return self.access_name(node)
        if kind == "Unary":
            op = {"not": "!", "neg": "-"}.get(node.op, node.op)
            return f"({op}{self(node.operand)})"
        if kind == "Binary":
            return self.binary(node)
        if kind == "Call":
            return self.call(node)
        raise CompileError(f"lower-cuda: cannot render a '{kind}' expression node")

    def binary(self, node) -> str:
        a, b = self(node.lhs), self(node.rhs)
        if node.op == "**":
            return self.call_named("pow", [a, b])
        if node.op == "%" and self.is_float:
            return self.call_named("fmod", [a, b])
        if node.op == "//":
            return f"floorf({a} / {b})" if self.is_float else f"({a} / {b})"
        op = BINARY_C.get(node.op)
        if op is None:
            raise CompileError(f"lower-cuda: unsupported operator '{node.op}'")
        return f"({a} {op} {b})"

    def call(self, node) -> str:
        fn = node.fn
        if fn in ("where", "select"):
            c, a, b = (self(x) for x in node.args)
            return f"(({c}) ? ({a}) : ({b}))"
        if fn in CAST_TYPES:
            return f"(({CAST_TYPES[fn]})({self(node.args[0])}))"
        return self.call_named(fn, [self(x) for x in node.args])

    def call_named(self, fn: str, args) -> str:
        if self.is_float or self.dtype in ("f16", "bf16"):
            spell = FLOAT_CALLS.get(fn)
            text = spell and spell[1 if self.dtype == "f64" else 0]
        else:
            text = INT_CALLS.get(fn)
        if text is None:
            raise CompileError(f"lower-cuda: no C spelling for function '{fn}' on {self.dtype}")
        return text.format(*args)


def affine(node):
    """``({axis: coef}, const)`` when ``node`` (an index expression) is affine in the axes, else None."""
    kind = _kind(node)
    if kind == "Num":
        v = node.value
        return ({}, int(v)) if float(v).is_integer() else None
    if kind == "AxisRef":
        return ({node.name: 1}, 0)
    if kind == "Unary" and node.op in ("-", "neg"):
        inner = affine(node.operand)
        return None if inner is None else ({k: -c for k, c in inner[0].items()}, -inner[1])
    if kind != "Binary" or node.op not in ("+", "-", "*"):
        return None
    return combine_affine(node.op, affine(node.lhs), affine(node.rhs))


def affine_text(coefs: dict, const: int, axis_name) -> str:
    """C text of ``const + sum(coef * axis)``."""
    terms = []
    for ax, c in coefs.items():
        name = axis_name(ax)
        terms.append(name if c == 1 else f"{c} * {name}" if c > 0 else f"-{-c} * {name}" if c != -1 else f"-{name}")
    text = " + ".join(terms).replace("+ -", "- ")
    if const or not terms:
        text = f"{text} + {const}" if terms and const > 0 else f"{text} - {-const}" if terms else str(const)
    return text


def index_range(node, extents: dict):
    """``(lo, hi)`` inclusive bounds of an affine index over the axes' full extents, or None if not affine."""
    aff = affine(node)
    if aff is None:
        return None
    coefs, const = aff
    lo = const + sum(c * (extents[a] - 1) for a, c in coefs.items() if c < 0)
    hi = const + sum(c * (extents[a] - 1) for a, c in coefs.items() if c > 0)
    return lo, hi
