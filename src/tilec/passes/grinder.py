"""grinder: move Loop / If control flow onto the device (Cocktailer, OSDI'23; DESIGN §6).

Runs after lower-cuda (and rammer). For each ``cf.loop`` / ``cf.if`` of ``@main`` whose bodies are only
kernel launches (plus views, constants and the yield), and whose kernels can run as ``__device__`` functions
with a virtual block index (rammer's ``member_of`` test), the pass builds one ``kernel.func`` of kind
``device_loop`` / ``device_if`` (``backend/lower/device_loop.py``) and marks the op ``placement = "device"``
with a ``grinder`` dict naming that kernel, the grid and why. The plan then launches that kernel once
instead of driving the body from the host: no trip-count, condition or predicate read-back. Any other op is
marked ``placement = "host"`` with the reason. The grid is the cheapest multiple of the SM count by estimate
(``analysis/grinder.py``), capped so every block is resident (the grid barriers need that).
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..ir.attributes import SymbolRef
from ..ir.core import Operation, Region, lookup_symbol
from .base import ModulePass

_TRIVIAL = ("tile.const", "cf.yield")


@dataclasses.dataclass
class Grinder(ModulePass):
    """Run each Loop whose body is a few kernels as one persistent launch with grid barriers between body
    stages and the trip count and condition evaluated on the device; evaluate If predicates on the device
    (one launch holding both branches); grid = cheapest multiple of ``arch``'s SM count by estimate. Every
    decision is recorded on the op (``placement``, ``grinder``)."""

    name: ClassVar[str] = "grinder"
    arch: str = ""   # empty: the module's target (tilec.target)

    def apply(self, module: Operation) -> None:
        from ..analysis.hardware import target_spec
        from ..ir.core import main_function
        spec = target_spec(module, self.arch)
        fn = main_function(module)
        index = sum(1 for op in module.body.ops if op.name == "kernel.func"
                    and op.attributes.get("kind") in ("device_loop", "device_if"))
        for op in fn.walk():
            if op.name not in ("cf.loop", "cf.if") or "placement" in op.attributes:
                continue
            reason = _why_host(module, op, fn)
            if reason is None:
                hoisted = split_branches(module, op) if op.name == "cf.if" else []
                twins: list = []
                func, decision = build_device_kernel(module, op, f"grinder{index}", spec, twins)
                if func is not None and op.name == "cf.if":
                    decision["branch_split"] = _split_note(hoisted)
                if func is None:
                    reason = decision
                else:
                    for twin in twins:   # the one-block twins of cluster kernels the stages run
                        module.body.insert_before(fn, twin)
                    module.body.insert_before(fn, func)
                    op.attributes["placement"] = "device"
                    op.attributes["grinder"] = decision
                    index += 1
                    continue
            op.attributes["placement"] = "host"
            op.attributes["grinder"] = {"reason": reason}


def _why_host(module, op, fn) -> str | None:
    """Why ``op`` must stay host-driven, or None when its bodies are kernels only."""
    from ..ir.opspec import is_view
    if op.parent_op is not fn:
        return "nested in another control-flow op: only @main's own loops and ifs move"
    for region in op.regions:
        for inner in region.block.ops:
            if inner.name in _TRIVIAL or is_view(inner) or inner.name == "kernel.launch":
                continue
            return f"the body runs {inner.name} on the host (no kernel)"
    if op.name == "cf.loop":
        body = op.body
        term = body.terminator
        n = len(op.operands) - 2
        args = list(body.args[2:])
        from ..backend.lower.device_loop import root
        for k, y in enumerate(term.operands[1:1 + n]):
            y = root(y)
            if any(y is a for a in body.args[:2]) or any(y is a for j, a in enumerate(args) if j != k):
                return "a carried value is yielded into another argument's place (a swap needs a copy stage)"
        for y in term.operands[1 + n:]:
            if any(root(y) is a for a in body.args):
                return "a scan output is a block argument (the carry step would overwrite it)"
    if not any(inner.name == "kernel.launch" for r in op.regions for inner in r.block.ops):
        return "no kernel in the body: nothing to launch"
    return None


def split_branches(module, op) -> list:
    """Branch split (Cocktailer, DESIGN §6): hoist the launches common to both branches of ``cf.if`` ``op``
    (the same kernel, or two kernels with the same body, on the same operands, none of them computed in the
    branch) to just before the if, so they run once, unconditionally, and the branches keep only what
    differs. Repeats until nothing more moves (a hoisted result can make its users common too). Returns the
    hoisted kernels' names in order; a kernel left without any launch is dropped from the module."""
    from ..backend.emit import emit_kernel
    then_b, else_b = op.regions[0].block, op.regions[1].block
    text: dict = {}

    def body(name):  # a kernel's CUDA text with its own name taken out: equal texts compute the same
        if name not in text:
            text[name] = emit_kernel(lookup_symbol(module, name)).replace(name, "@")
        return text[name]

    def outside(v, block):
        return v.defining_op is None and v.owner is not block or \
            v.defining_op is not None and v.defining_op.parent is not block

    hoisted, moved = [], True
    while moved:
        moved = False
        for a in [o for o in then_b.ops if o.name == "kernel.launch"]:
            if not all(outside(v, then_b) for v in a.operands):
                continue
            ka = a.attributes["kernel"].name
            twin = next((b for b in else_b.ops if b.name == "kernel.launch"
                         and len(b.operands) == len(a.operands) and all(x is y for x, y in zip(a.operands, b.operands))
                         and [r.type for r in b.results] == [r.type for r in a.results]
                         and (b.attributes["kernel"].name == ka or body(b.attributes["kernel"].name) == body(ka))),
                        None)
            if twin is None:
                continue
            then_b.remove(a)
            op.parent.insert_before(op, a)
            for old, new in zip(twin.results, a.results):
                old.replace_all_uses_with(new)
            kb = twin.attributes["kernel"].name
            twin.erase()
            if kb != ka and not any(getattr(o.attributes.get("kernel"), "name", None) == kb for o in module.walk()):
                lookup_symbol(module, kb).erase()
            hoisted.append(ka)
            moved = True
    return hoisted


def _split_note(hoisted: list) -> str:
    if not hoisted:
        return "none: no launch is common to both branches; both run inside the one launch"
    names = ", ".join(f"@{k}" for k in hoisted)
    return (f"hoisted {len(hoisted)} launch(es) common to both branches before the if ({names}): they run "
            "once as launches of their own, the branches keep only what differs")


def build_device_kernel(module, op, name: str, spec, twins: list | None = None):
    """``(kernel.func, decision dict)`` for ``op``, or ``(None, reason)`` when its kernels cannot share
    one resident grid. A body kernel with a thread-block cluster runs as its one-block twin
    (``backend/lower/cluster.declustered``), named ``<kernel>_nc``; the twins are appended to ``twins``
    for the caller to add to the module with the kernel."""
    from ..analysis.grinder import choose_grid
    from ..backend.lower.device_loop import BARRIER, control_values, root
    from .rammer import member_of
    values = control_values(op)
    pname, params, count = {}, [], {"in": 0, "out": 0}
    for v, role in values:
        pname[id(v)] = f"{'a' if role == 'in' else 'r'}{count[role]}"
        count[role] += 1
        params.append({"name": pname[id(v)], "dtype": v.type.dtype, "shape": list(v.type.shape), "role": role})
    params.append({"name": BARRIER, "dtype": "i32", "shape": [2], "role": "out"})

    def nm(v):
        return pname[id(root(v))]
    stages, members, made = [], [], {}
    branches = ["body"] if op.name == "cf.loop" else ["then", "else"]
    for branch, region in zip(branches, op.regions):
        for inner in region.block.ops:
            if inner.name != "kernel.launch":
                continue
            m, twin = _member_or_twin(module, inner, len(members), made)
            if twin is not None and twins is not None:
                twins.append(twin)
            if m is None:
                return None, (f"kernel @{inner.attributes['kernel'].name} cannot run as a device function "
                              "(2-D grid or block, gridDim/blockDim, dynamic shared memory or a thread-block "
                              "cluster)")
            members.append(m)
            k = made.get(m.kernel) or lookup_symbol(module, m.kernel)
            it_in, it_out = iter(inner.operands), iter(inner.results)
            args = [nm(next(it_in) if p["role"] == "in" else next(it_out)) for p in k.attributes["params"]]
            stages.append({"kernel": SymbolRef(m.kernel), "tasks": m.blocks, "args": args, "branch": branch})
    cond_on_device = op.name == "cf.loop" and not _cond_static(op)
    # The host-driven schedule reads a data-dependent loop condition or an if's predicate back every time.
    choice = choose_grid(members, spec, cond_on_device or op.name == "cf.if")
    if choice is None:
        return None, "no block shape runs every body kernel resident on one SM (threads, barriers, registers or smem)"
    control = {"arch": spec.arch, "blocks_per_sm": choice.blocks_per_sm,
               "iter_seconds": float(f"{choice.device_iter_seconds:.4g}"),
               "host_iter_seconds": float(f"{choice.host_iter_seconds:.4g}")}
    if op.name == "cf.loop":
        body, term = op.body, op.body.terminator
        n = len(op.operands) - 2
        control.update({
            "trip": nm(op.operands[0]), "cond": nm(op.operands[1]),
            "init": [nm(v) for v in op.operands[2:]], "iter": nm(body.args[0]), "cond_arg": nm(body.args[1]),
            "args": [nm(a) for a in body.args[2:]], "cond_yield": nm(term.operands[0]),
            "cond_static": not cond_on_device, "yields": [nm(v) for v in term.operands[1:1 + n]],
            "scan_yields": [nm(v) for v in term.operands[1 + n:]], "results": [nm(r) for r in op.results[:n]],
            "scan_results": [nm(r) for r in op.results[n:]]})
        if _trip_static(op) is not None:
            control["trip_static"] = _trip_static(op)
    else:
        control.update({"cond": nm(op.operands[0]),
                        "then_yields": [nm(v) for v in op.regions[0].block.terminator.operands],
                        "else_yields": [nm(v) for v in op.regions[1].block.terminator.operands],
                        "results": [nm(r) for r in op.results]})
    kind = "device_loop" if op.name == "cf.loop" else "device_if"
    region = Region()
    for s in stages:
        region.block.append(Operation("utask.stage", attributes=s, loc=op.loc))
    what = op.loc.name if op.loc is not None and getattr(op.loc, "name", None) else op.name
    func = Operation("kernel.func", attributes={
        "sym_name": SymbolRef(name), "grid": [choice.grid, 1, 1], "block": [choice.threads, 1, 1], "smem": 0,
        "params": params, "kind": kind, "origin": f"grinder: {op.name} {what}",
        "flops": _whole(op, stages, members, "flops"), "bytes_modelled": _whole(op, stages, members, "bytes"),
        "control": control}, regions=[region], loc=op.loc)
    decision = {"kernel": SymbolRef(name), "grid": choice.grid, "blocks_per_sm": choice.blocks_per_sm,
                "threads": choice.threads, "stages": len(stages),
                "barriers": (len(stages) + 1) if op.name == "cf.loop" else len(stages),
                "host_syncs": 0, "grid_why": choice.why}
    if op.name == "cf.loop":
        decision["condition"] = "device (read by every block each iteration)" if cond_on_device else \
            "static (never read)"
    else:
        decision["predicate"] = "device (read by every block)"
    return func, decision


def _member_or_twin(module, launch, index: int, made: dict) -> tuple:
    """``(Member or None, new twin kernel or None)`` of a body launch: a cluster kernel's blocks share
    tiles, so a device loop runs its one-block twin instead (made once per kernel, kept in ``made``)."""
    from ..backend.lower.cluster import TWIN_SUFFIX
    from .rammer import member_of, twin_member
    found = twin_member(module, launch, index)
    if found is None:
        return member_of(module, launch, index), None
    m, twin, k = found
    name = k.sym_name + TWIN_SUFFIX
    if name in made:
        return dataclasses.replace(m, kernel=name), None
    twin.attributes["sym_name"] = SymbolRef(name)
    made[name] = twin
    return dataclasses.replace(m, kernel=name), twin


def _whole(op, stages, members, what: str) -> int:
    """A figure of the whole launch: a loop's body times its trip count (the constant one: a data-dependent
    exit may stop earlier, so it is an upper bound; with no constant, one iteration), or an if's larger
    branch (one of them runs)."""
    if op.name == "cf.loop":
        return (_trip_static(op) or 1) * sum(getattr(m, what) for m in members)
    return max(sum(getattr(m, what) for s, m in zip(stages, members) if s["branch"] == b) for b in ("then", "else"))


def _cond_static(op) -> bool:
    """The loop condition never changes: the body passes its condition argument on unchanged (or yields a
    constant true) and it starts true. Then the kernel never reads it after the start."""
    from ..backend.plan import const_value
    body = op.body
    y = body.terminator.operands[0]
    c0 = const_value(op.operands[1])
    if c0 is None or not bool(c0):
        return False
    cy = const_value(y)
    return y is body.args[1] or (cy is not None and bool(cy))


def _trip_static(op):
    """The trip count when it is a constant of the IR (baked into the kernel), else None."""
    from ..backend.plan import const_value
    trip = const_value(op.operands[0])
    return None if trip is None else int(trip)
