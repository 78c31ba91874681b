"""Wavefront scheduling (Rammer §4, DESIGN §5): place rTasks on vEUs at the earliest idle time, and choose
which waves to pack into one persistent kernel.

``place`` simulates one group: members in dependency order, each task at the earliest time a vEU is idle
and the member's producers have finished (of several vEUs idle by then, the one idle last: best fit). A vEU's tasks of one member form one
block-range segment. Each rOperator has a counter of its finished rTasks (the kernel's ``flags``, one per
rOperator): a vEU adds a segment's task count when the segment is done, and a segment waits until every
producer rOperator that has tasks on another vEU has counted all its tasks (same-vEU producers are earlier in
program order already). Every producer task ends no later than the waiter starts, and tasks take positive
time, so the waits-for relation is acyclic: no deadlock, as long as all vEUs are resident, which the vEU count
(≤ blocks-per-SM × #SM) guarantees. A segment's waits are its producers (a few), not their vEUs' steps: the
per-vEU step flags made an rProgram's waits O(vEUs²) pairs (ViT-B/16: millions, seconds of compile time and
as many flag polls on the GPU).

``choose_groups`` walks the waves: a wave (split into classes that can share a block shape) becomes a group
when packing beats running its kernels one after another, and joins the previous group when the merged
estimate beats the two apart. Within a group each member may swap its tile for one of Roller's alternatives
(``variants``): a coordinate descent over the members keeps any variant that shortens the packed makespan,
so a small op with one big tile can take more, smaller rTasks to fill vEUs a big op leaves idle, or fewer
to leave them to it. The baseline it must beat stays the kernels as lowered, one after another. The search
compares estimates only (``place(detail=False)``) and builds the segments and waits of the groups it keeps:
building every candidate's waits (each consumer segment against every producer segment) made it slow on
large groups (the small NASNet zoo model: 165 s in the pass, now 7 s). The estimates place a member's rTasks
in rounds (``rounds``: several vEUs one task each, as many rounds as provably repeat), not one by one: their
work grows with the vEUs, not the rTasks (GPT-2's search placed 10.6 million rTasks one at a time).
"""
from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass, field, fields

from ..hardware import GPUSpec
from .cost import Member, launch_seconds, program_blocks, sequential_seconds, task_seconds, wait_seconds
from .regs import reg_budget
from .rounds import place_rounds
from .shared import args_table_bytes


@dataclass
class Placement:
    """An rProgram: ``segments[v]`` = [[member, lo, hi], ...] in order, ``waits[v][s]`` = [member, ...]: the
    producers whose rTask counters segment s of vEU v waits to see complete."""

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
    chosen: list = field(default_factory=list)  # the Member (variant) placed for each of ``members``
    deps: dict = field(default_factory=dict)    # deps[i]: indices of ``members`` that member i reads from

    @property
    def wins(self) -> bool:
        return len(self.members) > 1 and self.packed_seconds < self.sequential_seconds


def group_shape(members) -> tuple | None:
    """``(threads, smem, regs)`` of a persistent block running all ``members``, or None when they cannot
    share one: members with barriers or shuffles that cannot run guarded need exactly the block's thread
    count; the rest run guarded (barrier-free ones on their first threads, the others met at every barrier).
    The members' shared arrays overlay one arena (``shared``): the block needs the largest member's, not the
    sum. Every member is a ``__device__`` function of one kernel, so each thread needs the registers of the
    hungriest member (``regs``); ``place`` refuses a block that cannot have them even alone on its SM. Its
    pointer table (``shared.args_table_bytes``) holds at most every member's buffers (fewer where members
    share one): counted in full, so the block never needs more than the placement assumed."""
    threads = max(m.threads for m in members)
    if any(m.fixed_width and m.threads != threads for m in members):
        return None
    smem = max(m.smem for m in members) + args_table_bytes(sum(m.buffers for m in members))
    return threads, smem, max(m.regs for m in members)


def place(members: list, deps: dict, spec: GPUSpec, detail: bool = True, _search=None) -> Placement | None:
    """The best rProgram for ``members`` (in dependency order; ``deps[i]`` = indices it reads from) over
    every occupancy the resident-block limit allows; None if the block cannot be resident at all. Without
    ``detail`` only the estimate is filled in (no segments, waits or starts): the search compares estimates
    of many candidate groups and needs the program only of those it keeps.

    ``_search`` (``choose_groups``' coordinate descent: ``(_Prefixes, i)``) says ``members[:i]`` are the
    members of the previous call: their simulation is resumed instead of re-run. Then the estimate's
    ``sequential_seconds`` is left at 0 (the search sets it for the group's own kernels)."""
    shape = group_shape(members)
    if shape is None:
        return None
    threads, smem, regs = shape
    # Occupancies whose register budget (__launch_bounds__(threads, occ)) holds every member: ptxas would
    # spill the rest. None fits: the group cannot be one kernel (its members stay separate launches).
    limit = program_blocks(spec, threads, smem, regs)
    total = sum(m.blocks for m in members)
    prefixes, at = _search if _search is not None else (_Prefixes(deps, spec), 0)
    best, best_veus = None, 0
    for occ in range(1, limit + 1):
        veus = min(occ * spec.num_sms, total)
        p = prefixes.estimate(members, veus, math.ceil(veus / spec.num_sms), threads, smem, at)
        if best is None or p.packed_seconds < best.packed_seconds:
            best, best_veus = p, veus
        if veus == total:
            break  # more slots than tasks: a higher occupancy only slows every task down
    if best is not None and detail:  # the same simulation again, keeping the program this time
        best = _simulate(members, deps, spec, best_veus, best.blocks_per_sm, threads, smem, True)
    if best is not None:
        if _search is None:
            best.sequential_seconds = sequential_seconds(members, spec)
        best.deps = deps
    return best


class _Prefixes:
    """Estimate-only simulations (``_simulate(detail=False)``, the same numbers) that resume from a saved
    prefix. The simulation handles members one after another, so its state after ``members[:i]`` depends
    only on those members (and the vEU count, occupancy and block width): the search's coordinate descent
    swaps member ``i`` for each of its variants, and re-simulating the unchanged prefix for every trial
    made the pass quadratic in the group size (the full LSTM: tens of millions of rTasks placed, 80 s).
    Per ``(veus, occ, threads)`` one prefix state is kept: the one at the position asked last."""

    def __init__(self, deps: dict, spec: GPUSpec):
        self.deps, self.spec = deps, spec
        self.saved: dict = {}   # (veus, occ, threads) -> (members[:i], i, state)
        self.seconds: dict = {}  # (id(member), occ) -> task_seconds (the Members outlive this object)
        self.keep: list = []     # the Members ``seconds`` is keyed by, so their ids stay theirs

    def estimate(self, members, veus, occ, threads, smem, at: int) -> Placement:
        key = (veus, occ, threads)
        saved = self.saved.get(key)
        if saved is not None and saved[1] <= at and all(a is b for a, b in zip(saved[0], members)):
            k, state = saved[1], _copy_state(saved[2])
        else:
            k, state = 0, ([(0.0, -v) for v in reversed(range(veus))], [], [], [], set())
        self._run(state, members, k, at, occ, threads)
        self.saved[key] = (members[:at], at, _copy_state(state))
        self._run(state, members, at, len(members), occ, threads)
        free, finish, placed, durations, touched = state
        return Placement(members, len(touched), occ, threads, smem, [], [], list(durations),
                         launch_seconds(self.spec) + max(finish, default=0.0))

    def _run(self, state, members, lo: int, hi: int, occ: int, threads: int) -> None:
        """``_simulate``'s placement loop over ``members[lo:hi]``, inlined (vEU ids kept negated, as in the
        free list). Every float is computed as there: a vEU's first task of a member starts at
        ``max(t, ready) + wait`` (and ends ``dur`` later: ``max(t, start)`` is ``start``), its next ones at the
        end of the previous one (``max(t, start)`` is ``t``)."""
        free, finish, placed, durations, touched = state
        deps, spec, seconds = self.deps, self.spec, self.seconds
        right, insort, ceil = bisect.bisect_right, bisect.insort, math.ceil
        for i in range(lo, hi):
            m = members[i]
            dur = seconds.get((id(m), occ))
            if dur is None:
                dur = seconds[id(m), occ] = task_seconds(m, occ, spec)
                self.keep.append(m)
            durations.append(dur)
            ds = deps.get(i, ())
            if ds:   # (placed sets are never changed once made: one can stand for the union)
                ready = max([finish[d] for d in ds])
                producers = placed[ds[0]].union(*[placed[d] for d in ds[1:]]) if len(ds) > 1 else placed[ds[0]]
            else:
                ready, producers = 0.0, _NONE
            wait_in, wait_on = wait_rounds(ds, producers, threads, spec)
            probe = (ready, 1)
            seg: dict = {}   # -v: the vEUs running this member
            end_all = 0.0
            left = m.blocks
            while left:   # many tasks at once where that is provably what one at a time does (``rounds``)
                n, end = place_rounds(free, seg, left, ready, dur, wait_in, wait_on, producers)
                if n:
                    left -= n
                    if end > end_all:
                        end_all = end
                    continue
                left -= 1
                j = right(free, probe) - 1
                t, nv = free.pop(j if j >= 0 else 0)
                if nv not in seg:   # start >= t: the wait is not negative
                    end = (ready if ready > t else t) + (wait_on if nv in producers else wait_in) + dur
                else:
                    end = t + dur
                seg[nv] = end
                if end > end_all:
                    end_all = end
                insort(free, (end, nv))
            finish.append(end_all)
            placed.append(set(seg))
            touched.update(seg)


_NONE: frozenset = frozenset()


def wait_rounds(deps, producers, threads: int, spec: GPUSpec) -> tuple:
    """Seconds a vEU's first rTask of a member waits before it starts: ``(outside, among)`` the vEUs that ran
    its producers ``deps``. It polls one rTask counter per producer rOperator with tasks on another vEU, the
    block's threads one counter each per round. A vEU outside the producers polls all of them; the sole
    producer vEU polls none (a chain on one vEU needs no waits); a vEU among several is charged all of them
    (an upper bound: the rounds differ only beyond ``threads`` producers)."""
    outside = wait_seconds(spec) * math.ceil(len(deps) / threads)
    return outside, (0.0 if len(producers) == 1 else outside)


def _copy_state(state) -> tuple:
    free, finish, placed, durations, touched = state
    return list(free), list(finish), list(placed), list(durations), set(touched)


def _simulate(members, deps, spec, veus, occ, threads, smem, detail: bool) -> Placement:
    free = [(0.0, -v) for v in reversed(range(veus))]  # sorted (idle time, -id): ties go to the lowest id
    counts: list = [dict() for _ in range(veus)]   # v -> {member: (tasks, start, end)}
    order: list = [[] for _ in range(veus)]
    finish, durations = [], []
    placed: list = []  # placed[i]: the vEUs running member i's tasks
    right, insort = bisect.bisect_right, bisect.insort
    for i, m in enumerate(members):
        dur = task_seconds(m, occ, spec)
        durations.append(dur)
        ready = max((finish[d] for d in deps.get(i, ())), default=0.0)
        producers = {-v for d in deps.get(i, ()) for v in placed[d]}   # negated, as in ``free``
        wait_in, wait_on = wait_rounds(deps.get(i, ()), producers, threads, spec)
        # The estimate's placement (``_Prefixes._run``: rounds where they provably repeat the one-at-a-time
        # loop, else one task); a vEU's first task starts at max(its idle time, ready) + its wait, and its
        # last task of the member ends where the vEU is idle after the member.
        before = dict((nv, t) for t, nv in free)
        seg: dict = {}
        tasks: dict = {}   # -v: the member's tasks on vEU v
        probe, left, end_all = (ready, 1), m.blocks, 0.0
        while left:
            n, end = place_rounds(free, seg, left, ready, dur, wait_in, wait_on, producers, tasks)
            if n:
                left -= n
                end_all = end if end > end_all else end_all
                continue
            left -= 1
            j = right(free, probe) - 1
            t, nv = free.pop(j if j >= 0 else 0)
            if nv not in seg:
                end = (ready if ready > t else t) + (wait_on if nv in producers else wait_in) + dur
            else:
                end = t + dur
            seg[nv] = end
            tasks[nv] = tasks.get(nv, 0) + 1
            end_all = end if end > end_all else end_all
            insort(free, (end, nv))
        after = dict((nv, t) for t, nv in free) if seg else {}
        for nv in seg:
            t = before[nv]
            start = (ready if ready > t else t) + (wait_on if nv in producers else wait_in)
            counts[-nv][i] = [tasks[nv], start, after[nv]]
            order[-nv].append(i)
        finish.append(end_all)
        placed.append({-nv for nv in seg})
    used = [v for v in range(veus) if order[v]]
    if not detail:  # the makespan is the last member's end: no program needed to compare estimates
        return Placement(members, len(used), occ, threads, smem, [], [], durations,
                         launch_seconds(spec) + max(finish, default=0.0))
    segments, starts = [], []
    next_block = [0] * len(members)
    for v in used:
        segs, times = [], []
        for i in order[v]:
            n, start, end = counts[v][i]
            segs.append([i, next_block[i], next_block[i] + n])
            next_block[i] += n
            times.append((start, end))
        segments.append(segs)
        starts.append(times)
    on: dict = {}   # on[i]: the (renumbered) vEUs running member i's tasks
    for k, segs in enumerate(segments):
        for i, _, _ in segs:
            on.setdefault(i, set()).add(k)
    # a producer with tasks on a vEU other than k (every member has tasks on one vEU at least)
    ordered = {i: sorted(ds) for i, ds in deps.items()}
    waits = [[[d for d in ordered.get(i, ()) if len(on[d]) > 1 or k not in on[d]] for i, _, _ in segs]
             for k, segs in enumerate(segments)]
    makespan = max((e for times in starts for _, e in times), default=0.0)
    return Placement(members, len(used), occ, threads, smem, segments, waits, durations,
                     launch_seconds(spec) + makespan, starts=starts)


def _classes(wave: list, spec: GPUSpec) -> list:
    """Split a wave into classes that can share a block shape: one per thread count among fixed-width
    members (barriers that cannot run guarded); the others join the widest such class when they fit in its
    block (threads, and registers: a wider block leaves each thread fewer, ``regs.reg_budget``), and form a
    class of their own otherwise."""
    by_threads: dict = {}
    free = []
    for m in wave:
        (by_threads.setdefault(m.threads, []) if m.fixed_width else free).append(m)
    widest = max(by_threads, default=0)
    fits = [m for m in free if m.threads <= widest and m.regs <= reg_budget(spec, widest, 1)]
    rest = [m for m in free if m not in fits]
    out = [by_threads[t] + (fits if t == widest else []) for t in sorted(by_threads, reverse=True)]
    return out + ([rest] if rest else [])


def choose_groups(graph, members: dict, spec: GPUSpec, variants: dict | None = None,
                  solo: dict | None = None) -> list:
    """Packed groups as Placements, over the waves of ``graph`` (a LaunchGraph); ``members`` maps graph
    nodes to the Member of each packable launch, ``variants`` nodes to Members of their alternative tiles,
    ``solo`` nodes whose launch alone costs something else than their packable member (a thread-block
    cluster kernel, which packs as its one-block twin) to the Member of that launch. Only groups whose
    estimate beats the launches as they are (``solo``, else ``members``) are returned."""
    variants = variants or {}
    solo = solo or {}

    def as_launched(nodes):
        return sequential_seconds([solo.get(n, members[n]) for n in nodes], spec)
    groups: list = []
    cur = None  # (nodes, min level, max level, Placement or None)

    def cost(nodes, placement):
        seq = as_launched(nodes)
        return min(seq, placement.packed_seconds) if placement is not None else seq

    consumers = _consumers(graph)
    shapes = _Shapes()
    searched: dict = {}   # _Shapes.group key -> (estimate, the variant index taken per member, -1: none)
    programs: dict = {}   # _Shapes.key of the chosen members and deps -> the detailed Placement

    def attempt(nodes):
        nodes = sorted(nodes, key=lambda n: (graph.level[n], n))
        pos = {n: i for i, n in enumerate(nodes)}
        deps = {i: [pos[p] for p in graph.producers[n] if p in pos] for i, n in enumerate(nodes)}
        # A transformer's layers make the same groups again and again: equal shapes, equal search.
        key = shapes.group(nodes, deps, members, variants)
        if key not in searched:
            searched[key] = search(nodes, deps)
        p, taken = searched[key]
        if p is not None:
            p = _renamed(p, deps)
            p.members = nodes
            p.chosen = [members[n] if t < 0 else variants[n][t] for n, t in zip(nodes, taken)]
            p.sequential_seconds = as_launched(nodes)
        return p

    def search(nodes, deps):
        """The coordinate descent over the members' variants: (estimate or None, variant taken per member)."""
        chosen = [members[n] for n in nodes]
        taken = [-1] * len(nodes)
        prefixes = _Prefixes(deps, spec)   # every trial keeps chosen[:i]: resume its simulation
        p = place(chosen, deps, spec, detail=False, _search=(prefixes, 0))
        for i, n in enumerate(nodes):
            for t, alt in enumerate(variants.get(n, ())):
                trial = chosen[:i] + [alt] + chosen[i + 1:]
                q = place(trial, deps, spec, detail=False, _search=(prefixes, i))
                if q is not None and (p is None or q.packed_seconds < p.packed_seconds):
                    p, chosen = q, trial
                    taken = taken[:i] + [t] + taken[i + 1:]
        return p, taken

    def flush():
        if cur is not None and cur[3] is not None and cur[3].wins:
            p = cur[3]  # its estimate only: place it again with its segments and waits
            key = shapes.key(p.chosen, p.deps)
            if key in programs:
                full = _renamed(programs[key], p.deps)
            else:   # its first group uses it as it is; later ones take copies
                full = programs[key] = place(p.chosen, p.deps, spec)
            full.members, full.chosen, full.sequential_seconds = p.members, p.chosen, p.sequential_seconds
            groups.append(full)

    for level, wave in enumerate(graph.waves()):
        for cls in _classes([members[n] for n in wave if n in members], spec):
            nodes = [m.node for m in cls]
            alone = attempt(nodes)
            if cur is not None and cur[2] == level - 1 and _convex(graph, cur[0] + nodes, consumers):
                merged = attempt(cur[0] + nodes)
                if merged is not None and merged.packed_seconds < cost(cur[0], cur[3]) + cost(nodes, alone):
                    cur = (cur[0] + nodes, cur[1], level, merged)
                    continue
            flush()
            cur = (nodes, level, level, alone)
    flush()
    return groups


class _Shapes:
    """Keys under which ``choose_groups`` reuses a search or a program: what the estimates read of a Member
    (every field but its graph node and kernel name), in member order, with the deps (by position)."""

    _SKIP = ("node", "kernel")

    def __init__(self):
        self.names = [f.name for f in fields(Member) if f.name not in self._SKIP]
        self.memo: dict = {}   # id(Member) -> its shape (the Members outlive this object)

    def shape(self, m: Member) -> tuple:
        s = self.memo.get(id(m))
        if s is None:
            s = self.memo[id(m)] = (m, tuple(getattr(m, f) for f in self.names))
        return s[1]

    def key(self, chosen: list, deps: dict) -> tuple:
        return tuple(map(self.shape, chosen)), tuple((i, tuple(d)) for i, d in sorted(deps.items()))

    def group(self, nodes, deps, members, variants) -> tuple:
        """A candidate group: its members, their deps and every member's variants, all by shape."""
        return (self.key([members[n] for n in nodes], deps),
                tuple(tuple(map(self.shape, variants.get(n, ()))) for n in nodes))


def _renamed(p: Placement, deps: dict) -> Placement:
    """A copy of a reused Placement for another group of the same shape (its own lists: nothing is shared
    between two rPrograms' attributes); the caller sets members, chosen and sequential_seconds."""
    return dataclasses.replace(p, segments=[[list(s) for s in v] for v in p.segments],
                               waits=[[list(w) for w in v] for v in p.waits], task_seconds=list(p.task_seconds),
                               starts=[list(v) for v in p.starts], deps=deps)


def _consumers(graph) -> dict:
    """node -> the nodes reading it."""
    consumers: dict = {}
    for n, prods in enumerate(graph.producers):
        for p in prods:
            consumers.setdefault(p, []).append(n)
    return consumers


def _convex(graph, nodes: list, consumers: dict | None = None) -> bool:
    """True when no op outside ``nodes`` both depends on a member and feeds one, so the group can become one
    launch without a cycle: outside producers (of any level) then all run before it, outside consumers
    after it. ``consumers``: ``_consumers(graph)``, when the caller keeps it."""
    inside = set(nodes)
    if consumers is None:
        consumers = _consumers(graph)
    # Levels grow along every edge and a member's producers are below the top member's level: a walk that
    # reaches one never passes a node at or above that level, so the walk stops there.
    level, top = graph.level, max(graph.level[n] for n in nodes)
    reached, todo = set(), [c for n in nodes for c in consumers.get(n, ()) if c not in inside and level[c] < top]
    while todo:
        n = todo.pop()
        if n in reached:
            continue
        reached.add(n)
        todo.extend(c for c in consumers.get(n, ()) if c not in inside and level[c] < top)
    return not any(p in reached for n in nodes for p in graph.producers[n])
