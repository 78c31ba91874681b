"""Issue #15: the default pipeline failed on ConvNeXt-tiny, GPT-2, ViT-B/16 and an f16 attention with
``IR is invalid after pass 'rammer': 'rprog.program' needs 768 resident vEUs at 6 per SM``. Rammer's
``place`` tried every occupancy up to ``resident_blocks(threads, smem, regs)`` for the members' *estimated*
registers, while the ``rprog.program`` verifier bounds the occupancy at ``REGS_ASSUMED`` (64) registers: a
256-thread elementwise member estimated at 34 registers allowed 6 blocks per SM where the verifier allows 4.
Three independent 256-block elementwise branches (768 tasks) reproduce it: 768 vEUs at 6 per SM run them in one
round, which the cost model prefers to two rounds at 4 per SM. Fixed by ``rammer.cost.program_blocks``."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tilec.analysis.rammer.schedule as schedule
from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.cost import REGS_ASSUMED, program_blocks, resident_blocks
from tilec.driver import compile_model, run_target
from tilec.ir.diagnostics import PassVerificationError
from tilec.ir.io import read_ir

BRANCHES, N = 3, 65536   # 256 blocks of 256 threads per branch


def _model(path) -> dict:
    """``BRANCHES`` independent ``relu(x * c_i)`` branches over one input; writes the model, returns inputs."""
    rng = np.random.default_rng(0)
    nodes, inits, outs = [], [], []
    for b in range(BRANCHES):
        inits.append(numpy_helper.from_array(rng.standard_normal((1, N)).astype(np.float32), f"c{b}"))
        nodes += [helper.make_node("Mul", ["x", f"c{b}"], [f"m{b}"]), helper.make_node("Relu", [f"m{b}"], [f"y{b}"])]
        outs.append(helper.make_tensor_value_info(f"y{b}", TensorProto.FLOAT, [1, N]))
    graph = helper.make_graph(nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N])],
                              outs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return {"x": rng.standard_normal((1, N)).astype(np.float32),
            **{f"c{b}": numpy_helper.to_array(inits[b]) for b in range(BRANCHES)}}


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "branches.onnx"
    return str(path), _model(path)


def _programs(build) -> list:
    return [op for op in read_ir(str(build / "model.tir")).walk() if op.name == "rprog.program"]


def test_program_blocks_never_exceeds_the_verifiers_bound():
    spec = get_arch("h200")
    for threads in (64, 128, 256, 512, 1024):
        for regs in (16, 32, 40, 63, 64, 96, 128, 255):
            for smem in (0, 4096, 40000):
                n = program_blocks(spec, threads, smem, regs)
                assert n <= resident_blocks(spec, threads, smem)            # what rprog.program checks
                assert n <= resident_blocks(spec, threads, smem, regs)      # what the members need
                assert n == min(resident_blocks(spec, threads, smem), resident_blocks(spec, threads, smem, regs))


def test_the_old_bound_emitted_a_program_that_does_not_verify(model, tmp_path, monkeypatch):
    path, _ = model
    spec = get_arch("h200")
    # The members' estimate (34 registers) lets more 256-thread blocks share an SM than 64 registers do.
    assert resident_blocks(spec, 256, 0, 34) > resident_blocks(spec, 256, 0, REGS_ASSUMED) == 4
    monkeypatch.setattr(schedule, "program_blocks",
                        lambda spec, threads, smem, regs: resident_blocks(spec, threads, smem, regs))
    with pytest.raises(PassVerificationError, match=r"'rammer'.*needs 768 resident vEUs at 6 per SM"):
        compile_model(path, str(tmp_path / "old"))


def test_the_default_pipeline_packs_within_the_bound_and_runs_resident(model, tmp_path):
    path, feeds = model
    build = tmp_path / "b"
    compile_model(path, str(build))
    programs = _programs(build)
    assert len(programs) == 1                     # the three branches are still packed into one rProgram
    p = programs[0].attributes
    spec = get_arch(p["arch"])
    assert p["blocks_per_sm"] <= resident_blocks(spec, 256, 0) and p["veus"] <= p["blocks_per_sm"] * spec.num_sms
    np.savez(tmp_path / "in.npz", x=feeds["x"])
    run_target(str(build), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), backend="emu",
               emu_resident_limit=True)   # every vEU co-resident on the target, or the emulator reports it
    with np.load(tmp_path / "out.npz") as got:
        for b in range(BRANCHES):
            np.testing.assert_allclose(got[f"y{b}"], np.maximum(feeds["x"] * feeds[f"c{b}"], 0), rtol=1e-6)
