"""Whole rounds of vEU placement (analysis/rammer/rounds): the very same vEUs and float times as placing one
rTask at a time, and search work that does not grow with the number of rTasks."""
from __future__ import annotations

import bisect
import random

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer import Member, choose_groups
from tilec.analysis.rammer import schedule
from tilec.analysis.rammer.rounds import place_rounds

from test_schedule import FakeGraph   # what choose_groups reads of a LaunchGraph

H200 = get_arch("h200")


def one_at_a_time(free, seg, n, ready, dur, wait_in, wait_on, producers) -> float:
    """The placement loop the rounds stand for (``schedule._Prefixes._run``, task by task)."""
    end_all = 0.0
    for _ in range(n):
        j = bisect.bisect_right(free, (ready, 1)) - 1
        t, nv = free.pop(j if j >= 0 else 0)
        if nv not in seg:
            end = (ready if ready > t else t) + (wait_on if nv in producers else wait_in) + dur
        else:
            end = t + dur
        seg[nv] = True
        end_all = max(end_all, end)
        bisect.insort(free, (end, nv))
    return end_all


def in_rounds(free, seg, n, ready, dur, wait_in, wait_on, producers) -> float:
    """The same through ``place_rounds`` where it applies, as ``_run`` does."""
    end_all = 0.0
    while n:
        placed, end = place_rounds(free, seg, n, ready, dur, wait_in, wait_on, producers)
        if not placed:
            placed, end = 1, one_at_a_time(free, seg, 1, ready, dur, wait_in, wait_on, producers)
        n -= placed
        end_all = max(end_all, end)
    return end_all


def test_rounds_place_exactly_as_one_task_at_a_time():
    # Adversarial states: ties, vEUs idle before / at / after the ready time, spreads wider than a task,
    # durations below the times' rounding step, members of fewer and of many more tasks than vEUs.
    rng = random.Random(7)
    for _ in range(600):
        veus = rng.choice([1, 2, 3, 7, 132, 264])
        base = rng.choice([0.0, 1e-6, 3.0e-3, 1e9])
        grid = rng.choice([0.0, 1e-7, 1e-5])
        times = [base + grid * rng.randint(0, 5) for _ in range(veus)]
        free = sorted((t, -v) for v, t in enumerate(times))
        ready = rng.choice([0.0, base, base + grid * 2, base + grid * 9])
        dur = rng.choice([1e-7, 2e-6, 1e-5, 1e-300, base * 1e-17 or 1e-300])
        wait_in, wait_on = rng.choice([(0.0, 0.0), (5e-7, 0.0), (1e-6, 5e-7)])
        producers = {-v for v in range(veus) if rng.random() < 0.3}
        seg = {-v: True for v in range(veus) if rng.random() < 0.2}
        n = rng.choice([1, veus - 1 or 1, veus, veus + 1, 5 * veus + 3, 40 * veus])
        want_free, want_seg = list(free), dict(seg)
        want = one_at_a_time(want_free, want_seg, n, ready, dur, wait_in, wait_on, producers)
        got_seg = dict(seg)
        got = in_rounds(free, got_seg, n, ready, dur, wait_in, wait_on, producers)
        assert (got, free, set(got_seg)) == (want, want_free, set(want_seg))


class _CountingBisect:
    """``bisect`` for ``schedule``, counting the rTasks placed one at a time (one insort each) while on."""
    bisect_left, bisect_right = staticmethod(bisect.bisect_left), staticmethod(bisect.bisect_right)

    def __init__(self):
        self.steps, self.on = 0, False

    def insort(self, a, x):
        self.steps += self.on
        bisect.insort(a, x)


def _search_work(monkeypatch, scale: int) -> tuple:
    """(placement steps: rounds and single rTasks, rTasks the estimates cover) of the search
    (choose_groups' estimates) on a wide two-wave graph:
    6 independent kernels of ``scale``-many blocks (times 1..6), each read by one more, each kernel with
    two alternative tiles (half and twice the blocks), as Roller's variants give."""
    wide = 6
    producers = [[] for _ in range(wide)] + [[i] for i in range(wide)]

    def member(node, blocks, variant=0):
        return Member(node, f"k{node}", blocks, 128, 0, False, flops=blocks * 2 ** 20, bytes=blocks * 2 ** 16,
                      variant=variant)
    members = {n: member(n, scale * (n % wide + 1)) for n in range(2 * wide)}
    variants = {n: [member(n, scale * (n % wide + 1) // 2, 1), member(n, scale * (n % wide + 1) * 2, 2)]
                for n in members}
    counting, tasks = _CountingBisect(), [0]
    estimate = schedule._Prefixes.estimate

    def counted(self, group, veus, occ, threads, smem, at):   # the search's estimates, not the kept programs
        tasks[0] += sum(m.blocks for m in group[at:])
        counting.on = True
        try:
            return estimate(self, group, veus, occ, threads, smem, at)
        finally:
            counting.on = False
    rounds = schedule.place_rounds

    def counted_rounds(*args):
        counting.steps += counting.on
        return rounds(*args)
    monkeypatch.setattr(schedule, "place_rounds", counted_rounds)
    monkeypatch.setattr(schedule, "bisect", counting)
    monkeypatch.setattr(schedule._Prefixes, "estimate", counted)
    choose_groups(FakeGraph(producers), members, H200, variants)
    monkeypatch.undo()
    return counting.steps, tasks[0]


def test_search_work_does_not_grow_with_the_rtasks(monkeypatch):
    # One task at a time, the search placed every rTask of every estimate (GPT-2: 10.6 million placements,
    # 12 s of its 32 s compile). In rounds, ten times the blocks is about the same work.
    small_steps, small_tasks = _search_work(monkeypatch, 100)
    big_steps, big_tasks = _search_work(monkeypatch, 1000)
    assert big_tasks > 9 * small_tasks
    assert big_steps < 2.5 * small_steps    # one task at a time: 10 times (the search's path differs a bit)
    assert big_steps < big_tasks / 500      # one task at a time: as many steps as rTasks


def _program_one_at_a_time(members, deps, spec, veus, occ, threads):
    """``schedule._simulate``'s program as it was built before rounds: one rTask at a time, each vEU's
    (tasks, start, end) per member, and the order of members on each vEU."""
    import math as _math
    free = [(0.0, -v) for v in reversed(range(veus))]
    counts, order = [dict() for _ in range(veus)], [[] for _ in range(veus)]
    finish, placed = [], []
    for i, m in enumerate(members):
        dur = schedule.task_seconds(m, occ, spec)
        ready = max((finish[d] for d in deps.get(i, ())), default=0.0)
        producers = set().union(*(placed[d] for d in deps.get(i, ())))
        wait_in, wait_on = schedule.wait_rounds(deps.get(i, ()), producers, threads, spec)
        end_all, on = 0.0, set()
        for _ in range(m.blocks):
            j = bisect.bisect_right(free, (ready, 1)) - 1
            t, v = free.pop(j if j >= 0 else 0)
            v = -v
            if i not in counts[v]:
                start = max(t, ready) + (wait_on if v in producers else wait_in)
                counts[v][i] = [0, start, start]
                order[v].append(i)
                on.add(v)
            c = counts[v][i]
            c[0] += 1
            c[2] = max(t, c[1]) + dur
            end_all = max(end_all, c[2])
            bisect.insort(free, (c[2], -v))
        finish.append(end_all)
        placed.append(on)
    assert not _math.isnan(sum(finish))
    return counts, order


def test_programs_place_exactly_as_one_task_at_a_time():
    """The kept groups' programs (``_simulate`` with detail) place in rounds too: the same tasks, starts and
    ends on every vEU, in the same order, as one task at a time; and the same estimate as the search's."""
    rng = random.Random(11)
    for _ in range(60):
        n = rng.randint(1, 12)
        group = [Member(i, f"k{i}", rng.choice([1, 2, 7, 64, 132, 300, 1000, 4000]), rng.choice([64, 128, 256]),
                        0, False, rng.randint(0, 10 ** 9), rng.randint(0, 10 ** 8)) for i in range(n)]
        deps = {i: sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)}
        occ = rng.choice([1, 2, 4])
        veus = min(occ * H200.num_sms, sum(m.blocks for m in group))
        threads = rng.choice([128, 256])
        counts, order = _program_one_at_a_time(group, deps, H200, veus, occ, threads)
        p = schedule._simulate(group, deps, H200, veus, occ, threads, 0, True)
        used = [v for v in range(veus) if order[v]]
        assert p.veus == len(used)
        for k, v in enumerate(used):
            assert [s[0] for s in p.segments[k]] == order[v]
            assert [(counts[v][i][1], counts[v][i][2]) for i in order[v]] == p.starts[k]
            assert [s[2] - s[1] for s in p.segments[k]] == [counts[v][i][0] for i in order[v]]
        quick = schedule._simulate(group, deps, H200, veus, occ, threads, 0, False)
        assert (quick.packed_seconds, quick.veus) == (p.packed_seconds, p.veus)
