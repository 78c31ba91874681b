"""The importer's remembered end of the leading constants (frontend/const_insert.py) gives the position a scan
of the block gives, and a boundary that another edit moved
is found again by the scan."""
import random

from tilec.frontend.const_insert import ConstEnd, first_non_const
from tilec.ir.core import Block, Operation


def _op(name):
    return Operation(name, [], [], {})


def test_remembered_end_matches_scan_for_importer_edits():
    # The importer's edits: a constant at the remembered end, any other op appended.
    rng = random.Random(0)
    block, end = Block(), ConstEnd()
    for _ in range(400):
        if rng.random() < 0.5:
            k = end.next(block)
            assert k == first_non_const(block.ops)
            block.insert(k, _op("tile.const"))
        else:
            block.append(_op("tile.compute"))
    assert first_non_const(block.ops) == end.end


def test_boundary_that_moved_is_rescanned():
    block, end = Block(), ConstEnd()
    for _ in range(3):
        block.insert(end.next(block), _op("tile.const"))
    block.append(_op("tile.compute"))
    block.remove(block.ops[0])              # two leading constants left, the end said three
    assert end.next(block) == 2
    block.insert(2, _op("tile.const"))
    block.insert(0, _op("tile.compute"))    # no leading constant at all now
    assert end.next(block) == 0


def test_all_constants_and_empty_block():
    block, end = Block(), ConstEnd()
    assert end.next(block) == 0
    block.insert(0, _op("tile.const"))
    assert end.next(block) == 1
