"""Launch resources in one place (issue #15, ``backend/launch_resources.py``).

- The opt-in rule: a launch sets ``cudaFuncAttributeMaxDynamicSharedMemorySize`` only when static + dynamic
  shared memory exceed the arch's default per-block amount (48 KB), and then to the dynamic bytes.
- ``block_limit_problem`` accepts a block at every limit and refuses each way past one.
- ``launch_resources`` refuses a kernel.func no block can run (LaunchLimitError), and ``tilec compile`` reports
  that as an internal error (exit 3, no traceback, nothing written).
- ``static_shared_bytes`` (what a build computes without ptxas) equals ptxas' smem (``--check-ptx``'s
  ``check_kernels`` on the build's .cu files) for every kernel kind that declares shared arrays: fused
  attention, fused row, tiled_mma, tiled, fused mlp, a Rammer persistent program, a Grinder device loop and
  device if; a ``--check-ptx`` build's rows take ptxas' numbers.
- A BERT-base-like attention (12 heads, seq 128, head dim 64) builds with its shared memory within the default
  48 KB and without the old double request (static arrays *and* the same bytes asked as dynamic).
- Every sample and small zoo model builds with report rows inside the limits.
- The emulator refuses a launch over the limits without the opt-in and runs it with the opt-in; the executor's
  emulator device takes the opt-in itself.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from build_fixtures import kernel_func
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from tilec.analysis.hardware import available_archs, get_arch
from tilec.backend.launch_resources import (LaunchLimitError, block_limit_problem, launch_resources,
                                            shared_opt_in, static_shared_bytes)
from tilec.backend.lower.builder import KernelBuilder
from tilec.backend.ptxas import PtxasInfo
from tilec.cli.main import cli
from tilec.driver import compile_model
from tilec.ir.io import read_ir

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_arch()                                  # tilec's default GPU: what builds are checked against
DEFAULT = SPEC.smem_per_block_bytes                # 48 KB
MAX = SPEC.smem_per_block_optin_bytes              # 227 KB on sm_90
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")


# ---- the opt-in rule and the per-block check ------------------------------------------------------------

@pytest.mark.parametrize("arch", available_archs())
def test_opt_in_only_above_the_default_per_block_shared_memory(arch):
    spec = get_arch(arch)
    limit = spec.smem_per_block_bytes
    assert shared_opt_in(limit - 100, 100, spec) == 0          # exactly the default: no attribute to set
    assert shared_opt_in(limit - 100, 101, spec) == 101        # one byte over: opt in to the dynamic part
    assert shared_opt_in(limit, 0, spec) == 0
    assert shared_opt_in(0, limit + 1, spec) == limit + 1
    assert shared_opt_in(limit + 1, 0, spec) == 0              # static alone is never opted in (ptxas refuses it)


@pytest.mark.parametrize("threads,static,dynamic,opt_in", [
    (1, 0, 0, 0),
    (SPEC.max_threads_per_block, 0, 0, 0),
    (128, DEFAULT, 0, 0),                      # all static, at the static maximum
    (128, 0, DEFAULT, 0),                      # all dynamic, no opt-in needed
    (128, 1000, DEFAULT - 1000, 0),
    (128, DEFAULT, MAX - DEFAULT, MAX - DEFAULT),   # the per-block maximum, opted in
    (128, 0, MAX, MAX),
    (128, 1000, 5000, 8000),                   # an opt-in larger than needed is fine
])
def test_blocks_at_the_limits_run(threads, static, dynamic, opt_in):
    assert block_limit_problem(threads, static, dynamic, opt_in, SPEC) is None


@pytest.mark.parametrize("threads,static,dynamic,opt_in,why", [
    (0, 0, 0, 0, "0 threads per block"),
    (SPEC.max_threads_per_block + 1, 0, 0, 0, "threads per block"),
    (128, DEFAULT + 1, 0, 0, "static shared memory"),
    (128, 1000, MAX - 999, MAX - 999, "per-block maximum"),                 # static + dynamic over the maximum
    (128, 1000, DEFAULT - 999, 0, "after no opt-in"),                       # one byte over 48 KB, no opt-in
    (128, 1000, DEFAULT + 500, DEFAULT + 499, f"after an opt-in of {DEFAULT + 499} B"),  # over the opt-in
    (128, 1000, 100, MAX, f"an opt-in of {MAX} B dynamic shared memory beside 1000 B static"),  # over the max
])
def test_each_limit_refuses(threads, static, dynamic, opt_in, why):
    problem = block_limit_problem(threads, static, dynamic, opt_in, SPEC)
    assert problem is not None and why in problem, problem


# ---- launch_resources on a kernel.func ---------------------------------------------------------------------

def _ir_kernel(name: str, shared_bytes: int, dynamic: int = 0, threads: int = 128):
    """A kernel-IR ``kernel.func`` declaring ``shared_bytes`` of static f32 arrays (two arrays, as lowerings
    do) and asking ``dynamic`` bytes at launch."""
    kb = KernelBuilder()
    kb.shared("k_a", "f32", [shared_bytes // 8])
    kb.shared("k_b", "f32", [shared_bytes // 8, 1])
    params = [{"name": "x", "dtype": "f32", "role": "out", "shape": [threads]}]
    func = kb.func(name, [1], [threads], params, kind="reduce")
    func.attributes["smem"] = dynamic
    return func


def test_static_and_dynamic_bytes_and_the_opt_in():
    res = launch_resources(_ir_kernel("k_big", 40 * 1024, dynamic=16 * 1024))
    assert (res.kernel, res.threads, res.smem_static, res.smem_dynamic) == ("k_big", 128, 40 * 1024, 16 * 1024)
    assert res.smem_optin == 16 * 1024 and res.smem_total == 56 * 1024
    assert res.registers_from == "estimate"
    small = launch_resources(_ir_kernel("k_small", 32 * 1024, dynamic=16 * 1024))
    assert small.smem_optin == 0               # 48 KB in all: the default suffices


def test_source_kernel_static_bytes_are_its_recorded_ones():
    k = kernel_func("k_src", "TL_ST(c, 0, 1.0f);", 64, [], ["c"])
    assert static_shared_bytes(k) == 0
    k.attributes["smem_static"] = 4096
    assert static_shared_bytes(k) == 4096 and launch_resources(k).smem_static == 4096


@pytest.mark.parametrize("make,why", [
    (lambda: _ir_kernel("k_over", DEFAULT + 8), "static shared memory"),
    (lambda: _ir_kernel("k_over", 1024, dynamic=MAX), "per-block maximum"),
    (lambda: _ir_kernel("k_over", 1024, threads=2 * SPEC.max_threads_per_block), "threads per block"),
])
def test_a_kernel_no_block_can_run_is_refused_by_name(make, why):
    with pytest.raises(LaunchLimitError, match=rf"kernel k_over: no {SPEC.arch} block can run it: .*{why}"):
        launch_resources(make())


def test_ptxas_numbers_replace_the_estimates():
    k = _ir_kernel("k_p", 1024, threads=1024)
    res = launch_resources(k, ptxas=PtxasInfo(registers=40, smem=3000))
    assert (res.smem_static, res.registers, res.registers_from) == (3000, 40, "ptxas")
    # 255 registers x 1024 threads is four times an SM's register file: refused, only on ptxas' count.
    with pytest.raises(LaunchLimitError, match=r"kernel k_p: .*255 registers per thread x 1024 threads"):
        launch_resources(k, ptxas=PtxasInfo(registers=255, smem=3000))


def test_compile_of_a_kernel_over_the_limits_is_an_internal_error(tmp_path, monkeypatch):
    """A lowering that asks more shared memory than any block has (as a tiling bug would): exit 3, the
    internal-error text naming the kernel and the limit, no traceback, and no build folder."""
    real = KernelBuilder.func

    def greedy(self, name, grid, block, params, **attrs):
        func = real(self, name, grid, block, params, **attrs)
        func.attributes["smem"] = MAX + 1
        return func

    monkeypatch.setattr(KernelBuilder, "func", greedy)
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "mlp.onnx"), "-o", str(out), "--pipeline",
                                 "none"], env={"TILEC_DEBUG": ""})
    assert r.exit_code == 3, r.output
    assert "internal error: LaunchLimitError: kernel k0_" in r.stderr
    assert f"no {SPEC.arch} block can run it" in r.stderr and f"per-block maximum is {MAX} B" in r.stderr
    assert "this is a bug in tilec" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


# ---- builds: ptxas agrees, BERT-like attention, every sample ---------------------------------------------

def _attention_model(path: Path, heads: int = 12, seq: int = 128, dim: int = 64) -> None:
    """softmax(Q·Kᵀ / sqrt(dim))·V with Q, K, V of [1, heads, seq, dim]: BERT-base's attention core."""
    f = TensorProto.FLOAT
    ins = [helper.make_tensor_value_info(n, f, [1, heads, seq, dim]) for n in ("q", "k", "v")]
    nodes = [helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"]),
             helper.make_node("Softmax", ["sd"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    scale = numpy_helper.from_array(np.array([math.sqrt(dim)], np.float32), "scale")
    out = helper.make_tensor_value_info("o", f, [1, heads, seq, dim])
    onnx.save(helper.make_model(helper.make_graph(nodes, "attn", ins, [out], [scale]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _rows_model(path: Path) -> None:
    """A softmax and a layer norm over rows of 256: two fused-row kernels."""
    f = TensorProto.FLOAT
    inits = [numpy_helper.from_array(np.linspace(0.5, 1.5, 256, dtype=np.float32), "g"),
             numpy_helper.from_array(np.linspace(-1, 1, 256, dtype=np.float32), "b")]
    nodes = [helper.make_node("Softmax", ["x"], ["p"], axis=-1),
             helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1)]
    outs = [helper.make_tensor_value_info(n, f, [64, 256]) for n in ("p", "y")]
    graph = helper.make_graph(nodes, "rows", [helper.make_tensor_value_info("x", f, [64, 256])], outs, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _f16_gemm_model(path: Path) -> None:
    """C = A·B in f16, [128, 256] x [256, 128]: Roller aligns it to the mma shape (a tiled_mma kernel)."""
    f = TensorProto.FLOAT16
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", f, [128, 256]),
                               helper.make_tensor_value_info("b", f, [256, 128])],
                              [helper.make_tensor_value_info("c", f, [128, 128])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


# name -> (model maker or sample path, the cheapest pipeline that makes the kernel kind under test)
PTX_BUILDS = {
    "attention": (_attention_model, "welder"),
    "rows": (_rows_model, "welder"),
    "gemm_f16": (_f16_gemm_model, "roller", "a100"),   # mma.sync's static stages (sm_90's wgmma: dynamic only)
    "persistent": (ROOT / "samples" / "mlp.onnx", "rammer"),     # members of 3072 B and 384 B, overlaid
    "device_loop": (ROOT / "samples" / "control" / "lstm_loop.onnx", "grinder"),
    "device_if": (ROOT / "samples" / "control" / "skipnet_if.onnx", "grinder"),
}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """``name -> build folder`` of every PTX_BUILDS entry, compiled once (without ``--check-ptx``: ptxas runs
    once over all of them in :func:`ptxas_smem`, which is what keeps this fast)."""
    root = tmp_path_factory.mktemp("launch-builds")
    out = {}
    for name, (model, pipeline, *arch) in PTX_BUILDS.items():
        if callable(model):
            model(root / f"{name}.onnx")
            model = root / f"{name}.onnx"
        compile_model(str(model), str(root / name), pipeline=pipeline, arch=(arch or [None])[0])
        out[name] = root / name
    return out


# Kernel kinds whose shared memory is compared (elementwise and opaque kernels declare none).
SHARED_KINDS = {"attention", "reduce", "reduce_serial", "tiled_mma", "tiled", "mlp", "persistent", "device_loop",
                "device_if"}


@pytest.fixture(scope="module")
def ptxas_smem(builds):
    """``(build, kernel) -> the static shared bytes ptxas reports`` for the SHARED_KINDS kernels of every
    build: their .cu files as the build wrote them, through ``--check-ptx``'s own ``check_kernels``, in as
    few nvcc calls as the kernel names allow (builds reuse names such as ``grinder0``)."""
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc (CUDA toolkit) is not installed")
    from tilec.backend.ptxas import check_kernels
    groups: list = []
    for name, build in builds.items():
        for row in _report(build)["kernels"]:
            if row["kind"] in SHARED_KINDS:
                group = next((g for g in groups if row["name"] not in g), None)
                if group is None:
                    groups.append(group := {})
                group[row["name"]] = (name, (build / row["cu"]).read_text())
    out = {}
    for group in groups:
        infos = check_kernels({k: src for k, (_, src) in group.items()}, jobs=1)
        out.update({(b, k): infos[k].smem for k, (b, _) in group.items()})
    return out


def _kernels(build: Path) -> dict:
    return {op.sym_name: op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"}


def _report(build: Path) -> dict:
    return json.loads((build / "report.json").read_text())


@needs_nvcc
def test_static_shared_bytes_equal_ptxas_for_every_kernel_kind(builds, ptxas_smem):
    # static_shared_bytes counts the arrays as declared. ptxas may count less where an array's tail is never
    # indexed (zoo nerf_mlp-small's k5_fused_row: a 16 B arena from Welder's 16-byte-aligned plan, of which
    # only element 0 is used, is 4 B to ptxas), so declared bytes are an upper bound; these builds have none.
    kinds = set()
    for (name, kernel), smem in ptxas_smem.items():
        func = _kernels(builds[name])[kernel]
        assert static_shared_bytes(func) == smem, (name, kernel, func.attributes["kind"])
        if smem:
            kinds.add(func.attributes["kind"])
    # The kinds under test each declared shared memory (else the comparison above proved nothing for them).
    want = {"attention", "reduce", "tiled_mma", "tiled", "mlp", "persistent", "device_loop", "device_if"}
    assert want <= kinds, want - kinds


def test_bert_attention_fits_without_the_double_request(builds):
    build = builds["attention"]
    (row,) = [r for r in _report(build)["kernels"] if r["kind"] == "attention"]
    assert row["smem_static"] == static_shared_bytes(_kernels(build)[row["name"]]) > 0
    assert row["smem_dynamic"] == 0 and row["smem_static"] <= DEFAULT and row["smem_optin"] == 0
    (step,) = [s for s in json.loads((build / "plan.json").read_text())["steps"] if s.get("kernel") == row["name"]]
    # The launch asks no dynamic bytes: the kernel's arrays are static, and asking them again as dynamic
    # (what the lowering used to do) doubled the block's shared memory.
    assert step["smem"] == 0 and step["smem_static"] == row["smem_static"]


@needs_nvcc
def test_bert_attention_static_bytes_are_ptxas_own(builds, ptxas_smem):
    (row,) = [r for r in _report(builds["attention"])["kernels"] if r["kind"] == "attention"]
    assert ptxas_smem[("attention", row["name"])] == row["smem_static"]


@needs_nvcc
def test_check_ptx_build_reports_ptxas_numbers(tmp_path):
    """With ``--check-ptx`` the per-build check takes ptxas' static bytes and registers (make_report)."""
    _f16_gemm_model(tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="roller", check_ptx=True, arch="a100")
    (row,) = _report(tmp_path / "b")["kernels"]
    assert row["kind"] == "tiled_mma" and row["registers_from"] == "ptxas"
    assert row["smem_static"] == row["ptxas"]["smem"] > 0 and row["registers"] == row["ptxas"]["registers"]


def _sample_models():
    """samples/*.onnx and the control-flow and parallel-branch samples (the torch exports are real-size)."""
    return [p for d in ("", "control", "parallel") for p in sorted((ROOT / "samples" / d).glob("*.onnx"))]


def _zoo_names():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from samples.models import ZOO
    return sorted(ZOO)


# Small zoo models that between them make every kernel kind (attention, mlp, opaque, persistent, reduce,
# device_if, device_loop) and the largest block (resnet50: ~47 KB); the rest is a slow sweep.
ZOO_FAST = {"bert_base", "blockdrop", "lstm", "resnet50"}


def _check_rows(build: Path) -> None:
    plan_static = {}
    for step in json.loads((build / "plan.json").read_text())["steps"]:
        if step.get("kind") == "launch":
            plan_static[step["kernel"]] = (step["smem"], step["smem_static"])
    for row in _report(build)["kernels"]:
        static, dynamic, opt_in = row["smem_static"], row["smem_dynamic"], row["smem_optin"]
        assert static <= DEFAULT, row
        if opt_in:
            assert dynamic <= opt_in and static + opt_in <= MAX, row
        else:
            assert static + dynamic <= DEFAULT, row
        assert math.prod(row["block"]) <= SPEC.max_threads_per_block, row
        # No lowering declares `extern __shared__` today: a dynamic request would be a double request.
        assert dynamic == 0, row
        if row["name"] in plan_static:
            assert plan_static[row["name"]] == (dynamic, static), row


@pytest.mark.parametrize("model", _sample_models(), ids=lambda p: p.relative_to(ROOT / "samples").as_posix())
def test_every_sample_builds_inside_the_limits(model, tmp_path):
    compile_model(str(model), str(tmp_path / "b"))
    _check_rows(tmp_path / "b")


@pytest.mark.parametrize("name", [pytest.param(n, marks=() if n in ZOO_FAST else pytest.mark.slow)
                                  for n in _zoo_names()])
def test_every_small_zoo_model_builds_inside_the_limits(name, tmp_path):
    from samples.models import build
    onnx.save(build(name, "small"), str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"))
    _check_rows(tmp_path / "b")


# ---- the emulator refuses what the GPU would -----------------------------------------------------------

BIG_BLOCK = """
// 40 KB of static shared memory and a dynamic part sized by the launch.
extern "C" __global__ void __launch_bounds__(128) big_block(float* __restrict__ Y) {
  TL_SHARED(float, k_st, [10240]);
  extern __shared__ float k_dyn[];
  int t = threadIdx.x;
  k_st[t * 80] = (float)t;
  k_dyn[t * 32] = 2.0f * t;
  __syncthreads();
  TL_ST(Y, t, k_st[(127 - t) * 80] + k_dyn[(127 - t) * 32]);
}
"""


def test_emulator_refuses_a_block_over_the_default_without_the_opt_in(tmp_path):
    from tilec.backend.emu import EmuError, EmuModule
    prelude = (ROOT / "src" / "tilec" / "backend" / "cuda_prelude.h").read_text()
    m = EmuModule(prelude + BIG_BLOCK, cache_dir=str(tmp_path))
    assert m.shared_size_bytes("big_block") == 40 * 1024
    y = np.zeros(128, np.float32)
    with pytest.raises(EmuError, match=r"kernel big_block: launch refused: 40960 B static \+ 16384 B dynamic"):
        m.launch("big_block", 1, 128, [y], smem_bytes=16 * 1024)
    assert not y.any()
    opt_in = shared_opt_in(40 * 1024, 16 * 1024, SPEC)
    assert opt_in == 16 * 1024
    m.launch("big_block", 1, 128, [y], smem_bytes=16 * 1024, smem_optin=opt_in)
    want = 3.0 * (127 - np.arange(128, dtype=np.float32))
    np.testing.assert_array_equal(y, want)
    # The executor's emulator device takes the opt-in itself, as the CuPy device does: a plan step of
    # 16 KB dynamic beside 40 KB static runs; one over the per-block maximum is an error naming the kernel.
    from tilec.ir.diagnostics import CompileError
    from tilec.runtime.emu_device import EmuDevice
    dev, y2 = EmuDevice(cache_dir=str(tmp_path)), np.zeros(128, np.float32)
    dev.launch(m, "big_block", [1, 1, 1], [128, 1, 1], 16 * 1024, [y2])
    np.testing.assert_array_equal(y2, want)
    with pytest.raises(CompileError, match=r"kernel 'big_block' failed in the emulator: .*per-block maximum"):
        dev.launch(m, "big_block", [1, 1, 1], [128, 1, 1], MAX - 40 * 1024 + 1, [y2])
