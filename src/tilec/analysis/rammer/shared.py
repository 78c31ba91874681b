"""Shared memory of a persistent block (Rammer, DESIGN §5): its rOperators' arrays overlay one arena.

A vEU runs one rTask at a time, and every rTask of a member with shared arrays ends at a ``__syncthreads``
(``backend/lower/persistent``), so two members never hold shared data at once: each member's arrays are laid
out from offset 0 of one block arena, and the block needs the *largest* member's layout, not the sum. (With
one ``__shared__`` declaration per ``__device__`` function, the sum, three Welder conv chains of 23 KB, 25 KB
and 6 KB already outgrow the 48 KB a block may declare statically.)

Within a member every ``kernel.shared`` site keeps its own slot, as its own kernel would: a declaration in a
loop body is one static array, whatever the scope. Slots start at multiples of ``ALIGN`` bytes, enough for
any element type and for 16-byte vector accesses.

Beside the arena the block keeps its buffer pointers in a shared table (``args_table_bytes``): the dispatch
loop passes each rTask its buffers from there instead of holding every kernel parameter in registers across
the loop and the calls (vit_s32-small's 544-thread rProgram spilled at the 96 registers its block may have;
with the table it needs 88).
"""
from __future__ import annotations

import math

from ...ir.types import itemsize

ALIGN = 16
POINTER_BYTES = 8   # a device pointer: one slot of the buffer table


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


def args_table_bytes(buffers: int) -> int:
    """Bytes of a persistent block's shared table of ``buffers`` buffer pointers, ``ALIGN``-rounded: the
    arena declared after it starts on a 16-byte boundary (ptxas counts the padding)."""
    return -(-POINTER_BYTES * buffers // ALIGN) * ALIGN
