"""The rammer pipeline end to end: samples/parallel packed into persistent kernels run under the emulator
(grid-concurrent) and match numpy in every block order; a dropped wait or a cyclic wait is caught; the
persistent kernels pass ptxas for sm_90 within the resident-block limits; the rProgram IR round-trips."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tilec.analysis.hardware import get_arch
from tilec.backend.emit import emit_kernel
from tilec.driver import load_target, make_executor
from tilec.ir.core import lookup_symbol
from tilec.ir.diagnostics import CompileError
from tilec.ir.io import read_ir
from tilec.ir.printer import print_module
from tilec.runtime.interpreter import run_module


def plan_of(build_dir: Path) -> dict:
    return json.loads((build_dir / "plan.json").read_text())


def random_inputs(build_dir: Path, seed: int = 0) -> dict:
    plan = plan_of(build_dir)
    shapes = {b["name"]: b["shape"] for b in plan["buffers"]}
    rng = np.random.default_rng(seed)
    return {i["name"]: rng.standard_normal(shapes[i["buffer"]]).astype(np.float32) for i in plan["inputs"]}


SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "parallel"
FAST = ["lstm_cell", "nasnet_cell"]
SLOW = [pytest.param(m, marks=pytest.mark.slow) for m in ("resnext_block", "inception_block")]


def persistent(build_dir):
    return [s for s in plan_of(build_dir)["steps"] if s.get("concurrent")]


def emu_outputs(build_dir, inputs, order):
    return make_executor(str(build_dir), "emu", order).run(inputs)


@pytest.mark.parametrize("model", FAST + SLOW)
def test_packed_model_matches_numpy_in_every_order(build, model):
    b = build(model)
    assert persistent(b), "rammer packed nothing"
    inputs = random_inputs(b)
    ref = run_module(load_target(str(SAMPLES / f"{model}.onnx")), inputs)
    for order in ("normal", "reverse", "shuffle"):
        out = emu_outputs(b, inputs, order)
        for k in ref:
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=f"{model} {order}")


@pytest.mark.parametrize("model", FAST + SLOW)
def test_launches_drop_3x_against_welder(build, model):
    launches = lambda b: sum(1 for s in plan_of(b)["steps"] if s["kind"] == "launch")  # noqa: E731
    module = read_ir(str(build(model) / "model.tir"))
    spec = get_arch("h200")
    from tilec.analysis.rammer.report import plan_seconds
    assert 3 * launches(build(model)) <= launches(build(model, "welder"))
    assert plan_seconds(module, spec) < plan_seconds(read_ir(str(build(model, "welder") / "model.tir")), spec)


def test_barrier_kernels_run_guarded_in_a_wider_block(build):
    # nasnet_cell packs narrower kernels with __syncthreads into one wider persistent block: they run
    # guarded (every thread meets the barriers, only the first ones work); numerics: the test above. (Which
    # widths depends on the tiles the latency model picks: 12 and 144 threads before issue #18.)
    b = build("nasnet_cell")
    [step] = persistent(b)
    text = (b / "kernels" / f"{step['kernel']}.cu").read_text()
    guards = [int(n) for n in re.findall(r"const bool k_on = threadIdx\.x < (\d+);", text)]
    assert guards and all(n < step["block"][0] for n in guards), (guards, step["block"])


def test_conv_chains_pack_with_their_shared_arrays_overlaid(build):
    # Inception's three Welder conv chains hold 9 KB, 12 KB and 7 KB of shared arrays (23, 25 and 6 KB before
    # their tiles were chosen by the latency model, issue #18: then one __shared__ declaration per
    # __device__ function would have needed their sum, over the 48 KB a block may declare). A vEU runs one
    # rTask at a time, so the persistent kernel declares one arena of the largest member's bytes, not their
    # sum, and each member views its arrays there (numerics: the tests above).
    from tilec.analysis.rammer.shared import shared_bytes
    b = build("inception_block")
    [step] = persistent(b)
    module = read_ir(str(b / "model.tir"))
    kernels = [lookup_symbol(module, op.attributes["kernel"].name)
               for op in lookup_symbol(module, step["kernel"]).body.ops if op.name == "rprog.operator"]
    sizes = [shared_bytes(k) for k in kernels if "conv_chain" in k.sym_name]
    assert len(sizes) == 3 and max(sizes) < sum(sizes)
    text = (b / "kernels" / f"{step['kernel']}.cu").read_text()
    assert f"TL_SHARED(float4, k_arena, [{max(sizes) // 16}]);" in text
    # The members declare no arrays of their own: the arena, and the block's buffer pointer table.
    assert [ln.split(",")[1].strip() for ln in re.findall(r"^\s+TL_SHARED\(.*", text, re.M)] == ["k_args", "k_arena"]


def test_members_with_shared_arrays_take_turns_in_the_arena(build):
    # On the LSTM some vEU runs several different members with shared arrays one after another, all viewing
    # the arena from offset 0: the numerics test above (every block order) covers that reuse.
    from tilec.analysis.rammer.shared import shared_bytes
    b = build("lstm_cell")
    module = read_ir(str(b / "model.tir"))
    most = 0
    for step in persistent(b):
        kernel = lookup_symbol(module, step["kernel"])
        ops = [op for op in kernel.body.ops if op.name == "rprog.operator"]
        shared = [shared_bytes(lookup_symbol(module, op.attributes["kernel"].name)) > 0 for op in ops]
        for veu in (op for op in kernel.body.ops if op.name == "rprog.veu"):
            most = max(most, len({i for i, _, _ in veu.attributes["segments"] if shared[i]}))
    assert most >= 2


def test_wave_takes_roller_alternative_tiles(tmp_path, monkeypatch):
    # The LSTM's small matmuls have Roller alternatives with more, smaller tiles; packed, some take one
    # (the estimate says so), the rOperator records it, and its kernel is the variant's own. Rammer's own
    # task model decides here: under the latency model's (issue #18, Member.seconds) the variants' sub-warp
    # blocks (2 x 16, 4 x 8 threads) cost what the 32-thread block does and none is taken.
    import tilec.passes.rammer as rammer_pass
    from tilec.driver import compile_model
    monkeypatch.setattr(rammer_pass, "modelled_seconds", lambda spec, k: 0.0)
    b = tmp_path / "lstm_cell"
    compile_model(str(SAMPLES / "lstm_cell.onnx"), str(b), pipeline="rammer")
    module = read_ir(str(b / "model.tir"))
    ops = [op for s in persistent(b) for op in lookup_symbol(module, s["kernel"]).body.ops
           if op.name == "rprog.operator" and op.attributes.get("variant", 0)]
    assert ops, "no rOperator took an alternative tile"
    for op in ops:
        k = lookup_symbol(module, op.attributes["kernel"].name)
        assert k.sym_name.endswith(f"_v{op.attributes['variant']}")
        assert op.attributes["tasks"] == k.attributes["grid"][0]
        assert {a: op.attributes["rtile"]["block"][a] for a in k.attributes["config"]["block"]} == \
            k.attributes["config"]["block"]


def _edit_program(build_dir, tmp_path, edit):
    """A copy of ``build_dir`` whose first persistent kernel was re-emitted after ``edit(veu_ops)``."""
    out = tmp_path / "broken"
    shutil.copytree(build_dir, out)
    module = read_ir(str(out / "model.tir"))
    name = persistent(out)[0]["kernel"]
    kernel = lookup_symbol(module, name)
    edit([op for op in kernel.body.ops if op.name == "rprog.veu"])
    (out / "kernels" / f"{name}.cu").write_text(emit_kernel(kernel))
    return out


def _last_step(veus) -> dict:
    """For each rOperator, the latest position (segment index) any vEU runs it at."""
    last: dict = {}
    for v in veus:
        for s, (i, _, _) in enumerate(v.attributes["segments"]):
            last[i] = max(last.get(i, 0), s)
    return last


def test_dropped_wait_is_caught(build, tmp_path):
    b = build("lstm_cell")

    def drop_one(veus):
        # Drop the waits of the segment whose producers lie furthest ahead of it (their latest position on any
        # vEU minus its own): the emulator interleaves blocks at barriers, so that consumer surely runs too early.
        last = _last_step(veus)
        best = max(((max(last[d] for d in w) - i, v, i) for v in veus for i, w in enumerate(v.attributes["waits"])
                    if w), key=lambda t: t[0], default=None)
        assert best is not None and best[0] >= 1, "no wait worth dropping"   # the producer runs later
        best[1].attributes["waits"][best[2]] = []
    broken = _edit_program(b, tmp_path, drop_one)
    inputs = random_inputs(b)
    ref = run_module(load_target(str(SAMPLES / "lstm_cell.onnx")), inputs)
    caught = []
    for order in ("normal", "reverse", "shuffle"):
        try:
            out = emu_outputs(broken, inputs, order)
        except CompileError as e:
            caught.append(f"{order}: {e}")
            continue
        if not all(np.allclose(out[k], ref[k], rtol=1e-4, atol=1e-5) for k in ref):
            caught.append(f"{order}: wrong result")
    assert caught, "a missing dependency went unnoticed in every order"


def test_cyclic_wait_is_reported_as_a_deadlock(build, tmp_path):
    b = build("lstm_cell")

    def cycle(veus):
        # vEU 0's first segment waits for every rTask of the rOperator its own last segment runs: never.
        segs = veus[0].attributes["segments"]
        assert len(segs) > 1
        veus[0].attributes["waits"][0] = [segs[-1][0]]
    broken = _edit_program(b, tmp_path, cycle)
    with pytest.raises(CompileError, match="deadlock"):
        emu_outputs(broken, random_inputs(b), "normal")


@pytest.mark.parametrize("model", FAST + SLOW)
def test_persistent_kernels_fit_resident_limits_under_ptxas(build, model):
    from tilec.backend.ptxas import check_kernels, find_nvcc
    if find_nvcc() is None:
        pytest.skip("nvcc is not available")
    b = build(model)
    spec = get_arch("h200")
    steps = {s["kernel"]: s for s in persistent(b)}
    info = check_kernels({k: (b / "kernels" / f"{k}.cu").read_text() for k in steps})
    module = read_ir(str(b / "model.tir"))
    for name, step in steps.items():
        program = next(op for op in lookup_symbol(module, name).body.ops if op.name == "rprog.program")
        per_sm = program.attributes["blocks_per_sm"]
        threads = -(-step["block"][0] // 32) * 32
        assert step["grid"][0] <= per_sm * spec.num_sms
        assert info[name].registers * threads * per_sm <= spec.regs_per_sm, name
        assert info[name].smem * per_sm <= spec.smem_per_sm_bytes, name
        assert threads * per_sm <= spec.max_threads_per_sm


def test_rprogram_ir_round_trips(build):
    b = build("lstm_cell")
    text = (b / "model.tir").read_text()
    assert '"rprog.veu"' in text
    assert print_module(read_ir(str(b / "model.tir"))) == text


def test_schedule_trace_and_estimates(build, tmp_path):
    from click.testing import CliRunner

    from tilec.analysis.rammer.report import plan_seconds, replay
    from tilec.cli.main import cli
    b = build("lstm_cell")
    out = tmp_path / "trace.json"
    result = CliRunner().invoke(cli, ["viz", "--schedule", str(b), "-o", str(out)])
    assert result.exit_code == 0, result.output
    events = [e for e in json.loads(out.read_text())["traceEvents"] if e["ph"] == "X"]
    module = read_ir(str(b / "model.tir"))
    kernels = [lookup_symbol(module, s["kernel"]) for s in persistent(b)]
    veus = sum(len([o for o in k.body.ops if o.name == "rprog.veu"]) for k in kernels)
    assert len({(e["pid"], e["tid"]) for e in events}) == veus
    assert len(events) == sum(len(replay(k)) for k in kernels)
    spec = get_arch("h200")
    assert plan_seconds(module, spec) < plan_seconds(read_ir(str(build("lstm_cell", "welder") / "model.tir")), spec)
