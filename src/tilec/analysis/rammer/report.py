"""Estimates of a lowered module's ``@main`` with and without rammer, and the Chrome trace of its rPrograms.

``plan_seconds`` sums, launch by launch in program order, the rammer cost model's estimate: a persistent
kernel costs its rProgram's packed estimate, any other kernel its one-at-a-time estimate
(``cost.kernel_seconds``). ``schedule_trace`` replays each rProgram's vEU lists (segments start when their
vEU is free and their waits are met) into Chrome-trace events, one lane per vEU, estimated time on x.

    python scripts/bench_rammer.py samples/parallel/*.onnx   # the table in docs/benchmarks (make bench)
"""
from __future__ import annotations

import math

from ...ir.core import Operation, lookup_symbol
from ..hardware import GPUSpec, get_arch
from .cost import Member, kernel_seconds, launch_seconds, wait_seconds


def _member(kernel: Operation) -> Member:
    a = kernel.attributes
    smem = sum(_nbytes(s.attributes) for s in kernel.walk() if s.name == "kernel.shared")
    return Member(0, kernel.sym_name, math.prod(a["grid"]), math.prod(a["block"]), smem, True,
                  int(a.get("flops", 0)), int(a.get("bytes_modelled", 0)))


def _nbytes(attrs: dict) -> int:
    from ...ir.types import itemsize
    return itemsize(attrs["dtype"]) * math.prod(attrs["dims"])


def launches(module: Operation) -> list:
    from ...ir.core import main_function
    return [lookup_symbol(module, op.attributes["kernel"].name) for op in main_function(module).walk()
            if op.name == "kernel.launch"]


def plan_seconds(module: Operation, spec: GPUSpec) -> float:
    total = 0.0
    for k in launches(module):
        if k.attributes.get("kind") == "persistent":
            total += next(op for op in k.body.ops if op.name == "rprog.program").attributes["packed_seconds"]
        else:
            total += kernel_seconds(_member(k), spec)
    return total


def _program_spec(kernel: Operation) -> GPUSpec:
    """The GPU an rProgram was scheduled for (its ``rprog.program`` names it)."""
    return get_arch(next(o for o in kernel.body.ops if o.name == "rprog.program").attributes["arch"])


def replay(kernel: Operation) -> list:
    """``[(veu, operator, lo, hi, start, end)]`` of a persistent kernel, in seconds from its start."""
    ops = kernel.body.ops
    wait = wait_seconds(_program_spec(kernel))
    secs = [o.attributes.get("task_seconds", 0.0) for o in ops if o.name == "rprog.operator"]
    veus = [o.attributes for o in ops if o.name == "rprog.veu"]
    threads = kernel.attributes["block"][0]
    tasks = [o.attributes["tasks"] for o in ops if o.name == "rprog.operator"]
    counted = [0] * len(tasks)         # rTasks of each rOperator finished so far
    done_at = [0.0] * len(tasks)       # when the last of them finished
    pc, now, out = [0] * len(veus), [0.0] * len(veus), []
    while any(pc[v] < len(veus[v]["segments"]) for v in range(len(veus))):
        moved = False
        for v, veu in enumerate(veus):
            while pc[v] < len(veu["segments"]):
                waits = veu["waits"][pc[v]]
                if any(counted[d] < tasks[d] for d in waits):
                    break
                i, lo, hi = veu["segments"][pc[v]]
                start = max([now[v]] + [done_at[d] for d in waits]) + wait * math.ceil(len(waits) / threads)
                now[v] = start + (hi - lo) * secs[i]
                counted[i] += hi - lo
                done_at[i] = max(done_at[i], now[v])
                out.append((v, i, lo, hi, start, now[v]))
                pc[v] += 1
                moved = True
        if not moved:
            raise ValueError(f"rProgram {kernel.sym_name} deadlocks")
    return out


def schedule_trace(module: Operation) -> dict:
    """Chrome-trace JSON (``chrome://tracing``, Perfetto) of every rProgram: one process per persistent
    kernel, one thread (lane) per vEU, one complete event per segment, microseconds of estimated time."""
    events, t0 = [], 0.0
    for pid, k in enumerate(launches(module)):
        if k.attributes.get("kind") != "persistent":
            continue
        names = [o.attributes["kernel"].name for o in k.body.ops if o.name == "rprog.operator"]
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": k.sym_name}})
        rows = replay(k)
        for v, i, lo, hi, start, end in rows:
            events.append({"ph": "X", "pid": pid, "tid": v, "name": names[i], "ts": (t0 + start) * 1e6,
                           "dur": (end - start) * 1e6, "args": {"blocks": [lo, hi]}})
        t0 += max((r[5] for r in rows), default=0.0) + launch_seconds(_program_spec(k))
    return {"traceEvents": events, "displayTimeUnit": "ns"}
