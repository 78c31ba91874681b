"""The launch plan: what ``plan.json`` in a build folder holds, built from a lowered module's ``@main``.

Every SSA value of ``@main`` gets a *buffer* (inputs, weights, kernel and host results; views alias the buffer
they reshape, since a view never moves data). Steps are the launches and host ops in program order, with
their argument buffers. Temporaries are packed into one arena by lifetime (first fit, 256-byte aligned), so a
runtime allocates once and a buffer's bytes are reused once it is dead.

Step indices are the unit of time: a buffer defined by step ``i`` has ``first_use == i``; inputs and weights
exist before step 0 (``first_use == -1``); outputs live until after the last step (``last_use == len(steps)``).
"""
from __future__ import annotations

import math
import re

from ..analysis.hardware import get_arch, module_arch
from ..ir.attributes import DenseAttr, SymbolRef
from ..ir.core import Operation, Value, arg_names, lookup_symbol, main_function
from ..ir.diagnostics import CompileError
from ..ir.opspec import is_view  # noqa: F401  (also re-exported: the passes import it from here)
from ..ir.row_counts import ROWS_ATTR
from ..ir.types import TensorType, itemsize
from ..ir.weights import module_weights
from .launch_resources import static_shared_bytes
from .fallback import rammer_fallback, residency
from .lower.device_loop import control_values

PLAN_VERSION = 1
ALIGN = 256  # bytes: enough for float4 accesses and for cudaMalloc-like alignment of every arena slice
_BAD = re.compile(r"[^A-Za-z0-9_.]")
# Ops that are structure, not work: they produce no buffer of their own and are never a step.
_STRUCTURAL = ("func.return", "tile.const", "cf.yield")
CONTROL = ("cf.loop", "cf.if")


class _Names:
    """Deterministic, unique buffer names: the model's names where there are some, ``t<N>`` otherwise."""

    def __init__(self):
        self.used: set = set()

    def take(self, hint: str) -> str:
        base = _BAD.sub("_", hint) or "t"
        name, n = base, 1
        while name in self.used:
            name, n = f"{base}_{n}", n + 1
        self.used.add(name)
        return name


def value_buffers(module: Operation) -> tuple:
    """``(buffers, value→buffer name)`` for ``@main``; ``buffers`` is an ordered ``{name: dict}``.

    Shared by the planner and by runtimes that run host ops (which need the IR values' arrays)."""
    fn = main_function(module)
    names = _Names()
    buffers: dict = {}
    of: dict = {}

    def add(value: Value, hint: str, kind: str, **extra) -> str:
        t = value.type
        if not isinstance(t, TensorType) or not t.is_static:
            raise CompileError.at(f"value of type {t} has no static shape; fix it with --input-shape",
                                  getattr(value.owner, "loc", None))
        name = names.take(hint)
        buffers[name] = {"name": name, "dtype": t.dtype, "shape": list(t.shape), "bytes": t.nbytes,
                         "kind": kind, **extra}
        of[value] = name
        return name

    for arg, name in zip(fn.body.args, arg_names(fn)):
        add(arg, name, "input", input=name)
    weight_buffer: dict = {}
    temps = 0
    for op in list(fn.walk())[1:]:  # Loop / If bodies too: their values live in buffers like any other
        for region in op.regions:
            for arg in region.block.args:
                add(arg, f"t{temps}", "temp")
                temps += 1
        if op.name in ("func.return", "cf.yield"):
            continue
        if op.name == "tile.const":
            value = op.attributes["value"]
            if isinstance(value, SymbolRef):
                if value.name in weight_buffer:  # one buffer per weight, however many consts name it
                    of[op.result] = weight_buffer[value.name]
                else:
                    weight_buffer[value.name] = add(op.result, value.name, "weight", weight=value.name)
            else:
                add(op.result, f"const{temps}", "weight", const=True)
                temps += 1
            continue
        for r in op.results:
            if is_view(op):
                src = of[op.operands[0]]
                root = buffers[src].get("alias_of", src)
                add(r, f"t{temps}", "view", alias_of=root)
            else:
                add(r, f"t{temps}", "temp")
            temps += 1
    return buffers, of


def build_plan(module: Operation) -> dict:
    """The plan of a lowered module (see the module docstring). Ops that are neither launches, views nor
    constants become host steps, run by the numpy reference."""
    fn = main_function(module)
    buffers, of = value_buffers(module)
    clock = [0]  # lifetimes are in step times; a loop or if takes a time at its start and its end
    steps = _steps(module, fn.body, [], buffers, of, clock)
    ret = fn.body.ops[-1] if fn.body.ops and fn.body.ops[-1].name == "func.return" else None
    result_names = fn.attributes.get("result_names") or [f"out{i}" for i in range(len(ret.operands if ret else []))]
    outputs = []
    for name, v in zip(result_names, ret.operands if ret else []):
        b = of[v]
        outputs.append({"name": name, "buffer": b})
        if buffers[b]["kind"] == "temp":
            buffers[b]["kind"] = "output"
        _touch(buffers, b, clock[0])
    _finish_lifetimes(buffers, clock[0])
    arena = _pack_arena(buffers)
    inputs = [{"name": b["input"], "buffer": n} for n, b in buffers.items() if b["kind"] == "input"]
    plan = {"version": PLAN_VERSION, "arch": module_arch(module), "inputs": inputs, "outputs": outputs,
            "buffers": list(buffers.values()), "arena_bytes": arena, "steps": steps,
            "host_ops": [s["op"] for s in walk_steps(steps) if s["kind"] in ("host", "loop", "if")]}
    if fn.attributes.get(ROWS_ATTR):   # outputs the runtime cuts to a row count (ir/row_counts.py)
        plan[ROWS_ATTR] = dict(fn.attributes[ROWS_ATTR])
    return plan


def walk_steps(steps: list):
    """Every step, nested loop and branch bodies included, in program order."""
    for s in steps:
        yield s
        for key in ("body", "then", "else"):
            yield from walk_steps(s.get(key, ()))


def plan_inputs(plan: dict) -> list:
    """``(name, dtype, shape)`` of each input of ``plan`` (a plan.json), in the model's order."""
    buffers = {b["name"]: b for b in plan["buffers"]}
    return [(i["name"], buffers[i["buffer"]]["dtype"], tuple(buffers[i["buffer"]]["shape"])) for i in plan["inputs"]]


def walk_fallbacks(steps: list):
    """Every step of the persistent steps' fallbacks (``backend/fallback.py``), nested ones included: what
    runs only where a grid cannot be co-resident. :func:`walk_steps` leaves them out."""
    for s in walk_steps(steps):
        fallback = s.get("fallback", ())
        yield from walk_steps(fallback)
        yield from walk_fallbacks(fallback)


def _steps(module: Operation, block, path: list, buffers: dict, of: dict, clock: list) -> list:
    """The steps of ``block``. A ``cf.loop`` / ``cf.if`` is a structured step holding its bodies' steps; the
    host drives it (reads the trip count and the condition). Buffers a body reads from outside live until
    the loop's end, since every iteration reads them again."""
    steps: list = []
    for index, op in enumerate(block.ops):
        if op.name in _STRUCTURAL or is_view(op):
            continue
        t = clock[0]
        clock[0] += 1
        ins = [of[v] for v in op.operands]
        outs = [of[r] for r in op.results]
        where = path + [index]
        if op.name == "kernel.launch":
            steps.append(_launch_step(module, op, ins, outs))
        elif op.name in CONTROL and op.attributes.get("placement") == "device":
            steps.append(_device_control_step(module, op, buffers, of))
            steps[-1]["fallback"] = [_host_fallback(module, op, where, ins, outs, buffers, of, clock)]
            ins, outs = steps[-1]["inputs"], steps[-1]["outputs"]
        elif op.name in CONTROL:
            steps.append(_control_step(module, op, where, ins, outs, buffers, of, clock))
        else:
            steps.append({"kind": "host", "op": op.name, "index": index, "path": where, "inputs": ins,
                          "outputs": outs})
        for b in ins + outs:
            _touch(buffers, b, t)
        if op.name in CONTROL and steps[-1]["kind"] != "launch":
            inner = {b for s in walk_steps(steps[-1].get("body", []) + steps[-1].get("then", [])
                                           + steps[-1].get("else", [])) for b in s["inputs"] + s["outputs"]}
            inner |= {b for key in ("args", "yield", "cond_yield", "iter_arg", "cond_arg", "then_yield",
                                    "else_yield") for b in _as_list(steps[-1].get(key))}
            for b in sorted(inner | set(ins) | set(outs)):
                _touch(buffers, b, t)
                _touch(buffers, b, clock[0])
            clock[0] += 1
    return steps


def _as_list(x) -> list:
    return [] if x is None else x if isinstance(x, list) else [x]


def const_value(v: Value):
    """The array of ``v`` when a ``tile.const`` with inline data defines it (a trip count, a condition), else
    None: what the plan, and Grinder, can know before running."""
    op = v.defining_op
    if op is not None and op.name == "tile.const" and isinstance(op.attributes["value"], DenseAttr):
        return op.attributes["value"].array
    return None


def _control_step(module, op, path, ins, outs, buffers, of, clock) -> dict:
    if op.name == "cf.if":
        branches = [_steps(module, r.block, path + [k], buffers, of, clock) for k, r in enumerate(op.regions)]
        return {"kind": "if", "op": op.name, "path": path, "cond": ins[0], "then": branches[0],
                "else": branches[1], "then_yield": [of[v] for v in op.regions[0].block.terminator.operands],
                "else_yield": [of[v] for v in op.regions[1].block.terminator.operands], "inputs": ins,
                "outputs": outs}
    body = op.body
    term = body.terminator
    n = len(op.operands) - 2
    trip, cond = const_value(op.operands[0]), const_value(op.operands[1])
    # The host reads the condition back after every iteration unless the body passes it on unchanged.
    cond_const = cond is not None and bool(cond) and (term.operands[0] is body.args[1]
                                                       or const_value(term.operands[0]) is not None
                                                       and bool(const_value(term.operands[0])))
    return {"kind": "loop", "op": op.name, "path": path, "max_trip": ins[0], "cond": ins[1],
            "trip_static": None if trip is None else int(trip), "cond_static": cond_const,
            "cond_init": None if cond is None else bool(cond),
            "init": ins[2:], "iter_arg": of[body.args[0]], "cond_arg": of[body.args[1]],
            "args": [of[a] for a in body.args[2:]], "body": _steps(module, body, path + [0], buffers, of, clock),
            "cond_yield": of[term.operands[0]], "yield": [of[v] for v in term.operands[1:1 + n]],
            "scan_yield": [of[v] for v in term.operands[1 + n:]], "results": outs[:n], "scan_results": outs[n:],
            "inputs": ins, "outputs": outs, "placement": op.attributes.get("placement", "host")}


def _host_fallback(module, op, path, ins, outs, buffers, of, clock) -> dict:
    """The host-driven ``loop`` / ``if`` step of a device-placed ``op``: what runs when the device kernel's grid
    cannot be co-resident (``backend/fallback.py``). Every buffer it touches is a param of the device kernel,
    live at the device step, so it plans on copies of the lifetimes and clock: the arena stays as it is."""
    scratch = {name: dict(b) for name, b in buffers.items()}
    step = _control_step(module, op, path, ins, outs, scratch, of, [clock[0]])
    step["placement"] = "host"
    return step


def _device_control_step(module: Operation, op: Operation, buffers: dict, of: dict) -> dict:
    """A ``cf.loop`` / ``cf.if`` that grinder moved onto the device: one launch of its ``device_loop`` /
    ``device_if`` kernel, whose params are the op's values in ``control_values`` order, then the grid
    barrier's two i32s (a buffer of the plan's own, zeroed before every launch). Every block reads the trip
    count, the condition and the predicate from device memory, so the host reads nothing back."""
    ref = op.attributes["grinder"]["kernel"]
    k = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) else None
    values = control_values(op)
    if k is None or k.name != "kernel.func" or len(k.attributes["params"]) != len(values) + 1:
        raise CompileError.at(f"{op.name} placed on the device names kernel {ref}, which does not take its "
                              f"{len(values)} values and the barrier", op.loc)
    bar = f"{k.sym_name}.bar"
    while bar in buffers:
        bar += "_"
    buffers[bar] = {"name": bar, "dtype": "i32", "shape": [2], "bytes": 8, "kind": "temp"}
    names = [of[v] for v, _ in values]
    a = k.attributes
    return {"kind": "launch", "kernel": k.sym_name, "cu": kernel_source_path(module, k.sym_name), "grid": list(a["grid"]),
            "block": list(a["block"]), "smem": int(a.get("smem", 0)), "smem_static": static_shared_bytes(k),
            "args": names + [bar],
            "inputs": [n for n, (_, role) in zip(names, values) if role == "in"],
            "outputs": [n for n, (_, role) in zip(names, values) if role == "out"] + [bar],
            "flops": int(a.get("flops", 0)), "bytes_modelled": int(a.get("bytes_modelled", 0)),
            "concurrent": True, "zero": [bar], "control": op.name, "resident": residency(module, k)}


def kernel_source_path(module: Operation, name: str) -> str:
    """``kernels/<name>.cu``, or ``.hip`` for an AMD target: the build folder's source of kernel ``name`` (the
    key that names it in plan.json and report.json stays ``cu``)."""
    from .hip import source_suffix
    return f"kernels/{name}{source_suffix(get_arch(module_arch(module)))}"


def _launch_step(module: Operation, op: Operation, ins: list, outs: list) -> dict:
    name = op.attributes["kernel"].name
    k = lookup_symbol(module, name)
    if k is None or k.name != "kernel.func":
        raise CompileError.at(f"kernel.launch of unknown kernel @{name}", op.loc)
    a = k.attributes
    params = a["params"]
    n_in = sum(1 for p in params if p["role"] == "in")
    if n_in != len(ins) or len(params) - n_in != len(outs):
        raise CompileError.at(f"kernel.launch of @{name} passes {len(ins)} inputs and {len(outs)} outputs; the "
                              f"kernel takes {n_in} and {len(params) - n_in}", op.loc)
    it_in, it_out = iter(ins), iter(outs)
    args = [next(it_in) if p["role"] == "in" else next(it_out) for p in params]
    step = {"kind": "launch", "kernel": name, "cu": kernel_source_path(module, name), "grid": list(a["grid"]),
            "block": list(a["block"]), "smem": int(a.get("smem", 0)), "smem_static": static_shared_bytes(k),
            "args": args, "inputs": ins,
            "outputs": outs, "flops": int(a.get("flops", 0)), "bytes_modelled": int(a.get("bytes_modelled", 0))}
    if a.get("tensor_maps"):   # TMA maps the runtime builds from the args (runtime/tensor_map.from_attr)
        step["tensor_maps"] = [dict(t) for t in a["tensor_maps"]]
    if a.get("kind") == "persistent":
        # An rProgram (passes/rammer.py): its blocks wait on its rTask counters, which start at zero.
        step["concurrent"] = True
        step["zero"] = [args[-1]]
        step["resident"] = residency(module, k)
        step["fallback"] = rammer_fallback(module, k, args, _launch_step)
    return step


def _touch(buffers: dict, name: str, step: int) -> None:
    b = buffers[name]
    b.setdefault("first_use", step)  # SSA: a step's results are touched first by the step defining them
    b["last_use"] = max(b.get("last_use", -1), step)


def _finish_lifetimes(buffers: dict, end: int) -> None:
    """Inputs and weights exist from the start; outputs (and what they alias) to the end; a view keeps
    its root alive as long as the view is used."""
    for b in buffers.values():
        if b["kind"] in ("input", "weight"):
            b["first_use"] = -1
        b.setdefault("first_use", -1)  # never used (an unused input, a view nobody reads)
        b.setdefault("last_use", b["first_use"])
        if b["kind"] == "output":
            b["last_use"] = end
    for b in buffers.values():
        root = buffers.get(b.get("alias_of", ""))
        if root is not None:
            root["last_use"] = max(root["last_use"], b["last_use"])
            b["first_use"] = root["first_use"]  # a view exists as soon as its bytes do
    for b in buffers.values():
        root = buffers.get(b.get("alias_of", ""))
        if root is not None and root["kind"] == "temp" and b["last_use"] >= end:
            root["kind"] = "output"  # a returned view keeps its root out of the reusable arena
            root["last_use"] = end


def _pack_arena(buffers: dict) -> int:
    """First-fit offsets for ``temp`` buffers whose lifetimes ``[first_use, last_use]`` overlap nowhere in
    memory; intervals are closed, so a kernel's inputs never share bytes with its outputs."""
    placed: list = []  # (offset, end, first, last)
    top = 0
    for b in sorted((b for b in buffers.values() if b["kind"] == "temp"),
                    key=lambda b: (b["first_use"], -b["bytes"], b["name"])):
        size = _align(b["bytes"])
        live = sorted((o, e) for o, e, f, last in placed if f <= b["last_use"] and b["first_use"] <= last)
        offset = 0
        for o, e in live:
            if offset + size <= o:
                break
            offset = max(offset, e)
        b["offset"] = offset
        placed.append((offset, offset + size, b["first_use"], b["last_use"]))
        top = max(top, offset + size)
    return top


def _align(n: int) -> int:
    return max(ALIGN, int(math.ceil(n / ALIGN)) * ALIGN)


def lower_bound_bytes(plan: dict) -> int:
    """Every input, weight and output touched once: the traffic no schedule can beat."""
    seen, total = set(), 0
    for b in plan["buffers"]:
        root = b.get("alias_of", b["name"])
        if b["kind"] in ("input", "weight", "output") and root not in seen:
            seen.add(root)
            total += b["bytes"]
    return total


def buffer_nbytes(dtype: str, shape) -> int:
    return math.prod(shape) * itemsize(dtype)


def const_key(name: str) -> str:
    """The ``weights.npz`` key of an inline constant's buffer (weights keep their symbol names)."""
    return f"__const__.{name}"


def weight_arrays(module: Operation, plan: dict) -> dict:
    """``{npz key: array}`` for every weight buffer of ``plan`` (symbols' data and inline constants)."""
    data = module_weights(module)
    fn = main_function(module)
    _, of = value_buffers(module)
    consts = {of[op.result]: op.attributes["value"].array for op in fn.walk()
              if op.name == "tile.const" and isinstance(op.attributes["value"], DenseAttr)}
    out = {}
    for b in plan["buffers"]:
        if b["kind"] != "weight":
            continue
        if b.get("const"):
            out[const_key(b["name"])] = consts[b["name"]]
        elif b["weight"] in data:
            out[b["weight"]] = data[b["weight"]]
        else:
            raise CompileError(f"weight @{b['weight']} has no data")
    return out
