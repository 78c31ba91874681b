"""rammer: pack independent kernels into persistent rPrograms (Rammer, OSDI'20; DESIGN §5).

Runs after lower-cuda. Each ``kernel.launch`` of ``@main`` whose kernel can run as a ``__device__`` function
(1-D grid and block, no ``gridDim``/``blockDim``/``blockIdx.y|z``, no dynamic shared memory) is an
rOperator with one rTask per block. Wavefront scheduling (``analysis/rammer``) picks groups whose packed
estimate beats launching them one after another; each group becomes one persistent ``kernel.func``
(kind ``persistent``, holding an ``rprog`` program) launched once, with a trailing i32 step-flag buffer the
executor zeroes before every launch. ``@main`` is then re-ordered topologically so the launch sits where all
its inputs exist and before all its users.

Per wave, a member may run one of Roller's alternative tiles instead of its own (``analysis/rammer/
variants``): the chosen variant becomes a kernel of its own (``<kernel>_v<i>``), the ``rprog.operator``
names it and records ``variant`` and ``rtile``, and the persistent kernel runs its body. A kernel with a
thread-block cluster packs as its one-block twin (``<kernel>_nc``, ``backend/lower/cluster.py``), whose
blocks do not read each other's shared memory; unpacked, it keeps its cluster.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..analysis.hardware import target_spec
from ..analysis.rammer import LaunchGraph, Member, choose_groups
from ..analysis.rammer.cost import REGS_ASSUMED
from ..analysis.rammer.graph import outer_operands
from ..analysis.rammer.regs import kernel_regs
from ..analysis.rammer.shared import shared_bytes
from ..backend.lower.variants import Variant, variant_key, variants
from ..backend.kernel_facts import kernel_facts
from ..backend.lower.cluster import TWIN_SUFFIX, declustered
from ..backend.lower.persistent import guardable
from ..ir.attributes import SymbolRef
from ..ir.core import Operation, Region, lookup_symbol, main_function
from ..ir.types import TensorType
from .base import ModulePass
# The latency model's seconds of one launch of a kernel as lowered: the baseline a packing must beat
# (analysis/rammer/cost.sequential_seconds).
from .welder import modelled_seconds


@dataclasses.dataclass
class Rammer(ModulePass):
    """Pack independent kernels of each wave (and adjacent waves, when that wins) into one persistent
    kernel per group, placing rTasks on vEUs at the earliest idle time under ``arch``'s resident-block
    limits; a group is packed only when its estimate beats running its kernels one after another."""

    name: ClassVar[str] = "rammer"
    arch: str = ""   # empty: the module's target (tilec.target)
    variants: bool = True  # per wave, let members take one of Roller's alternative tiles

    def apply(self, module: Operation) -> None:
        spec = target_spec(module, self.arch)
        fn = main_function(module)
        graph = LaunchGraph(fn)
        members, alts, kernels = {}, {}, {}
        solo = {}   # cluster kernels: what the launch costs as it is, not as its packable twin
        rtiles: dict = {}   # Roller's candidates per problem, shared by the kernels' variants
        measured: dict = {}  # variant_key -> [(Variant, Member)]: equal kernels' variants, measured once
        for node, op in enumerate(graph.ops):
            m = member_of(module, op, node)
            if m is None and (found := twin_member(module, op, node)) is not None:
                # A cluster kernel packs as its twin, the node's variant 0 (it joins the module, as
                # <kernel>_nc, only when a packed group takes it); launched alone it keeps its own cost.
                m, twin, k = found
                kernels[node, 0] = Variant(0, {}, twin)
                solo[node] = dataclasses.replace(m, bytes=int(k.attributes.get("bytes_modelled", 0)),
                                                 seconds=modelled_seconds(spec, k))
                m = dataclasses.replace(m, seconds=modelled_seconds(spec, twin))
            elif m is not None:
                k = lookup_symbol(module, m.kernel)
                m = dataclasses.replace(m, seconds=modelled_seconds(spec, k))
            if m is None:
                continue
            members[node] = m
            for v, alt in (self._alternatives(k, spec, rtiles, measured) if self.variants else []):
                alts.setdefault(node, []).append(dataclasses.replace(alt, node=node))
                kernels[node, v.index] = v
        index = sum(1 for op in module.body.ops if op.name == "kernel.func"
                    and op.attributes.get("kind") == "persistent")
        groups = choose_groups(graph, members, spec, alts, solo)
        replaced, swapped = {}, set()
        for placement in groups:
            launches = [graph.ops[n] for n in placement.members]
            chosen = []
            for n, m in zip(placement.members, placement.chosen):
                v = kernels.get((n, m.variant))
                if v is not None:  # a variant tile (or a cluster kernel's twin, variant 0): its kernel
                    suffix = f"_v{v.index}" if v.index else TWIN_SUFFIX   # joins the module by its own name
                    kernel = v.built()
                    kernel.attributes["sym_name"] = SymbolRef(f"{members[n].kernel}{suffix}")
                    module.body.insert_before(fn, kernel)
                    swapped.add(members[n].kernel)
                chosen.append(v)
            func, launch = build_persistent(module, launches, placement, f"rammer{index}", spec.arch,
                                            variants=chosen)
            module.body.insert_before(fn, func)
            replaced[id(launches[0])] = (launches, launch)
            index += 1
        if replaced:
            _rewrite_main(fn, replaced)
            _drop_unused_kernels(module, swapped)


    @staticmethod
    def _alternatives(k: Operation, spec, rtiles: dict, measured: dict) -> list:
        """``(Variant, Member)`` of each of kernel ``k``'s variants a group can take (Member's node left to
        the caller). A kernel equal to one seen before but for name and location (``variant_key``: a
        transformer's layers) reuses that one's Members, measured on its lowered variants, and gets
        variants it lowers only when chosen (the same kernels, at its own location)."""
        if k.attributes.get("kind") != "tiled":   # variants() has none for it: no key to print
            return []
        key = variant_key(k)
        if key in measured:
            return [(Variant(v.index, v.rtile, None, k), alt) for v, alt in measured[key]]
        found = []
        for v in variants(k, spec, rtiles=rtiles):
            alt = kernel_member(v.kernel, 0, v.index)
            if alt is not None:
                found.append((v, dataclasses.replace(alt, seconds=modelled_seconds(spec, v.kernel))))
        measured[key] = found
        return found


def twin_member(module: Operation, op: Operation, node: int):
    """``(Member, twin, kernel)`` for a launch of a thread-block cluster kernel: its blocks share tiles
    with each other, so Rammer and Grinder run its one-block twin (``backend/lower/cluster.declustered``,
    still named as the kernel), whose Member this is. None for any other launch, or an unpackable twin."""
    if op.name != "kernel.launch":
        return None
    k = lookup_symbol(module, op.attributes["kernel"].name)
    twin = declustered(k) if k is not None else None
    m = kernel_member(twin, node) if twin is not None else None
    return None if m is None else (m, twin, k)


def member_of(module: Operation, op: Operation, node: int):
    """The rammer Member for a launch ``op``, or None when its kernel cannot be packed."""
    if op.name != "kernel.launch":
        return None
    return kernel_member(lookup_symbol(module, op.attributes["kernel"].name), node)


def kernel_member(k: Operation, node: int, variant: int = 0):
    """The rammer Member for kernel ``k`` launched at graph node ``node``, or None when it cannot be packed."""
    a = k.attributes
    grid, block = a["grid"], a["block"]
    if a.get("kind") == "persistent" or grid[1:] != [1, 1] or block[1:] != [1, 1] or a.get("smem", 0):
        return None
    # A cluster kernel's blocks share tiles through each other's shared memory, so they must run as one
    # co-scheduled cluster; a vEU runs rTasks one at a time, alone.
    if a.get("cluster", 1) > 1:
        return None
    # A body tied to the real launch shape cannot run with a virtual block index; a hand-written one's
    # shared arrays cannot move into the persistent block's arena.
    facts = kernel_facts(k)
    if facts.shape_bound or ("source" in a and facts.shared):
        return None
    smem = shared_bytes(k)
    barriers = facts.synchronises
    return Member(node, k.sym_name, grid[0], block[0], smem, barriers, int(a.get("flops", 0)),
                  int(a.get("bytes_modelled", 0)), barriers and guardable(k), variant,
                  kernel_regs(k, REGS_ASSUMED), len(a["params"]))


def build_persistent(module, launches, placement, name, arch, variants=None):
    """The persistent ``kernel.func`` for ``launches`` (in placement order) and the ``kernel.launch`` that
    replaces them: params are the group's outside inputs, then every member result, then the flags.
    ``variants[i]``, when given and not None, is the Variant (already in the module) launch ``i`` runs."""
    variants = variants or [None] * len(launches)
    produced = {id(r): (li, ri) for li, op in enumerate(launches) for ri, r in enumerate(op.results)}
    ins, in_name = [], {}
    for op in launches:
        for v in op.operands:
            if id(v) not in produced and id(v) not in in_name:
                in_name[id(v)] = f"a{len(ins)}"
                ins.append(v)
    params = [{"name": in_name[id(v)], "dtype": v.type.dtype, "shape": list(v.type.shape), "role": "in"}
              for v in ins]
    outs, out_name = [], {}
    for op in launches:
        for r in op.results:
            out_name[id(r)] = f"r{len(outs)}"
            outs.append(r)
            params.append({"name": out_name[id(r)], "dtype": r.type.dtype, "shape": list(r.type.shape),
                           "role": "out"})
    # One counter of finished rTasks per rOperator (analysis/rammer/schedule: what segments wait on).
    params.append({"name": "flags", "dtype": "i32", "shape": [len(launches)], "role": "out"})
    body = []
    body.append(Operation("rprog.program", attributes={
        "arch": arch, "veus": placement.veus, "blocks_per_sm": placement.blocks_per_sm,
        "packed_seconds": float(f"{placement.packed_seconds:.6g}"),
        "sequential_seconds": float(f"{placement.sequential_seconds:.6g}")}))
    flops = bytes_ = 0
    for op, secs, var in zip(launches, placement.task_seconds, variants):
        k = lookup_symbol(module, op.attributes["kernel"].name) if var is None else var.kernel
        it_in, it_out = iter(op.operands), iter(op.results)
        args = []
        for p in k.attributes["params"]:
            v = next(it_in) if p["role"] == "in" else next(it_out)
            args.append(in_name.get(id(v)) or out_name[id(v)])
        attrs = {"kernel": SymbolRef(k.sym_name), "tasks": k.attributes["grid"][0], "args": args,
                 "task_seconds": float(f"{secs:.6g}")}
        if var is not None and var.index:
            attrs.update(variant=var.index, rtile=var.rtile)
        body.append(Operation("rprog.operator", attributes=attrs))
        flops += int(k.attributes.get("flops", 0))
        bytes_ += int(k.attributes.get("bytes_modelled", 0))
    for v, (segs, waits) in enumerate(zip(placement.segments, placement.waits)):
        body.append(Operation("rprog.veu", attributes={"id": v, "segments": segs, "waits": waits}))
    region = Region()
    for op in body:
        region.block.append(op)
    func = Operation("kernel.func", attributes={
        "sym_name": SymbolRef(name), "grid": [placement.veus, 1, 1], "block": [placement.threads, 1, 1],
        "smem": 0, "params": params, "kind": "persistent",
        "origin": "rammer: " + ", ".join(op.attributes["kernel"].name if var is None else
                                         f"{op.attributes['kernel'].name} (tile {var.index})"
                                         for op, var in zip(launches, variants)),
        "flops": flops, "bytes_modelled": bytes_}, regions=[region], loc=launches[0].loc)
    types = [r.type for r in outs] + [TensorType((len(launches),), "i32")]
    launch = Operation("kernel.launch", list(ins), types, {"kernel": SymbolRef(name)}, loc=launches[0].loc)
    for i, r in enumerate(outs):
        r.replace_all_uses_with(launch.results[i])
    return func, launch


def _rewrite_main(fn, replaced: dict) -> None:
    """Swap each group's launches for its persistent launch and re-order ``fn`` topologically (stable by
    original position; a group counts as the position of its first member)."""
    ops = list(fn.body.ops)
    gone = {id(op) for launches, _ in replaced.values() for op in launches}
    units = []  # (position, op)
    for pos, op in enumerate(ops):
        if id(op) in replaced:
            units.append((pos, replaced[id(op)][1]))
        elif id(op) not in gone:
            units.append((pos, op))
    for launches, _ in replaced.values():
        for op in launches:
            op.drop_operands()
            fn.body.remove(op)
    for op in list(fn.body.ops):
        fn.body.remove(op)
    defined = set(id(a) for a in fn.body.args)
    ret = [op for _, op in units if op.name == "func.return"]
    pending = [op for _, op in units if op.name != "func.return"]
    while pending:
        for i, op in enumerate(pending):
            if all(id(v) in defined for v in outer_operands(op)):
                fn.body.append(op)
                defined.update(id(r) for r in op.results)
                pending.pop(i)
                break
        else:
            raise AssertionError("rammer: the packed launches form a cycle in @main")
    for op in ret:
        fn.body.append(op)


def _drop_unused_kernels(module, names: set) -> None:
    """Erase the kernels among ``names`` (tiles a variant replaced) that no launch or rOperator names."""
    used = set()
    for op in module.walk():
        if op.name in ("kernel.launch", "rprog.operator"):
            used.add(op.attributes["kernel"].name)
    for op in list(module.body.ops):
        if op.name == "kernel.func" and op.sym_name in names and op.sym_name not in used:
            module.body.remove(op)
