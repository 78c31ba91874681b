"""The functions a tensor expression may call: arity and result-type rule of each.

Type rules (see :mod:`tilec.ir.texpr.dtypes`): ``float`` maps ints to f32 and keeps float types, ``same``
keeps the argument's type, ``base`` keeps the first argument's type
(ONNX Pow: ``pow(int, float)`` is an int) unless it is a literal, ``join`` promotes the arguments like arithmetic, ``bool`` gives bool, and a
cast gives its own dtype. The numpy implementations live in the evaluator.
"""
from __future__ import annotations

DTYPES = ("f32", "f16", "bf16", "f64", "i64", "i32", "i8", "u8", "bool")
FLOAT_DTYPES = ("f16", "bf16", "f32", "f64")

# name -> (arity, type rule)
FUNCTIONS = {
    **{f: (1, "float") for f in ("exp", "log", "tanh", "erf", "sqrt", "rsqrt", "sigmoid", "sin", "cos",
                                 "tan", "atan", "asin", "acos", "sinh", "cosh", "log1p", "expm1")},
    **{f: (1, "same") for f in ("abs", "floor", "ceil", "round", "trunc", "sign")},
    **{f: (2, "join") for f in ("max", "min", "fmod")},
    "pow": (2, "base"),
    # Integer bit operations (ONNX Bitwise*, BitShift); C's & | ^ ~ << >> on the integer compute type.
    **{f: (2, "join") for f in ("bitand", "bitor", "bitxor", "shl", "shr")}, "bitnot": (1, "same"),
    # The argument's bits read as the named type of the same width (ONNX BitCast).
    **{f"bits_{d}": (1, "bits") for d in ("i32", "f32", "i64", "f64")},
    "isnan": (1, "bool"), "isinf": (1, "bool"),
    "select": (3, "select"),
    "valid": (1, "bool"),
    **{d: (1, "cast") for d in DTYPES},
}

# Calls that cost no arithmetic in a FLOP count: casts and bounds tests.
FREE_CALLS = frozenset(DTYPES) | {"valid"}
