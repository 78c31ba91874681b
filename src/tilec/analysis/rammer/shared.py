"""Shared memory of a persistent block (Rammer, DESIGN §5): its rOperators' arrays overlay one arena.

A vEU runs one rTask at a time, and every rTask of a member with shared arrays ends at a ``__syncthreads``
(``backend/lower/persistent``), so two members never hold shared data at once: each member's arrays are laid
out from offset 0 of one block arena, and the block needs the *largest* member's layout, not the sum. (With
one ``__shared__`` declaration per ``__device__`` function, the sum, three Welder conv chains of 23 KB, 25 KB
and 6 KB already outgrow the 48 KB a block may declare statically.)

Within a member every ``kernel.shared`` site keeps its own slot, as its own kernel would: a declaration in a
loop body is one static array, whatever the scope. Slots start at multiples of ``ALIGN`` bytes, enough for
any element type and for 16-byte vector accesses.
"""
from __future__ import annotations

import math

from ...ir.types import itemsize

ALIGN = 16


def layout(kernel) -> tuple:
    """``({id(op): byte offset} for each kernel.shared op of kernel, bytes in all)``, in walk order."""
    offsets, total = {}, 0
    for op in kernel.walk():
        if op.name == "kernel.shared":
            offsets[id(op)] = total
            n = itemsize(op.attributes["dtype"]) * math.prod(op.attributes["dims"])
            total += -(-n // ALIGN) * ALIGN
    return offsets, total


def shared_bytes(kernel) -> int:
    """Bytes of ``kernel``'s shared arrays laid out one after another (``layout``)."""
    return layout(kernel)[1]


def arena_bytes(kernels) -> int:
    """Bytes of the arena a persistent block running ``kernels`` needs: the largest member's layout."""
    return max((shared_bytes(k) for k in kernels), default=0)
