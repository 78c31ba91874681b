"""The rprog IR level: the rammer pass on the lit input, and the verifier rejecting broken rPrograms
(a task placed twice or never, a wait on a step that does not exist, more vEUs than can be resident)."""
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
    (lambda k: (_veu(k, 1).attributes["segments"].append([0, 0, 1]),
                _veu(k, 1).attributes["waits"].append([])), "exactly once"),
    (lambda k: _veu(k, 0).attributes["waits"].__setitem__(1, [[1, 5]]), "bad wait"),
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
    # The lit input's kernels made large: 2048 blocks each, holding 24 KB of shared memory. Alone, 8 such
    # blocks fit an SM; packed, the arrays add up and far fewer do, so no grouping wins and the module is
    # left exactly as it was.
    from tilec.ir.core import Operation
    from tilec.ir.printer import print_module
    module = read_ir(str(LIT_INPUT))
    for k in module.body.ops:
        if k.name == "kernel.func":
            k.attributes.update(grid=[2048, 1, 1], block=[128, 1, 1], flops=2048 * 2 ** 24,
                                bytes_modelled=2048 * 2 ** 18)
            k.body.insert_before(k.body.ops[0], Operation("kernel.shared", attributes={
                "name": "k_pad", "dtype": "f32", "dims": [6 * 1024]}))
    before = print_module(module)
    get_pass("rammer", arch="h200").apply(module)
    assert print_module(module) == before
    # ... while the same kernels at their own size are packed (the test above): the cost model decided.
