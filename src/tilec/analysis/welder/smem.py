"""Shared-memory planning for a fused group (DESIGN §4 step 3): best-fit placement of the group's live
intermediates in one shared arena. A buffer is live from the member that writes it to the last member that
reads it; buffers whose lifetimes do not overlap may share bytes."""
from __future__ import annotations

from dataclasses import dataclass

ALIGN = 16


@dataclass(frozen=True)
class Buffer:
    """``size`` bytes live over member steps ``[start, end]`` (inclusive)."""

    key: object
    size: int
    start: int
    end: int


def plan(buffers: list) -> tuple:
    """``({key: offset}, arena bytes)``. Buffers are placed largest first (ties by start, then key order);
    each takes the smallest free gap among the bytes of live-overlapping buffers that fits it (best fit),
    else the end of the arena."""
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].start, i))
    placed: list = []   # (offset, size, start, end)
    offsets, total = {}, 0
    for i in order:
        b = buffers[i]
        size = -(-b.size // ALIGN) * ALIGN
        busy = sorted((o, o + s) for o, s, st, en in placed if not (en < b.start or b.end < st))
        best, cursor = None, 0
        for lo, hi in busy:
            gap = lo - cursor
            if gap >= size and (best is None or gap < best[1]):
                best = (cursor, gap)
            cursor = max(cursor, hi)
        offset = best[0] if best else cursor
        placed.append((offset, size, b.start, b.end))
        offsets[b.key] = offset
        total = max(total, offset + size)
    return offsets, total
