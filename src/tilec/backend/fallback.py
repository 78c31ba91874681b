"""What a persistent plan step needs besides its launch (issue #15): the facts that decide whether its grid can
be co-resident, and the steps that do the same work when it cannot.

A persistent kernel (Rammer's rProgram, Grinder's device loop / if) has blocks that wait on each other
(``tl_wait_geq``, ``tl_grid_barrier``), so every block of its grid must be resident at once; a grid that is
not hangs the GPU. The compiler argues residency from ``num_sms`` and ``__launch_bounds__``, but the GPU that
runs the plan decides (registers ptxas really gave, another GPU, MPS or MIG slices). So each such step of
``plan.json`` carries:

- ``resident``: the target arch, the ``__launch_bounds__`` minimum blocks per SM and the static shared
  bytes its IR declares, from which a runtime without an occupancy API (the emulator) computes how many
  blocks an SM holds (``runtime/residency.py``);
- ``fallback``: steps with no co-residency, built here for an rProgram (each rOperator's kernel launched on
  its own, in data order) and by ``plan.py`` for a device loop / if (the host-driven loop / if step over
  the body's kernels, as the plan was before Grinder). Every kind of persistent kernel has one.

The fallback's buffers are the persistent step's own arguments, which are all live at that step, so it
needs no lifetimes or arena space of its own.
"""
from __future__ import annotations

from ..ir.attributes import SymbolRef
from ..ir.core import Operation, lookup_symbol
from ..ir.diagnostics import CompileError

PERSISTENT_KINDS = ("persistent", "device_loop", "device_if")


def residency(module: Operation, kernel: Operation) -> dict:
    """``{"arch", "blocks_per_sm", "smem_static"}`` of a persistent ``kernel.func``: the target, the blocks per
    SM its ``__launch_bounds__`` asks ptxas for (so registers never limit residency below it), and the bytes
    of the shared arrays it declares (``launch_resources.static_shared_bytes``: an rProgram overlays its
    members' arrays in one arena; a device loop's stage functions keep their own)."""
    from .launch_resources import static_shared_bytes
    a = kernel.attributes
    if a.get("kind") == "persistent":
        facts = next(o for o in kernel.body.ops if o.name == "rprog.program").attributes
    else:
        facts = a["control"]
    return {"arch": facts["arch"], "blocks_per_sm": int(facts["blocks_per_sm"]),
            "smem_static": static_shared_bytes(kernel)}


def rammer_fallback(module: Operation, kernel: Operation, args: list, launch_step) -> list:
    """The steps of rProgram ``kernel`` launched with buffers ``args`` (its params' order) as plain launches:
    every rOperator's kernel (the member, or the variant tile or one-block twin the program runs) over its
    own grid, in the rOperators' order made topological by data (a launch follows every launch writing one
    of its inputs). ``launch_step(module, op, ins, outs)`` is the planner's own step builder."""
    bound = {p["name"]: b for p, b in zip(kernel.attributes["params"], args)}
    entries = []
    for op, k in zip(_operators(kernel, "rprog.operator"), _kernels(module, kernel, "rprog.operator")):
        roles = [p["role"] for p in k.attributes["params"]]
        names = [bound[x] for x in op.attributes["args"]]
        entries.append((k.sym_name, [n for n, r in zip(names, roles) if r == "in"],
                        [n for n, r in zip(names, roles) if r == "out"]))
    steps = []
    for name, ins, outs in data_order(entries, f"persistent kernel @{kernel.sym_name}"):
        launch = Operation("kernel.launch", attributes={"kernel": SymbolRef(name)}, loc=kernel.loc)
        steps.append(launch_step(module, launch, ins, outs))
    return steps


def _operators(kernel: Operation, op_name: str) -> list:
    return [o for o in kernel.body.ops if o.name == op_name]


def _kernels(module: Operation, kernel: Operation, op_name: str) -> list:
    """The ``kernel.func`` each ``op_name`` op of ``kernel``'s body names, in body order."""
    out = []
    for o in _operators(kernel, op_name):
        ref = o.attributes["kernel"]
        k = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) else None
        if k is None or k.name != "kernel.func":
            raise CompileError.at(f"persistent kernel @{kernel.sym_name} runs {ref}, which is not a kernel of "
                                  "the module", kernel.loc)
        out.append(k)
    return out


def data_order(entries: list, what: str) -> list:
    """``entries`` (name, ins, outs) stably sorted so that each comes after every entry writing one of its
    inputs (all of them: several may write parts of one buffer). A cycle means the program ``what`` itself
    could never finish: a tilec bug, so not a CompileError (exit 3, not 1)."""
    writers: dict = {}
    for i, (_, _, outs) in enumerate(entries):
        for b in outs:
            writers.setdefault(b, set()).add(i)
    deps = [set().union(*(writers.get(b, set()) for b in ins)) - {i} for i, (_, ins, _) in enumerate(entries)]
    done, order = set(), []
    while len(order) < len(entries):
        ready = [i for i in range(len(entries)) if i not in done and deps[i] <= done]
        if not ready:
            raise RuntimeError(f"{what}: its rOperators' data dependences form a cycle")
        done.add(ready[0])
        order.append(entries[ready[0]])
    return order
