"""The latency model (``analysis/latency.py``, ``kernel_work.py``, ``measured.py``): each term against numbers
worked out by hand from the arch spec; waves, tail, occupancy and idle SMs; the unit a kernel's FLOPs run on;
Rammer's makespan; the kernel-IR walk; a fabricated calibration file; and report.json / run.json end to end."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from tilec.analysis import latency
from tilec.analysis.hardware import get_arch
from tilec.analysis.kernel_work import BlockWork, block_work
from tilec.analysis.measured import effective_spec, load_measured
from tilec.ir import CompileError
from tilec.ir.core import Operation, Region

H200 = get_arch("h200")
S = H200.num_sms


def load(**kw) -> latency.KernelLoad:
    base = dict(blocks=S, threads=256, smem=0, regs=32, flops=0.0, dtype="f32", tensor=False, l2_bytes=0.0,
                dram_bytes=0.0)
    return latency.KernelLoad(**{**base, **kw})


def test_the_time_is_the_largest_term_plus_launch_and_barriers():
    est = latency.estimate(H200, load(dram_bytes=48e6, l2_bytes=48e6, work=BlockWork(barriers=3)))
    assert est.bound == "dram"
    # 132 blocks of 8 warps: one per SM, so 8 warps in flight of the 32 that hide DRAM latency.
    assert est.terms["dram"] == pytest.approx(48e6 / (H200.dram_bytes_per_s * 8 / 32))
    assert est.launch == pytest.approx(H200.launch_overhead_us * 1e-6)
    assert est.barriers == pytest.approx(3 * H200.barrier_cycles / (H200.clock_ghz * 1e9))
    assert est.seconds == pytest.approx(max(est.terms.values()) + est.launch + est.barriers)


def test_fewer_blocks_than_sms_leave_sms_idle():
    one = latency.estimate(H200, load(blocks=1, dram_bytes=1e6))
    full = latency.estimate(H200, load(blocks=S, dram_bytes=1e6))
    assert (one.sms, full.sms) == (1, S)
    assert one.terms["dram"] == pytest.approx(S * full.terms["dram"])


def test_waves_tail_and_occupancy():
    # 256 threads and 64 registers: the register file holds 4 blocks per SM (65536 / (256 * 64)).
    est = latency.estimate(H200, load(blocks=4 * S, regs=64, work=BlockWork(barriers=1)))
    assert (est.per_sm, est.waves) == (4, 1)
    tail = latency.estimate(H200, load(blocks=4 * S + 1, regs=64, work=BlockWork(barriers=1)))
    assert tail.waves == 2 and tail.barriers == pytest.approx(2 * est.barriers)
    # Shared memory binds instead: 100 KB blocks, two per SM.
    smem = latency.estimate(H200, load(blocks=4 * S, regs=32, smem=100 * 1024))
    assert (smem.per_sm, smem.waves) == (2, 2)


def test_flops_run_on_the_unit_the_kernel_uses():
    flops = 1e12
    ffma = latency.estimate(H200, load(flops=flops, blocks=8 * S))
    assert ffma.terms["ffma"] == pytest.approx(flops / H200.fp32_flops)
    # Pure FFMA fills every issue slot too (4 schedulers x 32 lanes x 2 FLOPs a clock is the FP32 peak).
    assert ffma.bound in ("ffma", "issue") and ffma.terms["issue"] == pytest.approx(ffma.terms["ffma"], rel=0.01)
    mma = latency.estimate(H200, load(flops=flops, blocks=8 * S, tensor=True, dtype="f16"))
    assert mma.bound == "tensor_f16" and mma.terms["tensor_f16"] == pytest.approx(flops / H200.fp16_tensor_flops)
    # A warp per SM uses one of its four schedulers' units.
    lone = latency.estimate(H200, load(flops=flops, threads=32))
    assert lone.terms["ffma"] == pytest.approx(4 * flops / H200.fp32_flops)
    sfu = latency.estimate(H200, load(work=BlockWork(sfu_ops=1e6)))
    assert sfu.terms["sfu"] == pytest.approx(1e6 / (H200.sfu_per_clk_per_sm * H200.clock_ghz * 1e9))


def test_a_persistent_kernel_takes_at_least_rammers_makespan():
    est = latency.estimate(H200, load(makespan_s=50e-6, dram_bytes=1e3))
    assert est.bound == "makespan"
    assert est.seconds == pytest.approx(50e-6 + H200.launch_overhead_us * 1e-6)


def _op(op_name, regions=(), **attrs):
    op = Operation(op_name, attributes=attrs, regions=[Region() for _ in regions])
    for region, ops in zip(op.regions, regions):
        for o in ops:
            region.blocks[0].append(o)
    return op


def test_block_work_counts_loops_register_reuse_barriers_and_sfu_calls():
    # for kk in 0..16 step 4:  copy a 64-element tile (block-stride), barrier,
    #   for i in 0..4: r = i; for j in 0..2: acc[i*2+j] += s[r][kk] * expf(t[j][kk])
    #   barrier
    inner = _op("kernel.for", [[_op("kernel.assign", target="acc[i * 2 + j]",
                                    value="acc[i * 2 + j] + s[r][kk] * expf(t[j][kk])")]],
                var="j", lo=0, hi=2)
    body = [_op("kernel.for", [[_op("kernel.load", target="s[e / 16][e % 16]", buffer="in0", index="e")]],
                var="e", lo="threadIdx.x", hi=64, step=128),
            _op("kernel.barrier"),
            _op("kernel.for", [[_op("kernel.let", name="r", value="i + 0"), inner]], var="i", lo=0, hi=4),
            _op("kernel.barrier")]
    func = _op("kernel.func", [[_op("kernel.shared", name="s", dims=[4, 16]),
                               _op("kernel.shared", name="t", dims=[2, 16]),
                               _op("kernel.for", [body], var="kk", lo=0, hi=16, step=4)]],
               block=[128, 1, 1], grid=[1, 1, 1])
    w = block_work(func)
    assert w.barriers == 4 * 2
    # Per thread per kk step: the copy's 64/128 of a write; s[r][kk] depends on i only (4 reads, kept in a
    # register across j); t[j][kk] on j only (2); expf runs 4 * 2 times. Over 128 threads and 4 kk steps.
    assert w.smem_accesses == pytest.approx(4 * 128 * (64 / 128 + 4 + 2))
    assert w.sfu_ops == pytest.approx(4 * 128 * 8)
    assert not block_work(_op("kernel.func", [[]], block=[32, 1, 1], source="...")).known


def _measured(tmp_path, **constants):
    (tmp_path / "h200.measured.json").write_text(json.dumps({"arch": "h200", "constants": constants}))
    return tmp_path


def test_a_measured_file_overrides_the_specs_constants(tmp_path):
    assert effective_spec(H200, tmp_path) is H200   # no file: the spec as it is
    hw = _measured(tmp_path, launch_overhead_us=1.5, dram_bytes_per_s=4.0e12, barrier_cycles=40)
    spec = effective_spec(H200, hw)
    assert (spec.launch_overhead_us, spec.dram_bytes_per_s, spec.barrier_cycles) == (1.5, 4.0e12, 40)
    assert isinstance(spec.barrier_cycles, int) and spec.num_sms == H200.num_sms
    slow = latency.estimate(H200, load(dram_bytes=48e6)).terms["dram"]
    assert latency.estimate(spec, load(dram_bytes=48e6)).terms["dram"] == pytest.approx(slow * 4.8 / 4.0)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a readable JSON"),
    (json.dumps({"arch": "h200"}), "'constants' object"),
    (json.dumps({"arch": "a100", "constants": {}}), "not 'h200'"),
    (json.dumps({"arch": "h200", "constants": {"num_sms": 100}}), "unknown constant"),
    (json.dumps({"arch": "h200", "constants": {"fp32_flops": -1}}), "not a positive number"),
    (json.dumps({"arch": "h200", "constants": {"fp32_flops": "fast"}}), "not a positive number"),
])
def test_a_bad_measured_file_is_an_input_error(tmp_path, content, message):
    (tmp_path / "h200.measured.json").write_text(content)
    with pytest.raises(CompileError, match=message):
        load_measured("h200", tmp_path)


def test_report_and_run_carry_the_model(tmp_path):
    from tilec.driver import compile_model
    from tilec.runtime.emu_device import EmuDevice
    from tilec.runtime.executor import Executor
    out = tmp_path / "b"
    compile_model("samples/mlp.onnx", str(out), pipeline="default")
    report = json.loads((out / "report.json").read_text())
    rows = report["kernels"]
    assert all(r["modelled_us"] >= r["speed_of_light_us"] and r["latency"]["bound"] for r in rows)
    assert report["totals"]["modelled_us"] == pytest.approx(sum(r["modelled_us"] * r["launches"] for r in rows))
    ex = Executor.from_build(str(out), EmuDevice(cache_dir=str(tmp_path / "emu")))
    ex.run({"x": np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)})
    run = ex.report()
    t = run["totals"]
    assert t["l2_bytes"] == t["global_bytes"] and 0 < t["dram_bytes"]
    assert t["dram_bytes"] == sum(r["dram_bytes"] for r in run["kernels"])
    again = latency.remodel(get_arch(report["arch"]), report, run)
    assert again["total"] == pytest.approx(sum(again[r["name"]] * r["launches"] for r in rows), rel=1e-6)
    assert all(math.isfinite(v) and v > 0 for v in again.values())


def test_estimates_are_deterministic_and_round_trip_through_json():
    ld = load(flops=3e9, dram_bytes=2e6, l2_bytes=5e6, work=BlockWork(barriers=2, smem_accesses=1e5))
    back = latency.load_from_json(json.loads(json.dumps(latency.load_to_json(ld))))
    assert back == ld and latency.estimate(H200, back) == latency.estimate(H200, ld)
    assert dataclasses.asdict(latency.estimate(H200, ld)) == dataclasses.asdict(latency.estimate(H200, back))


def test_a_measured_file_is_never_taken_for_an_arch():
    from tilec.analysis.hardware import available_archs, get_arch as arch
    assert all("." not in a for a in available_archs())
    with pytest.raises(CompileError, match="unknown arch"):
        arch("h200.measured")
