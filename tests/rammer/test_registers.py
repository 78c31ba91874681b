"""Registers in persistent blocks: a member must fit the per-thread budget ptxas gives the packed block.

A persistent block is emitted with ``__launch_bounds__(threads, blocks_per_sm)``; ptxas caps each thread's
registers by that and spills what a member needs beyond (vit_s32-small before: a Welder back-to-back GEMM
in a 544-thread block capped at 96 registers, 232 B of spills). ``analysis/rammer/regs`` estimates each
kernel's registers from its IR and the scheduler keeps members out of blocks that cannot hold them.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer import Member, place
from tilec.analysis.rammer.cost import resident_blocks
from tilec.analysis.rammer.regs import BASE_REGS, kernel_regs, reg_budget
from tilec.analysis.rammer.schedule import _classes

H200 = get_arch("h200")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("threads, blocks, regs", [
    # ptxas 13 (sm_90), a kernel needing 200 registers under __launch_bounds__(threads, blocks)
    (544, 1, 96), (256, 2, 128), (288, 2, 96), (288, 3, 72), (320, 3, 64), (544, 2, 56), (160, 5, 72),
    (1024, 1, 64), (256, 1, 255)])
def test_budget_is_what_ptxas_gives(threads, blocks, regs):
    assert reg_budget(H200, threads, blocks) == regs


def test_resident_blocks_follow_the_register_estimate():
    assert resident_blocks(H200, 256, 0, 64) == 4
    assert resident_blocks(H200, 256, 0, 128) == 2
    assert resident_blocks(H200, 544, 0, 96) == 1
    assert resident_blocks(H200, 544, 0, 101) == 0   # not even one block: ptxas would spill


def _m(node, threads, regs, fixed=False):
    return Member(node, f"k{node}", 8, threads, 0, True, flops=8 * 2 ** 20, bytes=8 * 2 ** 16,
                  guardable=not fixed, regs=regs)


def test_register_heavy_member_does_not_join_a_wide_class():
    wide = _m(0, 544, 40, fixed=True)
    light, heavy = _m(1, 256, 64), _m(2, 256, 120)
    classes = [[m.node for m in c] for c in _classes([wide, light, heavy], H200)]
    assert classes == [[0, 1], [2]]   # 120 > 96 registers a 544-thread block allows


def test_place_refuses_or_lowers_occupancy_for_registers():
    assert place([_m(0, 544, 40, fixed=True), _m(1, 256, 120)], {}, H200) is None
    p = place([_m(0, 256, 120), _m(1, 256, 40)], {}, H200)
    assert p is not None and p.blocks_per_sm <= 2 and reg_budget(H200, 256, p.blocks_per_sm) >= 120


def test_kernel_regs_counts_locals():
    from tilec.backend.lower.builder import KernelBuilder
    from tilec.ir.core import Operation, Region
    kb = KernelBuilder()
    kb.local("k_acc", "f32", [32], init="0.0f")   # 32 accumulators
    kb.local("k_v", "f32x4")                       # a 16-byte fragment: 4 registers
    kb.local("k_d", "f64")                         # 2 registers
    region = Region()
    for op in list(kb.body.ops):
        kb.body.remove(op)
        region.block.append(op)
    k = Operation("kernel.func", attributes={"sym_name": "k"}, regions=[region])
    assert kernel_regs(k, 64) == BASE_REGS + 32 + 4 + 2
    k.attributes["source"] = "/* hand-written */"
    assert kernel_regs(k, 64) == 64   # no IR to read: the assumed figure


def _vit(tmp_path) -> Path:
    path = ROOT / "build" / "zoo" / "vit_s32-small.onnx"
    if path.is_file():
        return path
    import onnx
    sys.path.insert(0, str(ROOT))
    from samples.models import build
    out = tmp_path / "vit_s32-small.onnx"
    onnx.save(build("vit_s32", "small"), str(out))
    return out


def _members_fit(build_dir: Path):
    """(kernel, member, estimate, budget) for every rOperator of a persistent kernel that overflows it."""
    from tilec.ir.core import lookup_symbol
    from tilec.ir.parser import parse_module
    module = parse_module((build_dir / "model.tir").read_text())
    bad = []
    for op in module.walk():
        if op.name != "kernel.func" or op.attributes.get("kind") != "persistent":
            continue
        prog = next(o for o in op.body.ops if o.name == "rprog.program").attributes
        budget = reg_budget(H200, op.attributes["block"][0], prog["blocks_per_sm"])
        for o in op.body.ops:
            if o.name == "rprog.operator":
                k = lookup_symbol(module, o.attributes["kernel"].name)
                if kernel_regs(k, 64) > budget:
                    bad.append((op.sym_name, k.sym_name, kernel_regs(k, 64), budget))
    return bad


def test_vit_mlp_is_not_packed_into_a_wide_block(tmp_path):
    # Before: k11_fused_mlp (estimate 101, ptxas 113 standalone) ran in rammer1, 544 threads, budget 96.
    from tilec.driver import compile_model
    out = tmp_path / "vit"
    compile_model(str(_vit(tmp_path)), str(out), pipeline="rammer")
    assert _members_fit(out) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc for ptxas")
def test_vit_persistent_kernels_do_not_spill(tmp_path):
    import json
    from tilec.driver import compile_model
    out = tmp_path / "vit"
    compile_model(str(_vit(tmp_path)), str(out), pipeline="rammer", check_ptx=True)
    report = json.loads((out / "report.json").read_text())
    spills = {k["name"]: k["ptxas"]["spill_bytes"] for k in report["kernels"] if k.get("ptxas")}
    assert report["totals"]["spill_bytes"] == 0, {k: v for k, v in spills.items() if v}
