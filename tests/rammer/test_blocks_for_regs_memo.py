"""``regs.blocks_for_regs`` is memoised on every spec field it reads: the memo gives what the loop over
``reg_budget`` gives, for every spec, never another spec's answer."""
from __future__ import annotations

import dataclasses

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer import regs


def _loop(spec, threads, r):
    n = 0
    while n < spec.max_blocks_per_sm and regs.reg_budget(spec, threads, n + 1) >= r:
        n += 1
    return n


def test_memo_equals_the_loop_across_specs():
    h200 = get_arch("h200")
    specs = [h200, get_arch("a100"), get_arch("mi250x"),
             dataclasses.replace(h200, regs_per_sm=h200.regs_per_sm // 2),
             dataclasses.replace(h200, max_blocks_per_sm=4)]
    regs._BLOCKS_FOR_REGS.clear()
    for _ in range(2):   # the second pass reads the memo
        for spec in specs:
            for threads in (32, 96, 128, 256, 1024):
                for r in (16, 40, 64, 128, 255):
                    assert regs.blocks_for_regs(spec, threads, r) == _loop(spec, threads, r), (spec.arch, threads, r)
    assert regs.blocks_for_regs(specs[3], 256, 64) < regs.blocks_for_regs(h200, 256, 64)
