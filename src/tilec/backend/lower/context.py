"""What every kernel kind needs to know about one ``tile.compute``: its expression, axis extents, params
(sanitised C names), types, and how to load an access with its bounds predicate."""
from __future__ import annotations

import math
import re

from ...ir.diagnostics import CompileError
from ...ir.types import itemsize
from ..cstyle import compute_dtype, sanitize_identifier
from .builder import linearize
from .cexpr import CRenderer, affine, affine_text, index_range

_BAD = re.compile(r"[^A-Za-z0-9_]")

IDENTITY = {"sum": 0.0, "prod": 1.0, "max": -math.inf, "min": math.inf}
INT_LIMITS = {"i8": (-128, 127), "u8": (0, 255), "i32": (-2 ** 31, 2 ** 31 - 1), "i64": (-2 ** 63, 2 ** 63 - 1),
              "bool": (0, 1)}


class ComputeContext:
    """One ``tile.compute`` op, seen by the lowering."""

    def __init__(self, op):
        from ...ir.texpr import parse_texpr
        self.op = op
        self.expr = parse_texpr(op.attributes["expr"])
        self.shapes = [tuple(v.type.shape) for v in op.operands]
        self.dtypes = [v.type.dtype for v in op.operands]
        self.out_shape = tuple(op.result.type.shape)
        self.out_dtype = op.result.type.dtype
        self.extents = dict(self.expr.axis_extents(self.shapes, self.out_shape, op.attributes.get("axes")))
        self.pad = float(op.attributes.get("pad", 0.0))
        self.out_axes = list(self.expr.out_axes)
        self.reduce_axes = list(self.expr.reduce_axes)
        self.combiner = self.expr.combiner
        taken: set = set()
        self.names = {t: sanitize_identifier(t, taken, "in") for t in self.expr.inputs}
        self.out_name = sanitize_identifier(self.expr.output, taken, "out")
        sizes = [math.prod(s) for s in self.shapes] + [math.prod(self.out_shape), math.prod(self.extents.values())]
        # 32-bit index arithmetic unless some tensor (or the iteration space) needs more.
        self.idx_t = "i64" if max(sizes) >= 2 ** 31 else "i32"
        floats = [d for d in self.dtypes + [self.out_dtype] if d in ("f16", "bf16", "f32", "f64")]
        self.cdtype = "f64" if "f64" in floats else "f32" if floats else compute_dtype(self.out_dtype)
        self.acc_dtype = compute_dtype(self.out_dtype) if self.out_dtype != "bool" else self.cdtype

    # --- params ----------------------------------------------------------------------------------------
    @property
    def spec(self):
        """The target GPU's spec (the module's ``tilec.target``, ``analysis/hardware.target_spec``)."""
        from ...analysis.hardware import target_spec
        return target_spec(self.op)

    @property
    def smem_limit(self) -> int:
        """Static shared memory one block may declare on the target (its ``smem_per_block_bytes``)."""
        return self.spec.smem_per_block_bytes

    def params(self) -> list:
        out = []
        for t, shape, dtype in zip(self.expr.inputs, self.shapes, self.dtypes):
            out.append({"name": self.names[t], "dtype": dtype, "role": "in", "shape": list(shape)})
        out.append({"name": self.out_name, "dtype": self.out_dtype, "role": "out", "shape": list(self.out_shape)})
        return out

    def input_of(self, access) -> int:
        return list(self.expr.inputs).index(access.tensor)

    def load_dtype(self, access) -> str:
        return compute_dtype(self.dtypes[self.input_of(access)])

    # --- names -----------------------------------------------------------------------------------------
    @staticmethod
    def axis_var(axis: str) -> str:
        return "ax_" + _BAD.sub("_", axis)

    def renderer(self, access_name, axis_name=None) -> CRenderer:
        return CRenderer(access_name, axis_name or self.axis_var, self.cdtype)

    def literal(self, value: float, dtype: str) -> str:
        """A C literal of ``value`` in compute type ``dtype`` (±inf clamps to the limits of integer types)."""
        if dtype in INT_LIMITS:
            lo, hi = INT_LIMITS[dtype]
            v = hi if value == math.inf else lo if value == -math.inf else int(value)
            if dtype == "bool":
                return "true" if v else "false"
            return f"({v + 1}LL - 1)" if v == -2 ** 63 else f"{v}LL" if abs(v) >= 2 ** 31 else str(v)
        return CRenderer(None, None, dtype).num(value)

    def identity(self) -> str:
        return self.literal(IDENTITY[self.combiner], self.acc_dtype)

    # --- accesses --------------------------------------------------------------------------------------
    def index_and_pred(self, access, axis_name=None) -> tuple:
        """``(linear index, predicate or "")`` of ``access`` with axes named by ``axis_name``; the predicate
        guards exactly the dims whose index can leave ``[0, dim)`` over the iteration space."""
        axis_name = axis_name or self.axis_var
        shape = self.shapes[self.input_of(access)]
        render = CRenderer(None, axis_name, "i64" if self.idx_t == "i64" else "i32")
        idx, preds = [], []
        for node, dim in zip(access.indices, shape):
            aff = affine(node)
            text = affine_text(aff[0], aff[1], axis_name) if aff else render(node)
            idx.append(text)
            rng = index_range(node, self.extents)
            if rng is None or rng[0] < 0:
                preds.append(f"{_p(text)} >= 0")
            if rng is None or rng[1] >= dim:
                preds.append(f"{_p(text)} < {dim}")
        return linearize(idx, shape), " && ".join(preds)

    def load_access(self, kb, access, target: str, axis_name=None) -> None:
        """Declare ``target`` and load ``access`` into it (``pad`` where it is out of bounds)."""
        dtype = self.load_dtype(access)
        index, pred = self.index_and_pred(access, axis_name)
        kb.local(target, dtype)
        kb.load(target, dtype, self.names[access.tensor], index, pred or None, self.literal(self.pad, dtype))

    def distinct_accesses(self) -> list:
        """The body's accesses, each distinct (tensor, indices) once, in order of appearance."""
        # Cached per expr: welder's conv-chain tile search (fusion/conv_chain/match.choose) asks this
        # hundreds of thousands of times per model, and the repr keys were most of its time.
        cached = self.__dict__.get("_distinct")
        if cached is None or cached[0] is not self.expr:
            seen, out = set(), []
            for acc in self.expr.accesses:
                key = self.access_key(acc)
                if key not in seen:
                    seen.add(key)
                    out.append(acc)
            cached = self._distinct = (self.expr, out)
        return list(cached[1])

    def access_key(self, access) -> tuple:
        # Cached by identity (the entry keeps the access alive, so its id is not reused): repr of the
        # index trees is slow, and the same few accesses are keyed over and over.
        keys = self.__dict__.setdefault("_access_keys", {})
        hit = keys.get(id(access))
        if hit is None or hit[0] is not access:
            hit = keys[id(access)] = (access, (access.tensor, repr(access.indices)))
        return hit[1]

    # --- results ---------------------------------------------------------------------------------------
    fused = False   # a fused kernel's context (backend/lower/fused.py) replaces store_result with an epilogue

    def store_result(self, kb, index: str, value: str, pred: str | None = None) -> None:
        """Store the computed ``value`` of the output element at linear ``index`` (axis vars are bound)."""
        kb.store(self.out_name, index, value, pred or None)

    # --- cost ------------------------------------------------------------------------------------------
    def flops(self) -> int:
        try:
            return int(self.expr.flops(self.extents))
        except Exception:  # noqa: BLE001 - flops are a report figure, never worth failing a compile over
            return 0

    def out_bytes(self) -> int:
        return math.prod(self.out_shape) * itemsize(self.out_dtype)

    def origin(self) -> str | None:
        return self.op.attributes.get("origin")

    def fail(self, message: str) -> CompileError:
        return CompileError.at(f"lower-cuda: {message}", self.op.loc)


def _p(text: str) -> str:
    return text if text.replace("_", "").isalnum() else f"({text})"
