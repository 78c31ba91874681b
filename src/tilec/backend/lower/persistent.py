"""Persistent-kernel codegen for an rProgram (Rammer, DESIGN §5): one ``kernel.func`` of kind ``persistent``.

The source is the prelude, one ``__device__`` function per rOperator (its kernel's block body with a virtual
block index, ``emit.emit_device_function``), the schedule as constant tables, and a kernel where block
``v`` (vEU ``v``) walks its segments in order (block-range dispatch):

1. if the segment has waits, the block's threads share them out and each spins on its ``flags[u] >= step``
   with ``tl_wait_geq`` (which fences after), so many waits cost about one round trip; then the block
   meets at ``__syncthreads``;
2. it runs the segment's rTasks (virtual blocks ``lo..hi-1``); members with fewer threads than the block run
   on the first threads only (they have no barriers, ``analysis/rammer/schedule.group_shape``); members with
   barriers or shared memory meet at ``__syncthreads`` between tasks, since the next task reuses the arrays;
3. every thread fences its writes, the block meets, and thread 0 raises ``flags[v]`` to the number of
   segments done with ``tl_signal``.

``__launch_bounds__(threads, blocks_per_sm)`` makes ptxas keep registers low enough that every vEU is
resident at once, which the waits need (a non-resident vEU would never run).
"""
from __future__ import annotations

from ...ir.attributes import SymbolRef
from ...ir.core import lookup_symbol
from ...ir.diagnostics import CompileError
from ..cstyle import CUDA, CStyleLanguage, safe_comment


def _table(ctype: str, name: str, values: list) -> str:
    values = values or [0]  # no zero-length arrays
    # Global, not __constant__: a large rProgram's tables outgrow the 64 KB constant bank.
    return f"__device__ const {ctype} {name}[{len(values)}] = {{{', '.join(str(v) for v in values)}}};"


def emit_persistent(op, lang: CStyleLanguage = CUDA) -> str:
    from ..emit import emit_device_function, kernel_name, prelude_text
    module = op.parent_op
    name = kernel_name(op)
    a = op.attributes
    ops = op.body.ops
    program = next(o for o in ops if o.name == "rprog.program").attributes
    operators = [o.attributes for o in ops if o.name == "rprog.operator"]
    veus = [o.attributes for o in ops if o.name == "rprog.veu"]
    threads = a["block"][0]
    lines = [prelude_text().rstrip("\n"), "",
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
        lines.extend(emit_device_function(k, f"{name}_op{i}", lang))
    seg_begin, segs, waits = [0], [], []
    for v in veus:
        for (i, lo, hi), wait in zip(v["segments"], v["waits"]):
            segs += [i, lo, hi, len(waits) // 2, len(waits) // 2 + len(wait)]
            for u, step in wait:
                waits += [u, step]
        seg_begin.append(len(segs) // 5)
    lines += ["", _table("int", f"{name}_seg_begin", seg_begin), _table("int", f"{name}_seg", segs),
              _table("int", f"{name}_wait", waits), ""]
    params = []
    for p in a["params"]:
        if p["role"] == "in":
            params.append(f"const {lang.ctype(p['dtype'])}*{lang.restrict} {p['name']}")
        else:  # read back by later rTasks: no __restrict__, so no non-coherent loads of them
            params.append(f"{lang.ctype(p['dtype'])}* {p['name']}")
    lines.append(f"{lang.kernel_prefix} __launch_bounds__({threads}, {program['blocks_per_sm']}) "
                 f"{name}({', '.join(params)}) {{")
    t = f"{name}_seg"
    lines += [
        "  const int k_v = blockIdx.x;",
        "  const bool k_lead = threadIdx.x == 0;",
        f"  for (int k_s = {name}_seg_begin[k_v]; k_s < {name}_seg_begin[k_v + 1]; ++k_s) {{",
        f"    const int k_op = {t}[5 * k_s], k_lo = {t}[5 * k_s + 1], k_hi = {t}[5 * k_s + 2];",
        f"    const int k_w0 = {t}[5 * k_s + 3], k_w1 = {t}[5 * k_s + 4];",
        "    if (k_w0 < k_w1) {",
        f"      for (int k_w = k_w0 + (int)threadIdx.x; k_w < k_w1; k_w += {threads})",
        f"        tl_wait_geq(flags + {name}_wait[2 * k_w], {name}_wait[2 * k_w + 1]);",
        "      __syncthreads();",
        "    }",
        "    for (int k_b = k_lo; k_b < k_hi; ++k_b) {",
        "      switch (k_op) {"]
    for i, (o, k) in enumerate(zip(operators, kernels)):
        call = f"{name}_op{i}({', '.join(o['args'] + ['k_b'])});"
        kt = k.attributes["block"][0]
        shared = any(s.name in ("kernel.barrier", "kernel.shared", "kernel.warp_reduce") for s in k.walk()) \
            or "__syncthreads" in k.attributes.get("source", "")
        if kt < threads:
            call = f"if (threadIdx.x < {kt}) {call}"
        lines.append(f"        case {i}: {call}{' __syncthreads();' if shared else ''} break;")
    lines += [
        "      }",
        "    }",
        "    __threadfence();",
        "    __syncthreads();",
        f"    if (k_lead) tl_signal(flags + k_v, k_s - {name}_seg_begin[k_v] + 1);",
        "  }",
        "}"]
    return "\n".join(lines) + "\n"
