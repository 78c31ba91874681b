"""Rounds of earliest-idle placement, done at once (the fast path of ``schedule``'s estimates).

Placing a member's rTasks one at a time on the earliest idle vEU costs a sorted-list pop and insert per task:
an lm-head GEMM of thousands of blocks on a few hundred vEUs is tens of thousands of such steps per estimate,
and the search makes thousands of estimates (GPT-2: 10.6 million steps, 12 s). But runs of those steps are
provably *rounds*, each of several vEUs taking one task, whose outcome is known without the steps:

- vEUs idle by the member's ready time are taken latest-idle first, and each task taken so ends after the
  ready time: the next ``n`` tasks take the ``n`` latest such vEUs, one each;
- with none idle, the loop takes the earliest vEU; every task it places ends at least ``dur`` after that
  vEU's time, so the vEUs idle before that time plus ``dur`` are each taken once before any of them again;
- when those vEUs all run the member already (so no flag waits change their tasks' times), and stay
  before every other vEU and within ``dur`` of each other, the same holds round after round.

``place_rounds`` applies such rounds, computing every end with the loop's own float expression, one
addition per task in the same order (so the same bits); float addition is monotone, so bounds carried
along by the same additions (the earliest and latest time of a round) are exact. What is no round (a
duration lost in rounding) is left to the loop.
"""
from __future__ import annotations

import bisect
import math
from itertools import repeat
from operator import itemgetter

import numpy as np

_NUMPY_FROM = 32   # distinct times per round from which one array addition per round beats scalar ones


def place_rounds(free: list, seg: dict, most: int, ready: float, dur: float, wait_in: float,
                 wait_on: float, producers, counts: dict | None = None) -> tuple:
    """Place up to ``most`` tasks of duration ``dur`` of one member in rounds, as the one-at-a-time loop
    (``schedule._Prefixes._run``) would; returns ``(tasks placed, latest end)``, ``(0, 0.0)`` when the next
    task is no round (place it alone). ``free`` is the sorted ``(idle time, -vEU)`` list; ``seg`` holds the
    vEUs already running the member (given keys here); ``ready`` is when its producers finish; a vEU's first
    task waits ``wait_on`` (a vEU in ``producers``) or ``wait_in`` first. ``counts``, when given, counts the
    tasks placed per vEU (``schedule._simulate``'s program needs them)."""
    j = bisect.bisect_right(free, (ready, 1))
    if j:   # vEUs idle by ready: the latest ``n`` of them, none running the member yet
        end_in, end_on = ready + wait_in + dur, ready + wait_on + dur
        n = min(j, most)
        # seg is empty at a member's first tasks, the usual case here: no scan of the n vEUs then.
        if not (end_in > ready and end_on > ready) or (seg and any(nv in seg for _, nv in free[j - n:j])):
            return 0, 0.0
        if producers and end_on != end_in:
            new = [(end_on if nv in producers else end_in, nv) for _, nv in free[j - n:j]]
        else:   # one end for all (no producer vEU, or no difference): built at C speed
            new = list(zip(repeat(end_in), map(itemgetter(1), free[j - n:j])))
        free[j - n:] = sorted(free[j:] + new)
    else:   # the vEUs idle before the earliest one's time plus dur, in order
        r = min(bisect.bisect_left(free, (free[0][0] + dur,)), most)
        if r == 0:   # dur lost in rounding
            return 0, 0.0
        if len(seg) == len(free) or all(nv in seg for _, nv in free[:r]):
            return _rounds_in_seg(free, r, dur, most // r, counts)
        new = [(t + dur if nv in seg else t + (wait_on if nv in producers else wait_in) + dur, nv)
               for t, nv in free[:r]]
        free[:] = sorted(free[r:] + new)
    for _, nv in new:
        seg[nv] = True
    if counts is not None:
        for _, nv in new:
            counts[nv] = counts.get(nv, 0) + 1
    return len(new), max([e for e, _ in new])


def _rounds_in_seg(free: list, r: int, dur: float, most: int, counts: dict | None = None) -> tuple:
    """Rounds of the ``r`` earliest vEUs, all running the member (a task ends ``dur`` after the previous):
    the first always, then more while those vEUs stay before every other and within ``dur`` of each other;
    at most ``most`` rounds. Returns ``(tasks placed, latest end)``."""
    head = free[:r]
    lo, hi = head[0][0] + dur, head[-1][0] + dur
    rest = free[r][0] if r < len(free) else math.inf
    k = 1
    while k < most and hi < rest and lo + dur > hi:
        lo += dur
        hi += dur
        k += 1
    # One addition per round, as one task per vEU per round adds it; vEUs idle at the same time (the usual
    # case: their tasks started together) end at the same time, so each distinct time is added up once.
    distinct = {t for t, _ in head}
    if len(distinct) < _NUMPY_FROM:
        after = {}
        for t in distinct:
            end = t
            for _ in range(k):
                end += dur
            after[t] = end
        new = [(after[t], nv) for t, nv in head]
    else:
        array = np.fromiter((t for t, _ in head), dtype=np.float64, count=r)
        for _ in range(k):
            array += dur
        new = list(zip(array.tolist(), [nv for _, nv in head]))
    free[:] = sorted(free[r:] + new)
    if counts is not None:
        for _, nv in head:
            counts[nv] += k
    return r * k, hi
