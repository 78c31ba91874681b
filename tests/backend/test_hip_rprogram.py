"""Rammer's rPrograms on AMD (issue #23, docs/amd.md "Register files"): hipcc inlines every member into the
persistent kernel, so on HIP the members read the thread index through hip_prelude.h's opaque ``tl_thread_x``
(LLVM would hoist every member's thread-index arithmetic out of the dispatch loop, all live at once) and the
buffer table is filled by index from the kernarg segment (``tl_kernarg_ptr``: by name, every argument is
loaded at the kernel's entry; Grinder's device loops copy theirs the same way). CUDA sources keep their text.
The small zoo's rammer and grinder builds for mi250x compile with no spills under ``--check-hip`` (slow)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from tilec.backend import hipcc
from tilec.cli.main import cli
from tilec.driver import compile_model, make_executor

ROOT = Path(__file__).resolve().parents[2]
needs_hipcc = pytest.mark.skipif(hipcc.find_hipcc() is None, reason="hipcc is not installed (apt-get install hipcc "
                                                                     "rocm-device-libs; .ci/run does)")


def _branches(path: Path, weights: list) -> None:
    """Three independent MatMul + Relu branches of one input: Rammer packs them into one rProgram."""
    nodes, outs = [], []
    for i in range(len(weights)):
        nodes += [helper.make_node("MatMul", ["x", f"w{i}"], [f"m{i}"]), helper.make_node("Relu", [f"m{i}"], [f"y{i}"])]
        outs.append(helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, [8, 64]))
    g = helper.make_graph(nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 64])], outs,
                          [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("rprogram")
    weights = [np.random.default_rng(i).standard_normal((64, 64)).astype(np.float32) for i in range(3)]
    _branches(d / "m.onnx", weights)
    for arch in ("mi250x", "h200"):
        compile_model(str(d / "m.onnx"), str(d / arch), pipeline="rammer", arch=arch)
    return d, weights


def _members_and_kernel(source: str) -> tuple:
    """(the member functions' text, the persistent kernel's text) of an rProgram source."""
    body = source.split("// tilec persistent kernel", 1)[1]
    members, _, kernel = body.partition('extern "C" __global__')
    return members, kernel


def test_amd_rprogram_reads_an_opaque_thread_index_and_the_kernarg_table(built):
    d, _ = built
    members, kernel = _members_and_kernel((d / "mi250x" / "kernels" / "rammer0.hip").read_text())
    assert members.count("static __device__ __noinline__ void") == 3
    assert members.count("const unsigned k_tx = tl_thread_x();") == 3 and "threadIdx" not in members
    assert "for (int k_i = tl_thread_x(); k_i < 7; k_i += " in kernel   # x, 3 weights, 3 results
    assert "k_args[k_i] = tl_kernarg_ptr(k_i);" in kernel and "k_args[0] = " not in kernel
    # CUDA keeps its text: members read threadIdx.x, thread 0 copies the buffers by name.
    members, kernel = _members_and_kernel((d / "h200" / "kernels" / "rammer0.cu").read_text())
    assert "tl_thread_x" not in members + kernel and "threadIdx.x" in members
    assert "if (k_lead) {" in kernel and "k_args[0] = a0;" in kernel and "kernarg" not in kernel


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_amd_rprogram_matches_numpy_under_the_emulator(built, order):
    """The emulator's tl_kernarg_ptr reads the launch's arguments: a wrong index would swap the branches."""
    d, weights = built
    x = np.random.default_rng(7).standard_normal((8, 64)).astype(np.float32)
    got = make_executor(str(d / "mi250x"), "emu", emu_order=order).run({"x": x})
    for i, w in enumerate(weights):
        np.testing.assert_allclose(got[f"y{i}"], np.maximum(x @ w, 0), rtol=1e-4, atol=1e-4)


@needs_hipcc
def test_amd_rprogram_compiles_with_hipcc(built):
    d, _ = built
    info = hipcc.check_kernels({"rammer0": (d / "mi250x" / "kernels" / "rammer0.hip").read_text()}, "gfx90a",
                               use_cache=False)["rammer0"]
    assert info.spills == 0 and 0 < info.vgprs <= 256


if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from samples.models import ZOO, build as build_zoo  # noqa: E402


# mobilenet_v2-small's rProgram spilled 157 VGPRs + 438 SGPRs and resnet18-small's 36 SGPRs before the opaque
# thread index and the kernarg table (docs/benchmarks/amd-2026-12-07.md); Grinder's device loops fill their
# buffer table the same way (nasrnn-small's grinder0: 176 SGPR spills before). nasnet-small's rammer0 (1024
# threads, 2 blocks per CU = 8 waves per SIMD) spilled 2 SGPRs until Rammer's residency left each wave the SGPRs
# an rProgram takes (register_files.rprogram_sgprs; tests/rammer/test_amd_sgpr_residency.py): 1 block per CU.


@pytest.mark.slow
@needs_hipcc
@pytest.mark.parametrize("pipeline", ["rammer", "grinder"])
@pytest.mark.parametrize("name", sorted(ZOO))
def test_small_zoo_rammer_builds_for_mi250x_without_spills(tmp_path, name, pipeline):
    path = tmp_path / f"{name}-small.onnx"
    onnx.save(build_zoo(name, "small"), str(path))
    r = CliRunner().invoke(cli, ["compile", str(path), "-o", str(tmp_path / "b"), "--arch", "mi250x", "--pipeline",
                                 pipeline, "--check-hip", "-q"])
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["hip_checked"] and all("hip" in row for row in report["kernels"])
    assert report["totals"]["hip_spills"] == 0, [(k["name"], k["hip"]) for k in report["kernels"] if k["hip"]["spills"]]
