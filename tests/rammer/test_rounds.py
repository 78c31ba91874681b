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
