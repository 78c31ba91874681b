"""Persistent-kernel codegen for an rProgram (Rammer, DESIGN §5): one ``kernel.func`` of kind ``persistent``.

The source is the prelude, one ``__device__`` function per rOperator (its kernel's block body with a virtual
block index, :func:`device_function`), the schedule as constant tables, and a kernel where block
``v`` (vEU ``v``) walks its segments in order (block-range dispatch). The rOperators' shared arrays are views
into one block arena (``TL_SHARED k_arena``, passed as ``k_parena``) from offset 0 each, so they overlay: the
block declares the largest member's bytes (``analysis/rammer/shared``), not the sum:

1. if the segment has waits, the block's threads share them out and each spins on its ``flags[u] >= step``
   with ``tl_wait_geq`` (which fences after), so many waits cost about one round trip; then the block
   meets at ``__syncthreads``;
2. it runs the segment's rTasks (virtual blocks ``lo..hi-1``); barrier-free members with fewer threads than
   the block run on the first threads only; members with barriers and fewer threads run *guarded*
   (``device_function(guarded=True)``): every thread of the block calls them, so every ``__syncthreads`` is
   met by the whole block, but threads past the member's own count skip all work between barriers; members
   with barriers or shared memory meet at ``__syncthreads`` after each task, since the next task, of the same
   member or another, reuses the arena;
3. every thread fences its writes, the block meets, and thread 0 raises ``flags[v]`` to the number of
   segments done with ``tl_signal``.

``__launch_bounds__(threads, blocks_per_sm)`` makes ptxas keep registers low enough that every vEU is
resident at once, which the waits need (a non-resident vEU would never run). What a member needs beyond that
cap would spill: the scheduler packs only members whose register estimate fits it
(``analysis/rammer/regs``).
"""
from __future__ import annotations

from ...analysis.rammer.shared import ALIGN, arena_bytes, layout, shared_bytes
from ...ir.attributes import SymbolRef
from ...ir.core import lookup_symbol
from ...ir.diagnostics import CompileError
from ...ir.kexpr import BlockIdx, Call, Index, ThreadIdx, Var, walk
from ..cstyle import CUDA, BodyRenderer, CStyleLanguage, kernel_name, prelude_text, safe_comment
from ..kernel_facts import SYNC_OPS, expressions, kernel_expressions, kernel_facts, source_body

# What a device function's body reads instead of the launch's registers: the rTask's virtual block index
# (a parameter), a guarded body's thread index (thread 0's for the extra threads), a virtual thread index.
VIRTUAL_BLOCK = Var("k_vb")
GUARDED_THREAD = Var("k_tid")
VIRTUAL_THREAD = Var("k_vt")
MEMBER_THREAD = Var("k_tx")   # the thread index read once through the language's member_thread (HIP)
_DECLS = ("kernel.let", "kernel.local", "kernel.shared")


def _has_sync(op) -> bool:
    return any(o.name in SYNC_OPS for o in op.walk())


def _reads_memory(op) -> bool:
    """Whether ``op``'s own expressions read an array (a subscript or a global load)."""
    return any(isinstance(n, Index) or (isinstance(n, Call) and n.fn.startswith("TL_LD"))
               for _, tree in expressions(op) for n in walk(tree))


def guardable(kernel) -> bool:
    """Whether ``kernel`` (a 1-D ``kernel.func`` with barriers) can run guarded in a wider block: its body is
    kernel IR (not hand-written source); every loop or branch around a barrier is controlled by index
    arithmetic only (no array reads), so the extra threads, which compute indices as thread 0 does, meet the
    same barriers; and warp shuffles, which the extra threads join, see only their own warp's lanes
    (thread count a multiple of the warp)."""
    a = kernel.attributes
    if "source" in a:
        return False
    for o in kernel.walk():
        if o.name == "kernel.warp_reduce" and a["block"][0] % 32:
            return False
        if o.name in ("kernel.for", "kernel.if") and _has_sync(o) and _reads_memory(o):
            return False
    return True


class _Overlaid(BodyRenderer):
    """Renders a body whose shared arrays are views into the persistent block's arena (``k_parena``, a parameter
    of the device function) at ``offsets`` (``analysis/rammer/shared.layout``) instead of arrays of their own:
    the members' arrays overlay one another, so the block needs the largest member's bytes, not the sum.
    With no ``offsets``, arrays stay the kernel's own."""

    offsets: dict = {}

    def op_shared(self, op, a, d):
        if not self.offsets:
            return super().op_shared(op, a, d)
        dims = "".join(f"[{n}]" for n in a["dims"])
        t = self.lang.ctype(a["dtype"])
        at = f"k_parena + {self.offsets[id(op)]}"
        self.emit(d, f"{t} (&{a['name']}){dims} = *reinterpret_cast<{t} (*){dims}>({at});")


class _Guarded(_Overlaid):
    """Renders a body for a block wider than the kernel's: runs of statements with no barrier inside go
    under ``if (k_on)``; declarations, barriers, shuffles and the loops/branches holding them stay outside,
    so every thread meets every barrier."""

    guard = True

    def block(self, block, depth: int) -> None:
        if not self.guard:
            return super().block(block, depth)
        run: list = []
        for op in list(block.ops) + [None]:
            if op is not None and op.name not in _DECLS and not _has_sync(op):
                run.append(op)
                continue
            if run:
                self.emit(depth, "if (k_on) {")
                self.guard = False
                for r in run:
                    getattr(self, "op_" + r.name.split(".", 1)[1])(r, r.attributes, depth + 1)
                self.guard = True
                self.emit(depth, "}")
                run = []
            if op is not None:
                getattr(self, "op_" + op.name.split(".", 1)[1])(op, op.attributes, depth)


def device_function(kernel, fname: str, guarded: bool = False, overlay: bool = True,
                    lang: CStyleLanguage = CUDA, virtual_threads: bool = False) -> list:
    """``kernel``'s block body as ``static __device__ void fname(params..., const int k_vb[, k_parena])``:
    the body renders ``blockIdx.x`` as ``k_vb``, the virtual block index (an rTask of a persistent kernel,
    DESIGN §5). Params lose ``__restrict__``: in a persistent kernel an input may be written by another rTask.
    ``overlay``: a kernel with shared arrays also takes ``k_parena``, the persistent block's arena, and views
    its arrays there (:class:`_Overlaid`). ``guarded``: the block is wider than ``kernel``'s own; threads past
    its thread count index as thread 0 (so their index arithmetic stays in bounds) and skip all work (``k_on``
    false), but meet every barrier. ``virtual_threads``: the thread index is a parameter ``k_vt`` too (a
    barrier-free body run by fewer threads than its own, each calling it for several thread indices)."""
    offsets = layout(kernel)[0] if overlay else {}
    replace = {BlockIdx("x"): VIRTUAL_BLOCK}
    if guarded:
        replace[ThreadIdx("x")] = GUARDED_THREAD
    if virtual_threads:
        replace[ThreadIdx("x")] = VIRTUAL_THREAD
    params = [f"{'const ' if p['role'] == 'in' else ''}{lang.ctype(p['dtype'])}* {p['name']}"
              for p in kernel.attributes["params"]]
    params += ["const int k_vb"] + (["unsigned char* k_parena"] if offsets else []) + \
        (["const int k_vt"] if virtual_threads else [])
    head = f"static __device__ __noinline__ void {fname}({', '.join(params)}) {{"
    if "source" in kernel.attributes:
        if offsets or guarded:  # hand-written text: its arrays and thread indices cannot be rewritten
            raise CompileError.at(f"kernel {kernel.sym_name} has hand-written source: it cannot run "
                                  f"{'in a wider block' if guarded else 'with its shared arrays in an arena'}",
                                  kernel.loc)
        return [head] + ["  " + ln if ln else "" for ln in source_body(kernel, replace)] + ["}"]
    if guarded and not guardable(kernel):
        raise CompileError.at(f"kernel {kernel.sym_name} cannot run in a wider block", kernel.loc)
    # The language's opaque thread index (HIP), read once per call: see CStyleLanguage.member_thread.
    tx, pre = "threadIdx.x", []
    if lang.member_thread and not virtual_threads and (guarded or _reads_thread_x(kernel)):
        tx, pre = MEMBER_THREAD.name, [f"  const unsigned {MEMBER_THREAD.name} = {lang.member_thread};"]
        replace.setdefault(ThreadIdx("x"), MEMBER_THREAD)
    buffers = {p["name"]: p["dtype"] for p in kernel.attributes["params"]}
    body: list = []
    r = (_Guarded if guarded else _Overlaid)(lang, buffers, body, replace)
    r.offsets = offsets
    r.block(kernel.body, 1)
    if not guarded:
        return [head] + pre + body + ["}"]
    kt = kernel.attributes["block"][0]
    return [head] + pre + [f"  const bool k_on = {tx} < {kt};",
            f"  const unsigned k_tid = k_on ? {tx} : 0u;"] + body + ["}"]


def kernarg_fill(lang: CStyleLanguage, n: int, threads: int) -> str:
    """The loop in which a block's ``threads`` threads copy the kernel's first ``n`` (pointer) arguments into the
    ``k_args`` table by index, from the kernarg segment (``lang.kernarg_ptr``: HIP)."""
    return (f"for (int k_i = {lang.member_thread or 'threadIdx.x'}; k_i < {n}; k_i += {threads}) "
            f"k_args[k_i] = {lang.kernarg_ptr.format(i='k_i')};")


def _reads_thread_x(kernel) -> bool:
    return any(n == ThreadIdx("x") for tree in kernel_expressions(kernel) for n in walk(tree))


def guarded_device_function(kernel, fname: str, lang: CStyleLanguage = CUDA) -> list:
    """:func:`device_function` for a block wider than ``kernel``'s own, its shared arrays its own (Grinder's
    device loops run one stage per grid barrier and give no arena)."""
    return device_function(kernel, fname, guarded=True, overlay=False, lang=lang)


def _table(ctype: str, name: str, values: list) -> str:
    values = values or [0]  # no zero-length arrays
    # Global, not __constant__: a large rProgram's tables outgrow the 64 KB constant bank.
    return f"__device__ const {ctype} {name}[{len(values)}] = {{{', '.join(map(str, values))}}};"


def emit_persistent(op, lang: CStyleLanguage = CUDA) -> str:
    """The complete CUDA source of a ``persistent`` ``kernel.func`` (an rProgram)."""
    module = op.parent_op
    name = kernel_name(op)
    a = op.attributes
    ops = op.body.ops
    program = next(o for o in ops if o.name == "rprog.program").attributes
    operators = [o.attributes for o in ops if o.name == "rprog.operator"]
    veus = [o.attributes for o in ops if o.name == "rprog.veu"]
    threads = a["block"][0]
    lines = [prelude_text(lang.prelude).rstrip("\n"), "",
             f"// tilec persistent kernel {name}: {program['veus']} vEUs, {threads} threads, "
             f"{program['blocks_per_sm']} blocks/SM, {len(operators)} rOperators",
             f"// {safe_comment(a.get('origin', ''))}"]
    kernels = []
    for i, o in enumerate(operators):
        ref = o["kernel"]
        k = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) and module is not None else None
        if k is None:
            raise CompileError.at(f"persistent kernel {name}: rOperator {ref} is not a kernel of the module",
                                  op.loc)
        kernels.append(k)
        lines.append("")
        guarded = k.attributes["block"][0] < threads and _needs_whole_block(k)
        lines.extend(device_function(k, f"{name}_op{i}", guarded, lang=lang))
    arena = arena_bytes(kernels)
    seg_begin, segs, waits = [0], [], []
    for v in veus:
        for (i, lo, hi), wait in zip(v["segments"], v["waits"]):
            segs += [i, lo, hi, len(waits), len(waits) + len(wait)]
            waits += wait   # producer rOperators, whose rTask counters must reach their task counts
        seg_begin.append(len(segs) // 5)
    tasks = [o["tasks"] for o in operators]
    lines += ["", _table("int", f"{name}_seg_begin", seg_begin), _table("int", f"{name}_seg", segs),
              _table("int", f"{name}_wait", waits), _table("int", f"{name}_tasks", tasks), ""]
    params = []
    for p in a["params"]:
        if p["role"] == "in":
            params.append(f"const {lang.ctype(p['dtype'])}*{lang.restrict} {p['name']}")
        else:  # read back by later rTasks: no __restrict__, so no non-coherent loads of them
            params.append(f"{lang.ctype(p['dtype'])}* {p['name']}")
    lines.append(f"{lang.kernel_prefix} {lang.bounds(threads, program['blocks_per_sm'])}"
                 f"{name}({', '.join(params)}) {{")
    # The buffers go to a shared table once and each call reads its own from there: held in registers
    # across the dispatch loop and the calls, every parameter pinned two registers (a 544-thread block
    # spilled at its 96-register budget). ``shared.args_table_bytes`` counts the table.
    buffers = a["params"][:-1]   # all but the rTask counters
    cast = {p["name"]: f"({'const ' if p['role'] == 'in' else ''}{lang.ctype(p['dtype'])}*)k_args[{i}]"
            for i, p in enumerate(buffers)}
    fill = [f"k_args[{i}] = {p['name']};" for i, p in enumerate(buffers)]
    if lang.kernarg_ptr and buffers:   # by index, all threads (HIP: see hip_prelude.h's tl_kernarg_ptr)
        fill = [kernarg_fill(lang, len(buffers), threads)]
    else:
        fill = ["if (k_lead) {", *("  " + " ".join(fill[j:j + 8]) for j in range(0, len(fill), 8)), "}"]
    # HIP: the dispatch's thread tests read the opaque index where they are made, or each test's mask is
    # computed once and held in SGPRs across the loop (k_lead's and the guards' spilled in nasnet-small's).
    tid = lang.member_thread or "threadIdx.x"
    lead = f"{lang.member_thread} == 0" if lang.member_thread else "k_lead"
    t = f"{name}_seg"
    lines += [
        "  const int k_v = blockIdx.x;",
        *(["  const bool k_lead = threadIdx.x == 0;"] if "k_lead" in lead + fill[0] else []),
        f"  TL_SHARED(const void*, k_args, [{max(1, len(buffers))}]);  // the buffers, read at each call",
        *("  " + ln for ln in fill),
        "  __syncthreads();",
        *([f"  TL_SHARED(float4, k_arena, [{arena // ALIGN}]);  // every rOperator's shared arrays, overlaid",
           "  unsigned char* const k_parena = reinterpret_cast<unsigned char*>(k_arena);"] if arena else []),
        f"  for (int k_s = {name}_seg_begin[k_v]; k_s < {name}_seg_begin[k_v + 1]; ++k_s) {{",
        f"    const int k_op = {t}[5 * k_s], k_lo = {t}[5 * k_s + 1], k_hi = {t}[5 * k_s + 2];",
        f"    const int k_w0 = {t}[5 * k_s + 3], k_w1 = {t}[5 * k_s + 4];",
        "    if (k_w0 < k_w1) {",
        f"      for (int k_w = k_w0 + (int)threadIdx.x; k_w < k_w1; k_w += {threads})",
        f"        tl_wait_geq(flags + {name}_wait[k_w], {name}_tasks[{name}_wait[k_w]]);",
        "      __syncthreads();",
        "    }",
        "    for (int k_b = k_lo; k_b < k_hi; ++k_b) {",
        "      switch (k_op) {"]
    for i, (o, k) in enumerate(zip(operators, kernels)):
        own = shared_bytes(k) > 0
        call = f"{name}_op{i}({', '.join([cast[x] for x in o['args']] + ['k_b'] + (['k_parena'] if own else []))});"
        kt = k.attributes["block"][0]
        # The next task, of this member or another, reuses the arena: every thread must be done with it.
        shared = _needs_whole_block(k) or own
        if kt < threads and not _needs_whole_block(k):
            call = f"if ({tid} < {kt}) {call}"
        lines.append(f"        case {i}: {call}{' __syncthreads();' if shared else ''} break;")
    lines += [
        "      }",
        "    }",
        "    __threadfence();",
        "    __syncthreads();",
        f"    if ({lead}) tl_signal_add(flags + k_op, k_hi - k_lo);  // this segment's rTasks are done",
        "  }",
        "}"]
    return "\n".join(lines) + "\n"


def _needs_whole_block(kernel) -> bool:
    """Barriers or shuffles: every thread of the block must call it (guarded when it has fewer threads)."""
    return kernel_facts(kernel).whole_block
