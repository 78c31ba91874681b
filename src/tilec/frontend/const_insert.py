"""Where the importer inserts the next ``tile.const``: after the constants leading the entry block.

The importer puts every constant at the top of the function (so it dominates every use), after the ones
already there. Finding that position by scanning the leading constants made the import quadratic in the
number of constants (Swin-T: 2,600 of them, 1 CPU s). :class:`ConstEnd` remembers the position instead: the
importer only appends other ops and inserts constants here, so the leading constants grow by one per insert.
"""
from __future__ import annotations

CONST = "tile.const"


def first_non_const(ops) -> int:
    """Index of the first op that is not a ``tile.const`` (``len(ops)`` when all are)."""
    return next((k for k, o in enumerate(ops) if o.name != CONST), len(ops))


class ConstEnd:
    """The end of a block's leading constants, kept across inserts; rescanned if the block disagrees."""

    def __init__(self):
        self.end = 0

    def next(self, block) -> int:
        """Position for one more leading constant of ``block`` (the caller inserts one there)."""
        ops, k = block.ops, self.end
        # Why check: where another edit moved the boundary (an op removed or inserted there), scan again.
        if not (k <= len(ops) and (k == len(ops) or ops[k].name != CONST) and (k == 0 or ops[k - 1].name == CONST)):
            k = first_non_const(ops)
        self.end = k + 1
        return k
