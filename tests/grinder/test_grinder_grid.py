"""Grinder's grid choice (``analysis/grinder.choose_grid``): every block of a device loop must be resident at
once (its grid barriers wait for all of them), and no more blocks share an SM than the stages' registers allow
under ``__launch_bounds__(threads, blocks_per_sm)``: the same bound as Rammer's (``rammer.cost.program_blocks``)."""
from __future__ import annotations

import pytest

from tilec.analysis.grinder import choose_grid
from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.cost import Member, resident_blocks
from tilec.analysis.rammer.regs import reg_budget


def _stage(node: int, regs: int, blocks: int = 4096, threads: int = 256) -> Member:
    """A memory-bound stage with many blocks: the estimate prefers as many blocks per SM as allowed."""
    return Member(node, f"k{node}", blocks, threads, 0, False, 4 * blocks * threads, 64 * blocks * threads,
                  regs=regs)


@pytest.mark.parametrize("regs", [32, 64, 96, 128, 200])
def test_the_grid_is_resident_and_holds_the_hungriest_stage(regs):
    spec = get_arch("h200")
    choice = choose_grid([_stage(0, 32), _stage(1, regs)], spec, host_reads=False)
    assert choice.grid == choice.blocks_per_sm * spec.num_sms
    assert choice.blocks_per_sm <= resident_blocks(spec, 256, 0)          # co-resident: barriers complete
    assert reg_budget(spec, 256, choice.blocks_per_sm) >= max(regs, 64)  # no stage spills
    # Every occupancy the registers allow was tried (the cheapest is not capped below the bound).
    tried = {g // spec.num_sms for g, _ in choice.candidates}
    assert max(tried) == min(resident_blocks(spec, 256, 0), resident_blocks(spec, 256, 0, regs))


def test_a_stage_that_no_block_can_hold_leaves_the_loop_on_the_host():
    spec = get_arch("h200")
    assert choose_grid([_stage(0, spec.max_regs_per_thread + 1)], spec, host_reads=False) is None
