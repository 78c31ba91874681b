"""The verifier: structure, SSA dominance, op specs (operands, attributes, result types) and op hooks.

It runs after parsing and after every pass (``--verify-each``, on by default), so a pass that produces
bad IR is caught at the pass, not three passes later.
"""
from __future__ import annotations

from . import limits
from .core import Operation
from .diagnostics import CompileError, SizeLimitError
from .opspec import check_attr_type, get_rule, get_spec, with_defaults
from .types import FunctionType, TensorType, itemsize

_HOOKS: dict = {}

# Ops whose regions may not see values defined outside them (MLIR's IsolatedFromAbove).
ISOLATED = {"builtin.module", "func.func"}


def verify_hook(op_name: str):
    """Register ``fn(op, module)`` as an extra verifier for ``op_name``; it raises CompileError."""
    def deco(fn):
        _HOOKS.setdefault(op_name, []).append(fn)
        return fn
    return deco


def verify(module: Operation, source: str | None = None) -> None:
    """Raise :class:`CompileError` at the first problem found in ``module``."""
    from . import dialects  # noqa: F401  (registers hooks and rules)
    try:
        _Verifier(module, source).run()
    except CompileError as e:
        if e.source is None and e.diagnostic.line:
            e.source = source  # hooks do not know the text; the caret needs it
        raise


class _Verifier:
    def __init__(self, module: Operation, source: str | None):
        self.module = module
        self.source = source
        # Size bounds (ir/limits.py): read once per run, so a hostile shape fails here, before any pass or
        # interpreter allocates it.
        self.max_elements, self.max_bytes = limits.max_elements(), limits.max_bytes()
        self.total_bytes = 0

    def fail(self, op: Operation, message: str) -> CompileError:
        return CompileError.at(f"'{op.name}' {message}", op.loc, self.source)

    def run(self) -> None:
        if self.module.name != "builtin.module":
            raise self.fail(self.module, "expected a builtin.module at the top")
        self.region_scope(self.module, set())

    def region_scope(self, op: Operation, visible: set) -> None:
        for region in op.regions:
            for block in region.blocks:
                scope = set() if op.name in ISOLATED else set(visible)
                scope.update(block.args)
                for i, arg in enumerate(block.args):
                    self.size(op, arg.type, f"block argument #{i}")
                for inner in block.ops:
                    if inner.parent is not block:
                        raise self.fail(inner, "has a stale parent link (a pass forgot to re-parent it)")
                    for i, v in enumerate(inner.operands):
                        if v not in scope:
                            raise self.fail(inner, f"operand #{i} does not dominate this use "
                                                   "(used before it is defined, or from another function)")
                        if (inner, i) not in v.uses:
                            raise self.fail(inner, f"operand #{i} has a broken use list")
                    self.op(inner)
                    self.region_scope(inner, scope)
                    scope.update(inner.results)

    def op(self, op: Operation) -> None:
        spec = get_spec(op.name)
        if spec is None:
            raise self.fail(op, "is not a known op (see ir_specs/ops/)")
        n = len(op.operands)
        lo, hi = spec.min_operands, spec.max_operands   # properties: each a scan of the spec's operands
        if n < lo or (hi is not None and n > hi):
            want = f"{lo}" if hi == lo else f"{lo} to {hi if hi is not None else 'any'}"
            raise self.fail(op, f"takes {want} operands, got {n}")
        if spec.results != "*" and len(op.results) != spec.results:
            raise self.fail(op, f"has {spec.results} results, got {len(op.results)}")
        if len(op.regions) != spec.regions:
            raise self.fail(op, f"has {spec.regions} regions, got {len(op.regions)}")
        for key, value in op.attributes.items():
            aspec = spec.attributes.get(key)
            if aspec is None:
                raise self.fail(op, f"has unknown attribute '{key}'")
            if not check_attr_type(aspec, value):
                raise self.fail(op, f"attribute '{key}' must be of type {aspec.type}")
        for key, aspec in spec.attributes.items():
            if aspec.required and key not in op.attributes:
                raise self.fail(op, f"requires attribute '{key}'")
        for v in list(op.operands) + list(op.results):
            if isinstance(v.type, TensorType) and any(d is not None and d < 0 for d in v.type.shape):
                raise self.fail(op, f"has a negative dimension in {v.type}")
        for i, v in enumerate(op.results):
            self.size(op, v.type, f"result #{i}")
        if op.name == "tile.weight":
            self.size(op, op.attributes.get("type"), "weight")
        if spec.result_type:
            rule = get_rule(spec.result_type)
            if rule is None:
                raise self.fail(op, f"names an unknown result-type rule '{spec.result_type}'")
            operand_types = [v.type for v in op.operands]
            if all(isinstance(t, TensorType) and t.is_static for t in operand_types):
                try:
                    expected = rule(operand_types, with_defaults(spec, op.attributes))
                except CompileError:
                    raise
                except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
                    raise self.fail(op, f"is invalid: {e}") from None
                got = [r.type for r in op.results]
                if not all(_compatible(e, g) for e, g in zip(expected, got)) or len(expected) != len(got):
                    raise self.fail(op, "result types " + ", ".join(map(str, got)) + " do not match the "
                                    "inferred " + ", ".join(map(str, expected)))
        for hook in _HOOKS.get(op.name, ()):
            hook(op, self.module)

    def size(self, op: Operation, ty, what: str) -> None:
        """Each tensor under ``limits.max_elements()``; all of them together under ``max_bytes()``."""
        if not isinstance(ty, TensorType):
            return
        n = 1
        for d in ty.shape:
            if isinstance(d, int):  # a dynamic dim counts as 1; negative dims are reported by op()
                n *= max(d, 0)
        if n > self.max_elements:
            raise SizeLimitError.at(f"'{op.name}' {what} {ty} has {n:,} elements, more than tilec accepts "
                                    f"(limit {self.max_elements:,}; TILEC_MAX_ELEMENTS)", op.loc, self.source)
        self.total_bytes += n * _itemsize(ty.dtype)
        if self.total_bytes > self.max_bytes:
            raise SizeLimitError.at(f"'{op.name}' {what} {ty} brings the module's tensors to "
                                    f"{self.total_bytes:,} bytes, more than tilec accepts (limit "
                                    f"{self.max_bytes:,}; TILEC_MAX_BYTES)", op.loc, self.source)


def _itemsize(dtype) -> int:
    try:
        return itemsize(dtype)
    except (TypeError, KeyError, ValueError):
        return 8  # an unknown dtype is reported elsewhere; count it at the widest


def _compatible(inferred, declared) -> bool:
    """A declared type may leave dims dynamic (``?``) that inference knows; ``infer-shapes`` refines it."""
    if inferred == declared:
        return True
    return (isinstance(inferred, TensorType) and isinstance(declared, TensorType)
            and inferred.dtype == declared.dtype and inferred.rank == declared.rank
            and all(d is None or d == i for i, d in zip(inferred.shape, declared.shape)))


def check_function_signature(fn: Operation) -> None:
    fty = fn.attributes.get("function_type")
    if not isinstance(fty, FunctionType):
        raise CompileError.at("'func.func' needs a function_type", fn.loc)
    args = [a.type for a in fn.body.args]
    if tuple(args) != fty.inputs:
        raise CompileError.at("'func.func' block arguments do not match its signature", fn.loc)
