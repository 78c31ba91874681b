"""Wavefront scheduling and vEU placement (analysis/rammer) on synthetic kernels: resident-block limits,
every rTask placed once, waits that can never deadlock, and the pack / don't-pack / merge decisions."""
from __future__ import annotations

import dataclasses
import math

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer import Member, choose_groups, place, resident_blocks
from tilec.analysis.rammer.cost import launch_seconds, sequential_seconds
from tilec.analysis.rammer.schedule import _classes

H200 = get_arch("h200")


def small(node, blocks=4, threads=128, barriers=False, smem=0):
    return Member(node, f"k{node}", blocks, threads, smem, barriers, flops=blocks * 4096, bytes=blocks * 8192)


def big(node, smem=24 * 1024):
    """A large tiled kernel: 2048 blocks of 128 threads with 24 KB of shared memory each."""
    return Member(node, f"k{node}", 2048, 128, smem, True, flops=2048 * 2 ** 24, bytes=2048 * 2 ** 18)


class FakeGraph:
    """What choose_groups reads of a LaunchGraph: levels and producers of nodes."""

    def __init__(self, producers: list):
        self.producers = producers
        self.level = []
        for prods in producers:
            self.level.append(1 + max((self.level[p] for p in prods), default=-1))

    def waves(self):
        out = [[] for _ in range(max(self.level) + 1)]
        for i, lv in enumerate(self.level):
            out[lv].append(i)
        return out


def run_program(p) -> bool:
    """Interpret an rProgram's vEU lists with rTask counters, any vEU that can move moving; False on a stall."""
    tasks: dict = {}   # rTasks per member: the highest block any segment reaches
    for segs in p.segments:
        for i, _, hi in segs:
            tasks[i] = max(tasks.get(i, 0), hi)
    pc, counted = [0] * p.veus, dict.fromkeys(tasks, 0)
    while any(pc[v] < len(p.segments[v]) for v in range(p.veus)):
        moved = False
        for v in range(p.veus):
            if pc[v] < len(p.segments[v]) and all(counted[d] >= tasks[d] for d in p.waits[v][pc[v]]):
                i, lo, hi = p.segments[v][pc[v]]
                counted[i] += hi - lo
                pc[v] += 1
                moved = True
        if not moved:
            return False
    return True


def test_resident_blocks_follow_threads_registers_and_smem():
    assert resident_blocks(H200, 256, 0) == 4          # 64 regs/thread assumed: 65536 / (256 * 64)
    assert resident_blocks(H200, 32, 0) == 32          # the per-SM block limit
    assert resident_blocks(H200, 64, 100 * 1024) == 0  # over the 48 KB static shared limit
    assert resident_blocks(H200, 128, 40 * 1024) == 5  # 228 KB / 40 KB
    assert resident_blocks(H200, 64, 25 * 1024) == 8   # 228 KB / (25 KB + the 1 KB sm_80+ reserve per block)
    assert resident_blocks(get_arch("v100"), 64, 24 * 1024) == 4  # 96 KB / 24 KB: no reserve before sm_80


def test_every_task_placed_once_and_waits_cannot_deadlock():
    members = [small(0, 8), small(1, 5), small(2, 3), small(3, 7), small(4, 2)]
    deps = {2: [0, 1], 3: [2], 4: [0, 3]}
    p = place(members, deps, H200)
    assert p.veus <= p.blocks_per_sm * H200.num_sms
    assert p.blocks_per_sm <= resident_blocks(H200, p.threads, p.smem)
    for i, m in enumerate(members):
        ranges = sorted((lo, hi) for segs in p.segments for j, lo, hi in segs if j == i)
        assert ranges[0][0] == 0 and ranges[-1][1] == m.blocks
        assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert run_program(p)
    # A consumer segment waits on exactly the producers that run some rTask on another vEU (the rest are
    # earlier on its own vEU).
    for v, segs in enumerate(p.segments):
        for (i, _, _), waits in zip(segs, p.waits[v]):
            elsewhere = [d for d in deps.get(i, ()) if any(j == d for u, useg in enumerate(p.segments) if u != v
                                                            for j, _, _ in useg)]
            assert waits == sorted(elsewhere)


def test_small_parallel_kernels_are_packed():
    members = [small(i) for i in range(4)]
    p = place(members, {}, H200)
    assert p.wins and p.packed_seconds < p.sequential_seconds
    groups = choose_groups(FakeGraph([[], [], [], []]), {m.node: m for m in members}, H200)
    assert [g.members for g in groups] == [[0, 1, 2, 3]]


def test_large_kernels_are_not_packed_when_it_does_not_win():
    # Alone, the kernel without shared memory keeps 8 blocks per SM resident (registers), the one with 40 KB
    # only 5. Packed, every block holds the 40 KB arena (the members' arrays overlay, the largest stays), so
    # the first kernel loses 3 of its 8 slots: the packed estimate loses and the wave stays two launches.
    a, b = big(0, smem=0), big(1, smem=40 * 1024)
    assert resident_blocks(H200, 128, 0) == 8 and resident_blocks(H200, 128, 40 * 1024) == 5
    p = place([a, b], {}, H200)
    assert p.blocks_per_sm == 5 and not p.wins
    assert p.packed_seconds >= sequential_seconds([a, b], H200)
    assert choose_groups(FakeGraph([[], []]), {0: a, 1: b}, H200) == []


def test_members_shared_arrays_overlay():
    # A vEU runs one rTask at a time, so the block needs the largest member's shared bytes, not the sum: three
    # 20 KB kernels (60 KB together, over the 48 KB a block may declare) still share one persistent block, and
    # two 24 KB ones keep the 8 blocks per SM each has alone.
    members = [small(i, smem=20 * 1024) for i in range(3)]
    p = place(members, {}, H200)
    assert p is not None and p.smem == 20 * 1024 and p.wins
    q = place([big(0), big(1)], {}, H200)
    assert q.smem == 24 * 1024 and q.blocks_per_sm == 8


def test_adjacent_waves_merge_when_that_wins():
    # 0, 1 -> 2 -> 3: a chain of small waves becomes one rProgram (one launch instead of four).
    graph = FakeGraph([[], [], [0, 1], [2]])
    members = {i: small(i) for i in range(4)}
    groups = choose_groups(graph, members, H200)
    assert [g.members for g in groups] == [[0, 1, 2, 3]]
    assert run_program(groups[0])


def test_no_merge_across_an_outside_op():
    # Node 2 is a host op (not a member) between waves 1 and 3: 3 cannot join 0/1's group.
    graph = FakeGraph([[], [], [0], [1, 2]])
    members = {0: small(0), 1: small(1), 3: small(3)}
    groups = choose_groups(graph, members, H200)
    assert all(3 not in g.members or g.members == [3] for g in groups)


def test_classes_keep_barrier_kernels_at_their_thread_count():
    wave = [small(0, threads=12, barriers=True), small(1, threads=768, barriers=True), small(2, threads=256),
            small(3, threads=1024)]
    classes = [[m.node for m in c] for c in _classes(wave, H200)]
    assert classes == [[1, 2], [0], [3]]
    assert math.prod(len(c) for c in classes) == 2


def test_guardable_barrier_kernels_share_a_wider_block():
    # A 12-thread kernel with barriers that can run guarded shares a 256-thread block; one that cannot keeps
    # its own thread count (the guardable one may join it there: it fits).
    g = Member(0, "g", 192, 12, 56, True, 4096, 8192, guardable=True)
    fixed = Member(1, "f", 192, 12, 56, True, 4096, 8192)
    wide = Member(2, "w", 16, 256, 1024, True, 4096, 8192, guardable=True)
    classes = [[m.node for m in c] for c in _classes([g, fixed, wide], H200)]
    assert classes == [[1, 0], [2]]
    p = place([g, wide], {}, H200)
    assert p is not None and p.threads == 256
    assert place([fixed, wide], {}, H200) is None


def _heavy(node, blocks):
    """A kernel of ``blocks`` tasks doing 2**22 FLOPs and 2**20 bytes in all."""
    return Member(node, f"k{node}", blocks, 128, 0, False, 2 ** 22, 2 ** 20)


def test_a_wave_takes_the_alternative_tile_that_fills_the_veus():
    # One big op (256 tasks) next to a small op of one long task: the packed makespan is that one task.
    # Roller's alternative with 32 smaller tasks spreads it over idle vEUs; a worse alternative (same tasks,
    # twice the bytes) is never taken.
    big_op = Member(0, "big", 256, 128, 0, False, 256 * 2 ** 16, 256 * 2 ** 14)
    small_op = _heavy(1, 1)
    split = dataclasses.replace(_heavy(1, 32), variant=1)
    worse = dataclasses.replace(_heavy(1, 1), bytes=2 ** 21, variant=2)
    graph = FakeGraph([[], []])
    members = {0: big_op, 1: small_op}
    plain = choose_groups(graph, members, H200)
    [g] = choose_groups(graph, members, H200, {1: [worse, split]})
    assert [m.variant for m in g.chosen] == [0, 1]
    assert g.packed_seconds < plain[0].packed_seconds
    assert g.sequential_seconds == plain[0].sequential_seconds  # the baseline stays the tiles as lowered
    assert run_program(g)
    [g] = choose_groups(graph, members, H200, {1: [worse]})
    assert [m.variant for m in g.chosen] == [0, 0]


def test_merge_across_an_independent_outside_op():
    # 1 is a host op reading only the inputs; 2 needs 0 and 1, 3 needs 2: the group {0, 2, 3} is convex
    # (1 runs before it), so the waves merge into one launch.
    graph = FakeGraph([[], [], [0, 1], [2]])
    members = {0: small(0), 2: small(2), 3: small(3)}
    groups = choose_groups(graph, members, H200)
    assert [g.members for g in groups] == [[0, 2, 3]]


def test_estimate_only_placement_matches_the_full_program():
    # The search compares estimates without building programs (detail=False); the groups it keeps are placed
    # again in full, which must give the very same estimate and vEU count.
    members = [small(0, 300), small(1, 5, threads=64), small(2, 200), small(3, 7), big(4)]
    deps = {2: [0, 1], 3: [2], 4: [0, 3]}
    quick, full = place(members, deps, H200, detail=False), place(members, deps, H200)
    assert quick.segments == [] and full.segments
    assert (quick.packed_seconds, quick.veus, quick.blocks_per_sm) == \
        (full.packed_seconds, full.veus, full.blocks_per_sm)
    assert full.packed_seconds == launch_seconds(H200) + max(e for times in full.starts for _, e in times)


def test_resumed_estimates_equal_the_simulation():
    """The search's estimates (``_Prefixes``: an inlined loop resuming a saved prefix) give exactly the
    numbers of ``_simulate(detail=False)``, for random groups, dependencies and swapped members."""
    import random

    from tilec.analysis.rammer.schedule import _Prefixes, _simulate
    rng = random.Random(1)
    for _ in range(40):
        n = rng.randint(1, 25)
        group = [Member(i, f"k{i}", rng.choice([1, 2, 3, 7, 64, 132, 200, 1000]), rng.choice([32, 64, 128, 256]),
                        0, False, rng.randint(0, 10 ** 9), rng.randint(0, 10 ** 8)) for i in range(n)]
        deps = {i: sorted(rng.sample(range(i), rng.randint(0, min(i, 3)))) for i in range(n)}
        prefixes = _Prefixes(deps, H200)
        for trial in range(4):
            at = rng.randint(0, n - 1) if trial else 0
            if trial:   # as the search does: one member swapped, the prefix before it unchanged
                group = group[:at] + [dataclasses.replace(group[at], blocks=rng.choice([1, 5, 300]))] + group[at + 1:]
            total = sum(m.blocks for m in group)
            for occ in (1, 2, 3):
                veus = min(occ * H200.num_sms, total)
                o = math.ceil(veus / H200.num_sms)
                for threads in (128, 256):
                    want = _simulate(group, deps, H200, veus, o, threads, 0, False)
                    got = prefixes.estimate(group, veus, o, threads, 0, at)
                    assert (got.packed_seconds, got.veus, got.task_seconds) == \
                        (want.packed_seconds, want.veus, want.task_seconds)
