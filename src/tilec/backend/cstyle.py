"""One C-style renderer for the kernel IR (tinygrad's ``CStyleLanguage`` idea).

A :class:`CStyleLanguage` holds what differs between C dialects as data: the kernel prefix, the shared-array
declaration, the barrier, the type map, the global load/store spellings and the conversions. :func:`render_body`
walks a ``kernel.func`` region and prints one statement per kernel op. ``CUDA`` and HIP (``backend/hip.py``,
for AMD targets: ``hip.language_for(spec)`` picks) are the languages; the emulator compiles the very same text.

Identifiers that come from a model go through :func:`sanitize_identifier`, and text that goes into comments
through :func:`safe_comment`, so no model string reaches the source unescaped.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

# What a model-derived name may become in C is the IR's rule (ir/identifiers.py, which the kernel dialect's
# verifier checks names by); the renderer applies it. Re-exported: the lowering imports it from here.
from ..ir.identifiers import RESERVED, RESERVED_PREFIXES, sanitize_identifier  # noqa: F401
from ..ir.diagnostics import CompileError
from ..ir.kexpr import KExpr, parse, render

PRELUDE_PATH = Path(__file__).with_name("cuda_prelude.h")

# Allowed in // comments: no newline or backslash (line continuation), no '?' (trigraphs like ??/).
_COMMENT_OK = re.compile(r"[^A-Za-z0-9 _+\-*/%=,.:;()\[\]<>!&|^~]")


def safe_comment(text: str, limit: int = 160) -> str:
    """Text safe inside a ``//`` line comment: anything that could end or extend it becomes ``_``."""
    return _COMMENT_OK.sub("_", text)[:limit]


@dataclass(frozen=True)
class CStyleLanguage:
    """The spelling of one C dialect. Subclass or ``dataclasses.replace`` to make another."""

    kernel_prefix: str = 'extern "C" __global__ void'
    # ``{min_blocks}``: the minimum blocks per SM ptxas must fit; see emit.MIN_BLOCKS_PER_SM for why it is 1.
    launch_bounds: str = "__launch_bounds__({threads}, {min_blocks}) "
    shared_decl: str = "TL_SHARED({type}, {name}, {dims});"
    barrier: str = "__syncthreads();"
    cluster_barrier: str = "tl_cluster_sync();"
    cluster_dims: str = "__cluster_dims__({x}, 1, 1) "
    restrict: str = " __restrict__"
    load: str = "TL_LD({buf}, {idx})"
    store: str = "TL_ST({buf}, {idx}, {val});"
    load4: str = "TL_LD4({buf}, {idx})"
    store4: str = "TL_ST4({buf}, {idx}, {val});"
    # ``{width}``: the IR's lane count of the reduction (CUDA's form leaves it to the warp: 32).
    shfl_xor: str = "__shfl_xor_sync(0xffffffffu, {val}, {lane})"
    # What a persistent kernel's or device loop's member functions read their thread index from, once per call
    # (``lower/persistent.device_function``); empty: ``threadIdx.x`` itself (HIP: hip_prelude.h's tl_thread_x).
    member_thread: str = ""
    # ``{i}``: the i-th (pointer) argument read by index, so a persistent kernel's (or device loop's) threads copy
    # its buffer table in a loop (``lower/persistent.emit_persistent``); empty: thread 0 copies each by name.
    kernarg_ptr: str = ""
    prelude: str = "cuda_prelude.h"    # the header pasted atop every source, shipped beside this file
    source_suffix: str = ".cu"         # kernels/<name><suffix> in a build folder
    # Half types convert through float: ``{}`` is the value.
    to_f32: dict = field(default_factory=lambda: {"f16": "__half2float({})", "bf16": "__bfloat162float({})"})
    from_f32: dict = field(default_factory=lambda: {"f16": "__float2half({})", "bf16": "__float2bfloat16({})"})
    type_map: dict = field(default_factory=lambda: {
        "f32": "float", "f16": "__half", "bf16": "__nv_bfloat16", "f64": "double", "i64": "long long",
        "i32": "int", "i8": "signed char", "u8": "unsigned char", "bool": "bool", "f32x4": "float4"})

    def ctype(self, dtype: str) -> str:
        return self.type_map[dtype]

    def bounds(self, threads: int, min_blocks: int) -> str:
        """The launch-bounds text for blocks of ``threads`` of which ``min_blocks`` must fit one SM."""
        return self.launch_bounds.format(threads=threads, min_blocks=min_blocks)

    def convert(self, expr: str, src: str, dst: str) -> str:
        """``expr`` of element type ``src`` as a ``dst`` value (half types go through float)."""
        if src == dst:
            return expr
        if src in self.to_f32:
            return self.convert(self.to_f32[src].format(expr), "f32", dst)
        if dst in self.from_f32:
            return self.from_f32[dst].format(self.convert(expr, src, "f32"))
        if dst == "bool":
            return f"(({expr}) != 0)"
        return f"(({self.ctype(dst)})({expr}))"

    def combine(self, how: str, dtype: str, a: str, b: str) -> str:
        """The reduction combiner ``how`` (sum | max | min | prod) applied to ``a`` and ``b``."""
        if how == "sum":
            return f"{a} + {b}"
        if how == "prod":
            return f"{a} * {b}"
        if how in ("max", "min"):
            if dtype in ("f32", "f16", "bf16"):
                return f"f{how}f({a}, {b})"
            if dtype == "f64":
                return f"f{how}({a}, {b})"
            cmp = ">" if how == "max" else "<"
            return f"(({a}) {cmp} ({b}) ? ({a}) : ({b}))"
        raise ValueError(f"unknown combiner '{how}'")


CUDA = CStyleLanguage()


@functools.lru_cache(maxsize=None)
def prelude_text(name: str = PRELUDE_PATH.name) -> str:
    """The text every emitted kernel starts with (``cuda_prelude.h``, or a language's ``prelude``, shipped beside
    this file)."""
    path = PRELUDE_PATH.with_name(name)
    if not path.is_file():
        raise CompileError(f"the kernel prelude is missing: {path}")
    return path.read_text()


def kernel_name(op) -> str:
    """The C name of ``kernel.func`` ``op``: its symbol, which must already be a sanitised identifier."""
    name = op.sym_name
    if sanitize_identifier(name) != name:
        raise CompileError.at(f"kernel name '{safe_comment(name)}' is not a sanitised C identifier", op.loc)
    return name


def render_body(func_op, lang: CStyleLanguage = CUDA, replace: dict | None = None) -> list:
    """The kernel body of ``func_op`` (a ``kernel.func``) as C lines, indented one level; ``replace`` maps
    expression nodes to others (``{BlockIdx("x"): Var("k_vb")}``: an rTask's virtual block index)."""
    buffers = {p["name"]: p["dtype"] for p in func_op.attributes["params"]}
    lines: list = []
    BodyRenderer(lang, buffers, lines, replace).block(func_op.body, 1)
    return lines


@functools.lru_cache(maxsize=65536)
def render_text(text: str, replace: frozenset = frozenset()) -> str:
    """An expression attribute's text parsed and rendered with ``replace`` (pairs of nodes); cached, since
    kernels repeat the same expressions and every variant and persistent body renders them again."""
    return render(parse(text), dict(replace))


class BodyRenderer:
    """Prints a ``kernel.func`` body's ops as ``lang`` statements into ``lines``, every expression attribute
    through the kernel-expression renderer (``ir/kexpr``) with ``replace`` applied; subclasses change how a
    construct is spelled (the persistent lowering views shared arrays in its block arena)."""

    def __init__(self, lang: CStyleLanguage, buffers: dict, lines: list, replace: dict | None = None):
        self.lang = lang
        self.buffers = buffers
        self.lines = lines
        self.replace = replace or {}

    def x(self, value) -> str:
        """The C text of an expression attribute (text of the IR, a tree, or a number)."""
        if isinstance(value, KExpr):
            return render(value, self.replace)
        return render_text(value, frozenset(self.replace.items())) if isinstance(value, str) else str(value)

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text)

    def block(self, block, depth: int) -> None:
        for op in block.ops:
            getattr(self, "op_" + op.name.split(".", 1)[1])(op, op.attributes, depth)

    def op_shared(self, op, a, d):
        dims = "".join(f"[{n}]" for n in a["dims"])
        self.emit(d, self.lang.shared_decl.format(type=self.lang.ctype(a["dtype"]), name=a["name"], dims=dims))

    def op_local(self, op, a, d):
        dims = a.get("dims", [])
        ctype = self.lang.ctype(a["dtype"])
        init = a.get("init")
        if not dims:
            self.emit(d, f"{ctype} {a['name']}" + (f" = {self.x(init)};" if init is not None else ";"))
            return
        self.emit(d, f"{ctype} {a['name']}[{dims[0]}];")
        if init is not None:
            self.emit(d, "#pragma unroll")
            self.emit(d, f"for (int k_z = 0; k_z < {dims[0]}; ++k_z) {a['name']}[k_z] = {self.x(init)};")

    def op_let(self, op, a, d):
        const = "const " if a.get("const", True) else ""
        self.emit(d, f"{const}{self.lang.ctype(a['dtype'])} {a['name']} = {self.x(a['value'])};")

    def op_assign(self, op, a, d):
        self.emit(d, f"{self.x(a['target'])} = {self.x(a['value'])};")

    def op_for(self, op, a, d):
        unroll = a.get("unroll", 0)
        if unroll == -1:
            self.emit(d, "#pragma unroll")
        elif unroll > 0:
            self.emit(d, f"#pragma unroll {unroll}")
        var, step = a["var"], a.get("step", 1)
        inc = f"++{var}" if step == 1 else f"{var} += {self.x(step)}"
        self.emit(d, f"for (int {var} = {self.x(a['lo'])}; {var} < {self.x(a['hi'])}; {inc}) {{")
        self.block(op.regions[0].block, d + 1)
        self.emit(d, "}")

    def op_if(self, op, a, d):
        self.emit(d, f"if ({self.x(a['cond'])}) {{")
        self.block(op.regions[0].block, d + 1)
        if op.regions[1].block.ops:
            self.emit(d, "} else {")
            self.block(op.regions[1].block, d + 1)
        self.emit(d, "}")

    def op_barrier(self, op, a, d):
        self.emit(d, self.lang.cluster_barrier if a.get("scope") == "cluster" else self.lang.barrier)

    def op_load(self, op, a, d):
        buf, vec, idx = a["buffer"], a.get("vec", 1), self.x(a["index"])
        if vec == 4:
            value = self.lang.load4.format(buf=buf, idx=idx)
        else:
            value = self.lang.convert(self.lang.load.format(buf=buf, idx=idx), self.buffers[buf], a["dtype"])
        pred = a.get("pred")
        if pred:
            value = f"({self.x(pred)}) ? {value} : ({self.x(a.get('other', '0'))})"
        self.emit(d, f"{a['target']} = {value};")

    def op_store(self, op, a, d):
        buf, vec, idx, val = a["buffer"], a.get("vec", 1), self.x(a["index"]), self.x(a["value"])
        if vec == 4:
            text = self.lang.store4.format(buf=buf, idx=idx, val=val)
        else:
            dtype = self.buffers[buf]
            text = self.lang.store.format(buf=buf, idx=idx, val=self.lang.convert(val, compute_dtype(dtype), dtype))
        pred = a.get("pred")
        self.emit(d, f"if ({self.x(pred)}) {text}" if pred else text)

    def op_warp_reduce(self, op, a, d):
        var, width = a["var"], a.get("width", 32)
        other = self.lang.shfl_xor.format(val=var, lane="k_o", width=width)
        self.emit(d, "#pragma unroll")
        self.emit(d, f"for (int k_o = {width // 2}; k_o > 0; k_o >>= 1) "
                     f"{var} = {self.lang.combine(a['combine'], a['dtype'], var, other)};")


def compute_dtype(dtype: str) -> str:
    """The type kernels compute a ``dtype`` value in: half types widen to f32 (fp32 accumulation)."""
    return "f32" if dtype in ("f16", "bf16") else dtype
