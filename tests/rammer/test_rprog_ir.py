"""The rprog IR level: the rammer pass on the lit input, and the verifier rejecting broken rPrograms
(a task placed twice or never, a wait on an rOperator that is not an earlier one, segments out of order,
more vEUs than can be resident)."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.ir.diagnostics import CompileError
from tilec.ir.io import read_ir
from tilec.ir.verifier import verify
from tilec.passes import get_pass

LIT_INPUT = Path(__file__).resolve().parents[1] / "lit" / "passes" / "rammer.tir"


@pytest.fixture
def program():
    module = read_ir(str(LIT_INPUT))
    get_pass("rammer", arch="h200").apply(module)
    verify(module)
    kernel = next(op for op in module.body.ops if op.attributes.get("kind") == "persistent")
    return module, kernel


def _veu(kernel, i):
    return [op for op in kernel.body.ops if op.name == "rprog.veu"][i]


def test_packs_the_branches_into_one_launch(program):
    module, kernel = program
    main = next(op for op in module.body.ops if op.name == "func.func")
    assert [op.name for op in main.body.ops] == ["kernel.launch", "func.return"]
    assert kernel.attributes["grid"] == [3, 1, 1]


@pytest.mark.parametrize("edit, message", [
    (lambda k: _veu(k, 1).attributes["segments"].append([0, 0, 1]), "waits entry"),
    (lambda k: (_veu(k, 1).attributes["segments"].append(_veu(k, 0).attributes["segments"][-1][:]),
                _veu(k, 1).attributes["waits"].append([])), "exactly once"),
    # waits name earlier rOperators (whose rTask counters the segment waits on), nothing else
    (lambda k: _veu(k, 0).attributes["waits"].__setitem__(1, [99]), r"vEU 0: bad waits \[99\]"),
    (lambda k: _veu(k, 0).attributes["waits"].__setitem__(1, [-1]), r"bad waits \[-1\]"),
    (lambda k: _veu(k, 0).attributes["waits"].__setitem__(1, [[0, 1]]), r"bad waits \[\[0, 1\]\]"),
    (lambda k: _veu(k, 0).attributes["waits"].__setitem__(1, [_veu(k, 0).attributes["segments"][1][0]]),
     "expects indices of earlier rOperators"),
    (lambda k: _veu(k, 0).attributes["segments"].reverse(), "not in increasing order"),
    (lambda k: _veu(k, 0).attributes["segments"].__setitem__(0, [0, 0, 2]), "bad segment"),
])
def test_verifier_rejects_broken_programs(program, edit, message):
    module, kernel = program
    edit(kernel)
    with pytest.raises(CompileError, match=message):
        verify(module)


def test_verifier_rejects_more_veus_than_resident(program):
    module, kernel = program
    prog = next(op for op in kernel.body.ops if op.name == "rprog.program")
    prog.attributes["blocks_per_sm"] = 64  # the H200 holds at most 32 blocks per SM
    with pytest.raises(CompileError, match="resident-block limit"):
        verify(module)


def test_leaves_kernels_alone_where_packing_cannot_win():
    # The lit input's kernels made large: 2048 blocks of 128 threads each, compute-bound. Alone, 8 such blocks
    # fit an SM (registers). k1_sigmoid also holds 40 KB of shared memory, so it fits only 5 per SM, and a
    # persistent block running it needs that arena too (the members' arrays overlay, but the largest one
    # stays): packed, every member would run 5 per SM instead of 8, which costs far more than the launches
    # saved. That grouping does not win, so the wave stays three launches.
    from tilec.analysis.hardware import get_arch
    from tilec.analysis.rammer import place
    from tilec.analysis.rammer.cost import resident_blocks
    from tilec.ir.core import Operation
    from tilec.passes.rammer import member_of
    from tilec.runtime.interpreter import main_function
    module = read_ir(str(LIT_INPUT))
    for k in module.body.ops:
        if k.name == "kernel.func":
            k.attributes.update(grid=[2048, 1, 1], block=[128, 1, 1], flops=2048 * 2 ** 24,
                                bytes_modelled=2048 * 2 ** 18)
            if k.sym_name == "k1_sigmoid":
                k.body.insert_before(k.body.ops[0], Operation("kernel.shared", attributes={
                    "name": "k_pad", "dtype": "f32", "dims": [10 * 1024]}))
    spec = get_arch("h200")
    launches = [op for op in main_function(module).body.ops if op.name == "kernel.launch"]
    wave = [member_of(module, op, n) for n, op in enumerate(launches[:3])]  # relu, sigmoid, tanh
    assert [resident_blocks(spec, m.threads, m.smem) for m in wave] == [8, 5, 8]
    p = place(wave, {}, spec)
    assert p.blocks_per_sm == 5 and not p.wins  # the estimate, not a rule, keeps them apart
    get_pass("rammer", arch="h200").apply(module)
    # The wave stays three launches of its own kernels (add and mul, the next waves, may still pack: with
    # one rTask counter to poll per producer the model finds a launch's worth to win there).
    main = [op.attributes["kernel"].name for op in main_function(module).body.ops if op.name == "kernel.launch"]
    assert main[:3] == ["k0_relu", "k1_sigmoid", "k2_tanh"]
    packed = [o.attributes["kernel"].name for o in module.walk() if o.name == "rprog.operator"]
    assert not {"k0_relu", "k1_sigmoid", "k2_tanh"} & set(packed)
    # ... while the same kernels at their own size are packed (the test above): the cost model decided.
