"""``rprog`` dialect hooks (DESIGN §5): an rProgram lives in a persistent ``kernel.func``. The
``rprog.program`` hook checks the whole program: every rTask of every rOperator runs exactly once, segments
name real operators and block ranges, waits name earlier rOperators (whose rTask counters a segment waits to
see complete) in an order that cannot deadlock, and the grid is one block per vEU."""
from __future__ import annotations

from ..attributes import SymbolRef
from ..core import lookup_symbol
from ..diagnostics import CompileError
from ..verifier import verify_hook


def _persistent_parent(op):
    parent = op.parent_op
    if parent is None or parent.name != "kernel.func" or parent.attributes.get("kind") != "persistent":
        raise CompileError.at(f"'{op.name}' is only valid inside a kernel.func of kind \"persistent\"", op.loc)
    return parent


@verify_hook("rprog.operator")
def _verify_operator(op, module):
    kernel = _persistent_parent(op)
    ref = op.attributes["kernel"]
    target = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) else None
    if target is None or target.name != "kernel.func" or target.attributes.get("kind") == "persistent":
        raise CompileError.at(f"'rprog.operator' refers to unknown kernel {ref}", op.loc)
    params = {p["name"]: p for p in kernel.attributes["params"]}
    want = target.attributes["params"]
    args = op.attributes["args"]
    if len(args) != len(want) or op.attributes["tasks"] != target.attributes["grid"][0]:
        raise CompileError.at(f"'rprog.operator' of {ref}: args or tasks do not match the kernel", op.loc)
    for a, p in zip(args, want):
        got = params.get(a)
        if got is None or (got["dtype"], got["shape"]) != (p["dtype"], p["shape"]) or \
                (p["role"] == "out" and got["role"] != "out"):
            raise CompileError.at(f"'rprog.operator' of {ref}: arg '{a}' does not fit param '{p['name']}'",
                                  op.loc)


@verify_hook("rprog.veu")
def _verify_veu(op, module):
    _persistent_parent(op)
    segs, waits = op.attributes["segments"], op.attributes["waits"]
    if len(segs) != len(waits) or not all(isinstance(s, list) and len(s) == 3 for s in segs):
        raise CompileError.at("'rprog.veu' needs one [operator, lo, hi] segment per waits entry", op.loc)


@verify_hook("rprog.program")
def _verify_program(op, module):
    kernel = _persistent_parent(op)
    ops = kernel.body.ops
    operators = [o for o in ops if o.name == "rprog.operator"]
    veus = [o for o in ops if o.name == "rprog.veu"]
    n = op.attributes["veus"]
    if [v.attributes["id"] for v in veus] != list(range(n)) or kernel.attributes["grid"] != [n, 1, 1]:
        raise CompileError.at(f"'rprog.program' has {n} vEUs: expects rprog.veu ids 0..{n - 1} and grid "
                              f"[{n}, 1, 1]", op.loc)
    from ...analysis.hardware import get_arch
    from ...analysis.rammer.cost import resident_blocks
    spec = get_arch(op.attributes["arch"])
    per_sm = op.attributes["blocks_per_sm"]
    # One arena, overlaid, and the buffer pointer table (rammer/shared.py)
    from ...analysis.rammer.shared import args_table_bytes
    smem = max((_shared_bytes(o) for o in operators), default=0) + args_table_bytes(len(kernel.attributes["params"]) - 1)
    if n > per_sm * spec.num_sms or per_sm > resident_blocks(spec, kernel.attributes["block"][0], smem):
        raise CompileError.at(f"'rprog.program' needs {n} resident vEUs at {per_sm} per SM: over the "
                              f"{op.attributes['arch']} resident-block limit, so its waits could deadlock", op.loc)
    flags = kernel.attributes["params"][-1]
    if flags["name"] != "flags" or flags["dtype"] != "i32" or flags["shape"] != [len(operators)]:
        raise CompileError.at("a persistent kernel's last param is its i32 rTask counters, one per rOperator",
                              op.loc)
    done = [[] for _ in operators]
    for v in veus:
        # Deadlock freedom: each vEU runs its rOperators in increasing index order and a segment waits only on
        # lower-indexed ones, so by induction on the index every counter completes (all vEUs are resident).
        _verify_veu(v, module)   # one waits entry per segment, before reading them together
        order = [i for i, _, _ in v.attributes["segments"]]
        if any(a >= b for a, b in zip(order, order[1:])):
            raise CompileError.at(f"vEU {v.attributes['id']}: its segments' rOperators {order} are not in "
                                  f"increasing order, so its waits could deadlock", v.loc)
        for (i, lo, hi), wait in zip(v.attributes["segments"], v.attributes["waits"]):
            if not 0 <= i < len(operators) or not 0 <= lo < hi <= operators[i].attributes["tasks"]:
                raise CompileError.at(f"vEU {v.attributes['id']}: bad segment [{i}, {lo}, {hi}]", v.loc)
            done[i].append((lo, hi))
            if not isinstance(wait, list) or any(type(d) is not int or not 0 <= d < i for d in wait):
                raise CompileError.at(f"vEU {v.attributes['id']}: bad waits {wait} of a segment of rOperator {i} "
                                      f"(expects indices of earlier rOperators)", v.loc)
    for i, ranges in enumerate(done):
        covered = sorted(ranges)
        ends = [0] + [hi for _, hi in covered]
        if [lo for lo, _ in covered] != ends[:-1] or ends[-1] != operators[i].attributes["tasks"]:
            raise CompileError.at(f"rprog operator {i}: its rTasks are not each placed exactly once", op.loc)


def _shared_bytes(operator) -> int:
    """Shared bytes of an rOperator's kernel: its arrays' slots in the persistent block's arena."""
    from ...analysis.rammer.shared import shared_bytes
    from ..core import lookup_symbol as find
    module = operator
    while module.parent_op is not None:
        module = module.parent_op
    return shared_bytes(find(module, operator.attributes["kernel"].name))
