"""choose_groups reuses the search and the program of a group equal in shape to one seen before (a
transformer's layers): the same groups, variants, estimates and programs as searching every group afresh,
and search work that does not grow with the number of equal layers. The convexity check of a merge walks no
further than the group's top level: the same verdict as walking everything downstream."""
from __future__ import annotations

import dataclasses

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer import Member, choose_groups, schedule

from test_schedule import FakeGraph, run_program   # what choose_groups reads of a LaunchGraph

H200 = get_arch("h200")


def _layers(n: int):
    """``n`` equal layers: three independent kernels (a QKV-like wave, one of 1 block, which has two
    alternative tiles) into one consumer kernel, then a host op (no member: nothing packs across it) that
    feeds the next layer."""
    producers, members, variants = [], {}, {}
    for layer in range(n):
        base = 5 * layer
        prev = [base - 1] if layer else []
        # (test_schedule's case of a big op beside a one-task op that an alternative of 32 tasks spreads)
        for j, (blocks, flops, bytes_) in enumerate([(256, 2 ** 24, 2 ** 22), (128, 2 ** 23, 2 ** 21),
                                                     (1, 2 ** 22, 2 ** 20)]):
            producers.append(prev)
            members[base + j] = Member(base + j, f"k{base + j}", blocks, 128, 0, False, flops, bytes_)
        variants[base + 2] = [dataclasses.replace(members[base + 2], bytes=2 ** 21, variant=1),
                              dataclasses.replace(members[base + 2], blocks=32, variant=2)]
        producers.append([base, base + 1, base + 2])
        members[base + 3] = Member(base + 3, f"k{base + 3}", 8, 256, 0, True, 2 ** 20, 2 ** 18)
        producers.append([base + 3])
    return FakeGraph(producers), members, variants


def _fields(g) -> tuple:
    return (g.members, [(m.node, m.kernel, m.variant) for m in g.chosen], g.veus, g.blocks_per_sm, g.threads,
            g.smem, g.segments, g.waits, g.task_seconds, g.packed_seconds, g.sequential_seconds, g.starts, g.deps)


def _counting(monkeypatch) -> list:
    calls = []
    real = schedule.place

    def place(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)
    monkeypatch.setattr(schedule, "place", place)
    return calls


def test_equal_groups_give_what_a_fresh_search_gives(monkeypatch):
    graph, members, variants = _layers(6)
    memo = choose_groups(graph, members, H200, variants)
    # Without the memo: every group its own key, so every search and program is made afresh.
    monkeypatch.setattr(schedule._Shapes, "group", lambda self, nodes, deps, ms, vs: tuple(nodes))
    monkeypatch.setattr(schedule._Shapes, "key", lambda self, chosen, deps: tuple(m.node for m in chosen))
    fresh = choose_groups(graph, members, H200, variants)
    assert len(memo) >= 6 and [_fields(g) for g in memo] == [_fields(g) for g in fresh]
    assert any(m.variant for g in memo for m in g.chosen)   # the variants' search is reused too
    for g in memo:   # each group's own Members (its nodes), and a program that runs
        assert [m.node for m in g.chosen] == g.members and run_program(g)
    # Reused programs are copies: no list is shared between two groups' segments or waits.
    lists = [id(x) for g in memo for rows in (g.segments, g.waits) for v in rows for x in [v, *v]]
    assert len(lists) == len(set(lists))


def test_search_work_does_not_grow_with_equal_layers(monkeypatch):
    calls = _counting(monkeypatch)
    graph, members, variants = _layers(3)
    choose_groups(graph, members, H200, variants)
    three = len(calls)
    calls.clear()
    graph, members, variants = _layers(12)
    groups = choose_groups(graph, members, H200, variants)
    assert len(groups) >= 12 and len(calls) == three


def _convex_unpruned(graph, nodes) -> bool:
    """The convexity check walking every op downstream of the group (before the walk stopped at its top level)."""
    inside, consumers = set(nodes), schedule._consumers(graph)
    reached, todo = set(), [c for n in nodes for c in consumers.get(n, ()) if c not in inside]
    while todo:
        n = todo.pop()
        if n not in reached:
            reached.add(n)
            todo.extend(c for c in consumers.get(n, ()) if c not in inside)
    return not any(p in reached for n in nodes for p in graph.producers[n])


def test_convexity_walk_stopping_at_the_top_level_decides_the_same():
    import random
    rng = random.Random(5)
    verdicts = set()
    for _ in range(300):
        n = rng.randint(2, 30)
        graph = FakeGraph([sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)])
        consumers = schedule._consumers(graph)
        for _ in range(5):
            nodes = rng.sample(range(n), rng.randint(1, min(n, 6)))
            want = _convex_unpruned(graph, nodes)
            assert schedule._convex(graph, nodes, consumers) == want == schedule._convex(graph, nodes)
            verdicts.add(want)
    assert verdicts == {True, False}
