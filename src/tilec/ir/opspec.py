"""Op specs as data: ``ir_specs/ops/<dialect>.json`` declares every op's operands, results, attributes and
result-type rule; this module loads them and checks ops against them.

Spec format (one JSON object per dialect)::

    {"dialect": "graph", "doc": "...", "ops": {
       "conv": {"summary": "...", "operands": ["x", "w", "b?"], "results": 1,
                "attributes": {"strides": {"type": "ints", "default": [1, 1]}, ...},
                "result_type": "conv", "lowering": "expr"}}}

Operand names ending in ``?`` are optional (trailing), ``*`` variadic (zero or more, last). ``results`` is a
count or ``"*"``. Attribute types: int float bool str ints floats strs symbol dense type any dict expr.
``result_type`` names a rule registered with :func:`result_rule` that computes result types from operand
types and attributes; ops without one trust their declared result types. ``lowering`` says how
``decompose`` treats the op: ``expr`` (becomes ``tile.compute``), ``opaque`` (kept, reference impl and
hand-written kernel), ``structural`` (no computation: modules, functions, terminators, ...).
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

from .attributes import DenseAttr, SymbolRef
from .types import FunctionType, TensorType


@dataclass(frozen=True)
class AttrSpec:
    name: str
    type: str
    default: object = None
    required: bool = False
    doc: str = ""


@dataclass(frozen=True)
class OpSpec:
    name: str
    summary: str
    operands: tuple
    results: object
    attributes: dict = field(default_factory=dict)
    result_type: str | None = None
    lowering: str = "structural"
    regions: int = 0
    doc: str = ""

    @property
    def min_operands(self) -> int:
        return sum(1 for o in self.operands if not o.endswith(("?", "*")))

    @property
    def max_operands(self) -> int | None:
        return None if any(o.endswith("*") for o in self.operands) else len(self.operands)


def _load_dialect(data: dict) -> dict:
    dialect = data["dialect"]
    out = {}
    for short, d in data["ops"].items():
        attrs = {k: AttrSpec(k, a["type"], a.get("default"), a.get("required", False), a.get("doc", ""))
                 for k, a in d.get("attributes", {}).items()}
        name = f"{dialect}.{short}"
        out[name] = OpSpec(name, d.get("summary", ""), tuple(d.get("operands", ())), d.get("results", 1),
                           attrs, d.get("result_type"), d.get("lowering", "structural"),
                           d.get("regions", 0), d.get("doc", ""))
    return out


@functools.lru_cache(maxsize=None)
def all_specs() -> dict:
    """Every op spec from ``ir_specs/ops/*.json``, by full op name."""
    from .parser import specs_dir
    specs: dict = {}
    for path in sorted((specs_dir() / "ops").glob("*.json")):
        specs.update(_load_dialect(json.loads(path.read_text())))
    return specs


def get_spec(name: str) -> OpSpec | None:
    return all_specs().get(name)


def is_view(op) -> bool:
    """A graph op that only reinterprets its operand's (contiguous, row-major) bytes with a new shape."""
    spec = get_spec(op.name)
    return spec is not None and spec.lowering == "view" and len(op.operands) >= 1 and len(op.results) == 1


# --- result-type rules -------------------------------------------------------------------------------
_RULES: dict = {}


def result_rule(name: str):
    """Register ``fn(operand_types, attrs) -> list[TensorType]`` as the result-type rule ``name``."""
    def deco(fn):
        _RULES[name] = fn
        return fn
    return deco


def get_rule(name: str):
    from . import dialects  # noqa: F401  (registers the rules)
    return _RULES.get(name)


# --- attribute checks --------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


_CHECKS = {
    "int": _is_int,
    "float": lambda v: isinstance(v, float) or _is_int(v),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "expr": lambda v: isinstance(v, str),
    "ints": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    "floats": lambda v: isinstance(v, list) and all(isinstance(x, float) or _is_int(x) for x in v),
    "strs": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    "symbol": lambda v: isinstance(v, SymbolRef),
    "dense": lambda v: isinstance(v, DenseAttr),
    "type": lambda v: isinstance(v, (TensorType, FunctionType)),
    "dict": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}


_KIND_CHECKS: dict = {}   # "int|str" -> its checks: the verifier asks ~10^5 times per Swin-T compile


def check_attr_type(spec: AttrSpec, value) -> bool:
    checks = _KIND_CHECKS.get(spec.type)
    if checks is None:
        checks = _KIND_CHECKS[spec.type] = tuple(_CHECKS[k] for k in spec.type.split("|"))
    for check in checks:
        if check(value):
            return True
    return False


def with_defaults(spec: OpSpec, attrs: dict) -> dict:
    """The op's attributes with every spec default filled in (what reference implementations receive)."""
    out = {k: a.default for k, a in spec.attributes.items() if a.default is not None}
    out.update(attrs)
    return out
