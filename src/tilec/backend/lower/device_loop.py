"""Device-side control flow (Grinder / Cocktailer, DESIGN §6): one ``kernel.func`` of kind ``device_loop``
(a ``cf.loop``) or ``device_if`` (a ``cf.if``), launched once with every block resident.

Its params are the control op's values, in the order ``control_values`` gives (``passes/grinder.py`` builds
the kernel and ``backend/plan.py`` binds the buffers from the same list), then ``bar``: two i32s, the grid
barrier's arrival count and generation, zeroed by the executor before the launch. The kernel holds one
``__device__`` function per body kernel (``persistent.device_function``: its block body with a virtual block
index) and runs, in every block:

- a loop: copy the initial carried values in, then ``for (it = 0; it < trip && cond; ++it)``: each stage
  walks its virtual blocks ``v = blockIdx.x; v < tasks; v += grid`` and ends at a grid barrier; then the
  carry step (yields → carried values, scan yields → row ``it`` of the scan outputs, the next iteration
  number and the condition, read by every block *before* the barrier that ends the step, since the next
  iteration may overwrite the yield right after it); finally the carried values → the loop's results;
- an if: every block reads the predicate from device memory, runs the taken branch's stages with a barrier
  after each, and copies that branch's yields into the results.

Stages with fewer threads than the block run on its first threads only, or, when they have barriers, guarded
(rammer's ``guarded_device_function``: every thread calls them and meets their barriers, the extra threads
skip the work); every thread reaches every ``tl_grid_barrier`` (``cuda_prelude.h``), which yields in
the emulator instead of spinning. ``__launch_bounds__(threads, blocks_per_sm)`` keeps every block resident.
"""
from __future__ import annotations

from ...analysis.hardware import target_spec
from ...analysis.rammer.shared import shared_bytes
from ...ir.attributes import SymbolRef
from ...ir.core import lookup_symbol
from ...ir.diagnostics import CompileError
from ...ir.opspec import is_view
from ..cstyle import CUDA, CStyleLanguage, kernel_name, prelude_text, safe_comment
from ..kernel_facts import kernel_facts
from .persistent import device_function, kernarg_fill

BARRIER = "bar"  # the trailing i32[2] param: arrivals, generation


def args_table(spec, buffers: int, threads_smem: int, per_sm: int) -> bool:
    """Whether the stage calls read their buffers from a shared pointer table (as Rammer's rPrograms do) instead
    of the kernel's parameters. On a target with a per-wave scalar register file (AMD: ``register_files``'
    ``sgprs_per_wave_max``) uniform pointers live in SGPRs, two each, for the whole loop: past half the file
    (the rest holds the loop's own uniform state) hipcc spilled them (nasrnn_loop's 65 buffers: 74 SGPR spills).
    Only when the table's LDS keeps every block resident (``threads_smem``: the stages' shared bytes per block)."""
    sgprs = spec.register_files.get("sgprs_per_wave_max", 0)
    table = 8 * buffers
    return bool(sgprs) and 2 * buffers > sgprs // 2 and per_sm * (threads_smem + table) <= spec.smem_per_sm_bytes


def root(v):
    """The value whose bytes ``v`` shares: views (reshape, squeeze, ...) never move data."""
    while v.defining_op is not None and is_view(v.defining_op):
        v = v.defining_op.operands[0]
    return v


def control_values(op) -> list:
    """``[(value, role)]``: the params of the device kernel for ``cf.loop`` / ``cf.if`` ``op``. Inputs
    (``in``) are the op's operands, then the outside values its bodies read; outputs (``out``) are the loop's
    block arguments, every launch result in the bodies, then the op's results. Views stand for their root."""
    bodies = [r.block for r in op.regions]
    inside = {id(a) for b in bodies for a in b.args}
    launches = [o for b in bodies for o in b.ops if o.name == "kernel.launch"]
    inside |= {id(r) for o in launches for r in o.results}
    ins, outs, seen = [], [], set()

    def take(v, into):
        v = root(v)
        if id(v) not in seen:
            seen.add(id(v))
            into.append(v)
    for v in op.operands:
        take(v, ins)
    for b in bodies:
        for o in b.ops:
            for v in o.operands:
                if id(root(v)) not in inside:
                    take(v, ins)
    for b in bodies:
        for a in b.args:
            take(a, outs)
    for o in launches:
        for r in o.results:
            take(r, outs)
    for r in op.results:
        take(r, outs)
    return [(v, "in") for v in ins] + [(v, "out") for v in outs]


def _copy(src: str, dst: str, n: int, threads: int, grid: int, row: str = "") -> list:
    """Grid-strided copy of ``n`` elements of ``src`` into ``dst`` (at element ``row * n`` when a row)."""
    at = f"{row} * {n}LL + k_e" if row else "k_e"
    return [f"for (long long k_e = k_tid; k_e < {n}LL; k_e += {grid * threads}LL) "
            f"TL_ST({dst}, {at}, TL_LD({src}, k_e));"]


def emit_device_loop(op, lang: CStyleLanguage = CUDA) -> str:
    """The complete CUDA source of a ``device_loop`` / ``device_if`` ``kernel.func``."""
    module = op.parent_op
    name = kernel_name(op)
    a = op.attributes
    ctl = a["control"]
    stages = [s.attributes for s in op.body.ops if s.name == "utask.stage"]
    threads, grid = a["block"][0], a["grid"][0]
    per_sm = ctl["blocks_per_sm"]
    size = {p["name"]: _numel(p["shape"]) for p in a["params"]}
    lines = [prelude_text(lang.prelude).rstrip("\n"), "",
             f"// tilec {a['kind']} kernel {name}: grid {grid} ({per_sm} blocks/SM, all resident), "
             f"{threads} threads, {len(stages)} stages, a grid barrier after each",
             f"// {safe_comment(a.get('origin', ''))}"]
    fns = {}
    for s in stages:
        ref = s["kernel"]
        if ref.name in fns:
            continue
        k = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) and module is not None else None
        if k is None or k.name != "kernel.func":
            raise CompileError.at(f"{a['kind']} kernel {name}: stage {ref} is not a kernel of the module", op.loc)
        fns[ref.name] = (f"{name}_f{len(fns)}", k)
        lines.append("")
        # Narrower stages that need the whole block run guarded; wider ones (barrier-free, the pass checks)
        # take their thread index as a parameter, so any thread may run any of their threads.
        kt = k.attributes["block"][0]
        lines.extend(device_function(k, fns[ref.name][0], guarded=kt < threads and _whole_block(k),
                                     overlay=False, lang=lang, virtual_threads=kt > threads))
    buffers = [p for p in a["params"] if p["name"] != BARRIER]
    table = args_table(target_spec(op), len(buffers), sum(shared_bytes(k) for _, k in fns.values()), per_sm)
    ref = {p["name"]: f"({'const ' if p['role'] == 'in' else ''}{lang.ctype(p['dtype'])}*)k_args[{i}]"
           for i, p in enumerate(buffers)} if table else {}
    sig = []
    for p in a["params"]:
        if p["role"] == "in":
            sig.append(f"const {lang.ctype(p['dtype'])}*{lang.restrict} {p['name']}")
        else:  # written and read back by other blocks: no __restrict__ (no non-coherent loads)
            sig.append(f"{lang.ctype(p['dtype'])}* {p['name']}")
    lines += ["", f"{lang.kernel_prefix} {lang.bounds(threads, per_sm)}{name}({', '.join(sig)}) {{",
              "  int k_gen = 0;  // grid barriers passed: the same sequence in every block",
              f"  const long long k_tid = (long long)blockIdx.x * {threads} + threadIdx.x;"]
    if table:   # see args_table: the stage calls read their buffers from here
        fill = [f"k_args[{i}] = {p['name']};" for i, p in enumerate(buffers)]
        fill = ["  if (threadIdx.x == 0) {", *("    " + " ".join(fill[j:j + 8]) for j in range(0, len(fill), 8)), "  }"]
        if lang.kernarg_ptr and a["params"][:len(buffers)] == buffers:
            # HIP: every thread copies by index from the kernarg segment (persistent.emit_persistent says why:
            # by name, nasrnn-small's 122 pointers spilled 176 SGPRs at the kernel's entry).
            fill = ["  " + kernarg_fill(lang, len(buffers), threads)]
        lines += [f"  TL_SHARED(const void*, k_args, [{len(buffers)}]);  // the buffers, read at each stage call",
                  *fill, "  __syncthreads();"]

    def run(branch: str, indent: str) -> list:
        out = []
        for i, s in enumerate(stages):
            if s["branch"] != branch:
                continue
            fn, k = fns[s["kernel"].name]
            args = [ref.get(x, x) for x in s["args"]]
            call = f"{fn}({', '.join(args + ['k_v'])});"
            kt = k.attributes["block"][0]
            if kt < threads and not _whole_block(k):  # a guarded stage: every thread calls it
                call = f"if (threadIdx.x < {kt}) {call}"
            elif kt > threads:  # a barrier-free stage wider than the block: its threads in chunks
                call = (f"for (int k_vt = threadIdx.x; k_vt < {kt}; k_vt += {threads}) "
                        f"{fn}({', '.join(args + ['k_v', 'k_vt'])});")
            shared = kernel_facts(k).synchronises
            out += [f"{indent}// stage {i}: @{s['kernel'].name}, {s['tasks']} virtual blocks",
                    f"{indent}for (int k_v = blockIdx.x; k_v < {s['tasks']}; k_v += {grid}) {{",
                    f"{indent}  {call}{' __syncthreads();  // the next virtual block reuses its arrays' if shared else ''}",
                    f"{indent}}}",
                    f"{indent}tl_grid_barrier({BARRIER}, k_gen, {grid});"]
        return out

    def copy(src, dst, indent, row=""):
        return [indent + ln for ln in _copy(src, dst, size[dst] if not row else size[src],
                                            threads, grid, row)]
    if a["kind"] == "device_loop":
        # Thread 0 of each block reads the trip count and the conditions and __syncthreads_or hands them to
        # the block: one load per block, not per thread. A constant trip count is baked in.
        if ctl.get("trip_static") is not None:
            trip, head = f"{ctl['trip_static']}LL", "k_it < k_trip && k_cond"
            lines.append(f"  const long long k_trip = {trip};")
        else:
            head = "__syncthreads_or(threadIdx.x == 0 && k_it < k_trip && k_cond)"
            lines.append(f"  const long long k_trip = threadIdx.x == 0 ? (long long)TL_LD({ctl['trip']}, 0) : 0LL;")
        lines.append(f"  bool k_cond = __syncthreads_or(threadIdx.x == 0 && (bool)TL_LD({ctl['cond']}, 0));")
        for src, dst in zip(ctl["init"], ctl["args"]):
            lines += copy(src, dst, "  ")
        lines += [f"  if (k_tid == 0) {{ TL_ST({ctl['iter']}, 0, 0LL); TL_ST({ctl['cond_arg']}, 0, k_cond); }}",
                  f"  tl_grid_barrier({BARRIER}, k_gen, {grid});",
                  f"  for (long long k_it = 0; {head}; ++k_it) {{"]
        lines += run("body", "    ")
        lines.append("    // carry step: every block reads the stages' final yields before the next barrier")
        if not ctl["cond_static"]:
            lines.append(f"    k_cond = __syncthreads_or(threadIdx.x == 0 && (bool)TL_LD({ctl['cond_yield']}, 0));")
        for src, dst in zip(ctl["scan_yields"], ctl["scan_results"]):
            lines += copy(src, dst, "    ", row="k_it")
        for src, dst in zip(ctl["yields"], ctl["args"]):
            if src != dst:
                lines += copy(src, dst, "    ")
        lines += [f"    if (k_tid == 0) {{ TL_ST({ctl['iter']}, 0, k_it + 1); TL_ST({ctl['cond_arg']}, 0, k_cond); }}",
                  f"    tl_grid_barrier({BARRIER}, k_gen, {grid});",
                  "  }"]
        for src, dst in zip(ctl["args"], ctl["results"]):
            lines += copy(src, dst, "  ")
    else:
        lines += [f"  if (__syncthreads_or(threadIdx.x == 0 && (bool)TL_LD({ctl['cond']}, 0))) {{"]
        lines += run("then", "    ")
        for src, dst in zip(ctl["then_yields"], ctl["results"]):
            lines += copy(src, dst, "    ")
        lines.append("  } else {")
        lines += run("else", "    ")
        for src, dst in zip(ctl["else_yields"], ctl["results"]):
            lines += copy(src, dst, "    ")
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _whole_block(k) -> bool:
    """Barriers or shuffles: every thread of the block must call the stage (guarded when it is narrower;
    the pass allows that only for rammer-guardable kernels)."""
    return kernel_facts(k).whole_block


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
