"""Attribute values that plain Python types cannot carry unambiguously, and their textual form.

Attributes are stored as Python values: ``int``, ``float``, ``bool``, ``str``, ``list`` (printed ``[a, b]``),
``dict`` (printed ``{k = v}``), plus the classes below. Floats always print with a ``.`` or exponent so they
parse back as floats, and ``repr`` keeps every bit, so print → parse → print is byte-identical.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .types import FunctionType, TensorType, dtype_of


@dataclass(frozen=True)
class SymbolRef:
    """``@name``: a reference to a symbol (a weight, a function, a kernel)."""

    name: str

    def __str__(self) -> str:
        return "@" + format_symbol(self.name)


class DenseAttr:
    """``dense<[...]> : tensor<...>``: a small constant tensor written inline."""

    # Larger constants become weights in the sidecar .npz, so dumps stay readable.
    MAX_INLINE_ELEMENTS = 64

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self.type = TensorType.of(self.array)

    def __eq__(self, other) -> bool:
        return (isinstance(other, DenseAttr) and self.type == other.type
                and self.array.tobytes() == other.array.tobytes())

    def __hash__(self) -> int:
        return hash((self.type, self.array.tobytes()))

    def __repr__(self) -> str:
        return f"DenseAttr({self.array!r})"

    def __str__(self) -> str:
        return f"dense<{format_dense_values(self.array)}> : {self.type}"


def format_float(x: float) -> str:
    """Shortest round-tripping spelling of a float, always recognisable as a float."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    text = repr(float(x))
    return text if any(c in text for c in ".en") else text + ".0"


def format_scalar(value, dtype: str) -> str:
    if dtype == "bool":
        return "true" if bool(value) else "false"
    if dtype.startswith(("i", "u")):
        return str(int(value))
    if dtype in ("f32", "f16"):
        # numpy's str is the shortest text that round-trips at this precision (3e-05, not 2.99999e-05).
        text = str(np.float32(value) if dtype == "f32" else np.float16(value))
        if text in ("nan", "inf", "-inf"):
            return text
        return text if any(c in text for c in ".e") else text + ".0"
    return format_float(float(value))


def format_dense_values(array: np.ndarray) -> str:
    dtype = dtype_of(array.dtype)
    if array.ndim == 0:
        return format_scalar(array[()] if dtype != "bf16" else float(array), dtype)

    def rec(a):
        if a.ndim == 1:
            return "[" + ", ".join(format_scalar(float(v) if dtype == "bf16" else v, dtype) for v in a) + "]"
        return "[" + ", ".join(rec(sub) for sub in a) + "]"
    return rec(array)


_BARE_SYMBOL_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$.-")


def format_symbol(name: str) -> str:
    """Symbols are bare when they are identifier-like, quoted otherwise (names from models can be anything)."""
    if name and (name[0].isalpha() or name[0] == "_") and all(c in _BARE_SYMBOL_CHARS for c in name):
        return name
    return quote_string(name)


def quote_string(text: str) -> str:
    """A double-quoted string with C-style escapes; every non-printable or non-ASCII char is escaped."""
    # Nearly every name (op names, attribute strings) is printable ASCII with nothing to escape: one C-speed
    # test instead of a loop per char. ASCII's printable chars are 32..126, the loop's plain case.
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return '"' + text + '"'
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def unquote_string(token: str) -> str:
    """Inverse of :func:`quote_string` (the token includes its quotes)."""
    body = token[1:-1]
    out, i = [], 0
    simple = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in simple:
            out.append(simple[nxt])
            i += 2
        elif nxt == "u":
            out.append(chr(int(body[i + 2:i + 6], 16)))
            i += 6
        elif nxt == "U":
            out.append(chr(int(body[i + 2:i + 10], 16)))
            i += 10
        else:
            raise ValueError(f"unknown escape '\\{nxt}'")
    return "".join(out)


_INT_LISTS = re.compile(r"[-0-9\[\], ]*")   # what repr gives for lists nested of ints only


def format_attr(value) -> str:
    """The textual form of an attribute value."""
    if type(value) is list:   # first: an rProgram's segments and waits are millions of small int lists
        text = repr(value)    # Python's own text for nested lists of ints is ours, at C speed: keep it when
        if _INT_LISTS.fullmatch(text):   # nothing else (bools, floats, strings, tuples...) is in there
            return text
        return "[" + ", ".join([format_attr(v) for v in value]) + "]"
    if type(value) is str:   # the commonest leaf; subclasses take the isinstance chain below
        return quote_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_attr(v) for v in value) + "]"
    if isinstance(value, dict):
        return format_attr_dict(value)
    if isinstance(value, (SymbolRef, DenseAttr, TensorType, FunctionType)):
        return str(value)
    if value is None:
        return "unit"
    raise TypeError(f"cannot print attribute value of type {type(value).__name__}")


_KEY_TEXT: dict = {}   # attribute key -> its text: a module has a few hundred distinct keys, printed ~10^5 times


def format_attr_key(key: str) -> str:
    text = _KEY_TEXT.get(key)
    if text is None:
        bare = key and (key[0].isalpha() or key[0] == "_") and all(c.isalnum() or c in "_." for c in key)
        text = _KEY_TEXT[key] = key if bare else quote_string(key)
    return text


def format_attr_dict(attrs: dict) -> str:
    """``{a = 1, b = "x"}``, keys in insertion order (the IR keeps them sorted where order is not meaningful)."""
    return "{" + ", ".join([f"{format_attr_key(k)} = {format_attr(v)}" for k, v in attrs.items()]) + "}"
