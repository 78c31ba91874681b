"""Wavefront scheduling (Rammer §4, DESIGN §5): place rTasks on vEUs at the earliest idle time, and choose
which waves to pack into one persistent kernel.

``place`` simulates one group: members in dependency order, each task at the earliest time a vEU is idle
and the member's producers have finished (of several vEUs idle by then, the one idle last: best fit). A vEU's tasks of one member form one
block-range segment; a segment waits on the last step of every producer segment on another vEU (same-vEU
producers are earlier in program order already). Every wait points at a segment that ends no later than the
waiter starts, and tasks take positive time, so the waits-for relation is acyclic: no deadlock, as long as all
vEUs are resident, which the vEU count (≤ blocks-per-SM × #SM) guarantees.

``choose_groups`` walks the waves: a wave (split into classes that can share a block shape) becomes a group
when packing beats running its kernels one after another, and joins the previous group when the merged
estimate beats the two apart.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from ..hardware import GPUSpec
from .cost import LAUNCH_OVERHEAD, WAIT_OVERHEAD, resident_blocks, sequential_seconds, task_seconds


@dataclass
class Placement:
    """An rProgram: ``segments[v]`` = [[member, lo, hi], ...] in order, ``waits[v][s]`` = [[u, step], ...]."""

    members: list
    veus: int
    blocks_per_sm: int
    threads: int
    smem: int
    segments: list
    waits: list
    task_seconds: list
    packed_seconds: float
    sequential_seconds: float = 0.0
    starts: list = field(default_factory=list)  # starts[v][s] = (start, end) estimated seconds

    @property
    def wins(self) -> bool:
        return len(self.members) > 1 and self.packed_seconds < self.sequential_seconds


def group_shape(members) -> tuple | None:
    """``(threads, smem)`` of a persistent block running all ``members``, or None when they cannot share
    one: members with barriers or shuffles need exactly the block's thread count; the rest run guarded."""
    threads = max(m.threads for m in members)
    if any(m.barriers and m.threads != threads for m in members):
        return None
    return threads, sum(m.smem for m in members)


def place(members: list, deps: dict, spec: GPUSpec) -> Placement | None:
    """The best rProgram for ``members`` (in dependency order; ``deps[i]`` = indices it reads from) over
    every occupancy the resident-block limit allows; None if the block cannot be resident at all."""
    shape = group_shape(members)
    if shape is None:
        return None
    threads, smem = shape
    limit = resident_blocks(spec, threads, smem)
    total = sum(m.blocks for m in members)
    best = None
    for occ in range(1, limit + 1):
        veus = min(occ * spec.num_sms, total)
        p = _simulate(members, deps, spec, veus, math.ceil(veus / spec.num_sms), threads, smem)
        if best is None or p.packed_seconds < best.packed_seconds:
            best = p
        if veus == total:
            break  # more slots than tasks: a higher occupancy only slows every task down
    if best is not None:
        best.sequential_seconds = sequential_seconds(members, spec)
    return best


def _take(free: list, ready: float) -> tuple:
    """The vEU for the next task: of those idle by ``ready``, the one that became idle last (best fit: a
    producer's own vEU, so fewer vEUs and fewer cross-vEU waits); if none is, the one idle first."""
    i = bisect.bisect_right(free, (ready, 1)) - 1
    return free.pop(i if i >= 0 else 0)


def _simulate(members, deps, spec, veus, occ, threads, smem) -> Placement:
    free = [(0.0, -v) for v in reversed(range(veus))]  # sorted (idle time, -id): ties go to the lowest id
    counts: list = [dict() for _ in range(veus)]   # v -> {member: (tasks, start, end)}
    order: list = [[] for _ in range(veus)]
    finish, durations = [], []
    placed: list = []  # placed[i]: the vEUs running member i's tasks
    for i, m in enumerate(members):
        dur = task_seconds(m, occ, spec)
        durations.append(dur)
        ready = max((finish[d] for d in deps.get(i, ())), default=0.0)
        producers = set().union(*(placed[d] for d in deps.get(i, ())))
        end_all = 0.0
        for _ in range(m.blocks):
            t, v = _take(free, ready)
            v = -v
            if i not in counts[v]:
                flags = len(producers) - (v in producers)
                start = max(t, ready) + WAIT_OVERHEAD * math.ceil(flags / threads)
                counts[v][i] = [0, start, start]
                order[v].append(i)
            c = counts[v][i]
            c[0] += 1
            c[2] = max(t, c[1]) + dur
            end_all = max(end_all, c[2])
            bisect.insort(free, (c[2], -v))
        finish.append(end_all)
        placed.append({v for v in range(veus) if i in counts[v]})
    used = [v for v in range(veus) if order[v]]
    renum = {v: k for k, v in enumerate(used)}
    segments, starts, step_of = [], [], {}
    next_block = [0] * len(members)
    for v in used:
        segs, times = [], []
        for s, i in enumerate(order[v]):
            n, start, end = counts[v][i]
            segs.append([i, next_block[i], next_block[i] + n])
            next_block[i] += n
            times.append((start, end))
            step_of.setdefault(i, []).append((renum[v], s + 1))
        segments.append(segs)
        starts.append(times)
    waits = []
    for k, segs in enumerate(segments):
        row = []
        for i, _, _ in segs:
            need: dict = {}
            for d in deps.get(i, ()):
                for u, step in step_of[d]:
                    if u != k:
                        need[u] = max(need.get(u, 0), step)
            row.append([[u, need[u]] for u in sorted(need)])
        waits.append(row)
    makespan = max((e for times in starts for _, e in times), default=0.0)
    return Placement(members, len(used), occ, threads, smem, segments, waits, durations,
                     LAUNCH_OVERHEAD + makespan, starts=starts)


def _classes(wave: list) -> list:
    """Split a wave into classes that can share a block shape: one per thread count among members with
    barriers; barrier-free members join the widest such class when they fit in its block, and form a class
    of their own otherwise."""
    by_threads: dict = {}
    free = []
    for m in wave:
        (by_threads.setdefault(m.threads, []) if m.barriers else free).append(m)
    widest = max(by_threads, default=0)
    fits = [m for m in free if m.threads <= widest]
    rest = [m for m in free if m.threads > widest]
    out = [by_threads[t] + (fits if t == widest else []) for t in sorted(by_threads, reverse=True)]
    return out + ([rest] if rest else [])


def choose_groups(graph, members: dict, spec: GPUSpec) -> list:
    """Packed groups as Placements, over the waves of ``graph`` (a LaunchGraph); ``members`` maps graph
    nodes to the Member of each packable launch. Only groups whose estimate wins are returned."""
    groups: list = []
    cur = None  # (nodes, min level, max level, Placement or None)

    def cost(nodes, placement):
        seq = sequential_seconds([members[n] for n in nodes], spec)
        return min(seq, placement.packed_seconds) if placement is not None else seq

    def attempt(nodes):
        nodes = sorted(nodes, key=lambda n: (graph.level[n], n))
        pos = {n: i for i, n in enumerate(nodes)}
        deps = {i: [pos[p] for p in graph.producers[n] if p in pos] for i, n in enumerate(nodes)}
        p = place([members[n] for n in nodes], deps, spec)
        if p is not None:
            p.members = nodes
        return p

    def flush():
        if cur is not None and cur[3] is not None and cur[3].wins:
            groups.append(cur[3])

    for level, wave in enumerate(graph.waves()):
        for cls in _classes([members[n] for n in wave if n in members]):
            nodes = [m.node for m in cls]
            alone = attempt(nodes)
            if cur is not None and cur[2] == level - 1 and _closed(graph, cur[0] + nodes, cur[1]):
                merged = attempt(cur[0] + nodes)
                if merged is not None and merged.packed_seconds < cost(cur[0], cur[3]) + cost(nodes, alone):
                    cur = (cur[0] + nodes, cur[1], level, merged)
                    continue
            flush()
            cur = (nodes, level, level, alone)
    flush()
    return groups


def _closed(graph, nodes: list, lowest: int) -> bool:
    """True when every producer of ``nodes`` is in the group or lies below its first level, so no outside op
    sits between two members and the group can become one launch without a cycle."""
    inside = set(nodes)
    return all(p in inside or graph.level[p] < lowest for n in nodes for p in graph.producers[n])
