"""Persistent kernels that cannot hang, on a device with an occupancy API (issue #15): when the answer says a
persistent grid cannot be co-resident (or the question fails), the executor runs the plan's non-persistent
fallback with one ResidencyWarning per kernel and lists it in RUN.json; the outputs are the persistent
run's, byte for byte. A GPU is not needed: the emulator device plays CuPy's part with a scripted occupancy
answer, and CuPy's own call is checked against a stand-in shaped like CuPy's classes."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from tilec.backend.plan import walk_fallbacks, walk_steps
from tilec.bench.measure import onnx_feeds
from tilec.driver import compile_model, load_target
from tilec.ir.diagnostics import CompileError
from tilec.runtime.emu_device import EmuDevice
from tilec.runtime.executor import Executor
from tilec.runtime.interpreter import run_module
from tilec.runtime.residency import ResidencyWarning

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
# An rProgram (rammer) and Grinder's device loop (data-dependent exit) and device if.
MODELS = {"resnext": ("parallel/resnext_block.onnx", "rammer"),
          "greedy": ("control/greedy_decoder.onnx", "grinder"),
          "skipnet": ("control/skipnet_if.onnx", "grinder")}


class OccupancyDevice(EmuDevice):
    """The emulator with an occupancy API, as ``CupyDevice`` has one: every kernel gets ``per_sm`` blocks per
    SM on ``sms`` SMs, or the query raises ``fail``. Records what it was asked."""

    def __init__(self, per_sm: int = 1, sms: int = 1, fail: Exception | None = None, **kwargs):
        super().__init__(**kwargs)
        self.per_sm, self.sms, self.fail, self.asked = per_sm, sms, fail, []

    def max_active_blocks(self, kernel, block, smem):
        self.asked.append((list(block), smem))
        if self.fail is not None:
            raise self.fail
        return self.per_sm

    def multiprocessor_count(self):
        return self.sms


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("residency")
    for key, (path, pipeline) in MODELS.items():
        compile_model(str(SAMPLES / path), str(root / key), pipeline=pipeline)
    return root


def _plan(build: Path) -> dict:
    return json.loads((build / "plan.json").read_text())


def _persistent(build: Path) -> list:
    return [s for s in walk_steps(_plan(build)["steps"]) if s.get("concurrent")]


def _run(build: Path, device, feeds: dict, times: int = 1):
    """(outputs, executor, ResidencyWarnings) of ``times`` runs of ``build`` on ``device``."""
    ex = Executor.from_build(str(build), device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(times):
            out = ex.run(feeds)
    return out, ex, [w for w in caught if issubclass(w.category, ResidencyWarning)]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_oversubscribed_grid_runs_the_fallback(builds, key):
    build, model = builds / key, SAMPLES / MODELS[key][0]
    feeds = onnx_feeds(str(model))
    (step,) = _persistent(build)
    grid = int(np.prod(step["grid"]))
    assert grid > 1   # one block per SM on one SM cannot hold it
    normal, ex0, none = _run(build, EmuDevice(), feeds)
    assert not none and "persistent_fallbacks" not in ex0.report()
    out, ex, caught = _run(build, OccupancyDevice(per_sm=1, sms=1), feeds, times=2)
    # One warning per kernel however often it runs, naming the kernel and the numbers.
    assert len(caught) == 1, [str(w.message) for w in caught]
    msg = str(caught[0].message)
    assert f"'{step['kernel']}'" in msg and f"all {grid} blocks" in msg
    assert "1 per SM (occupancy API) x 1 SMs = 1" in msg
    # The fallback ran instead of the persistent kernel: its launches, not the persistent one.
    launched = {r["name"]: r["launches"] for r in ex.report()["kernels"]}
    fallback = [s["kernel"] for s in walk_steps(step["fallback"]) if s["kind"] == "launch"]
    assert step["kernel"] not in launched and set(fallback) <= set(launched)
    assert list(ex.report()["persistent_fallbacks"]) == [step["kernel"]]
    # Same buffers, same kernels: the same bytes as the persistent run, and numpy's answer.
    ref = run_module(load_target(str(model)), feeds)
    for name in normal:
        np.testing.assert_array_equal(out[name], normal[name], err_msg=name)
        np.testing.assert_allclose(out[name], ref[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_grinder_fallback_is_the_host_driven_loop(builds):
    """The device loop's fallback reads its exit condition back every iteration, as the host loop did."""
    feeds = onnx_feeds(str(SAMPLES / MODELS["greedy"][0]))
    _, ex0, _ = _run(builds / "greedy", EmuDevice(), feeds)
    _, ex, _ = _run(builds / "greedy", OccupancyDevice(per_sm=1, sms=1), feeds)
    (step,) = _persistent(builds / "greedy")
    (loop,) = step["fallback"]
    assert loop["kind"] == "loop" and loop["placement"] == "host" and not loop["cond_static"]
    assert ex0.report()["totals"]["host_syncs"] == 1 < ex.report()["totals"]["host_syncs"]


def test_failed_occupancy_query_takes_the_fallback(builds):
    feeds = onnx_feeds(str(SAMPLES / MODELS["resnext"][0]))
    normal, _, _ = _run(builds / "resnext", EmuDevice(), feeds)
    out, ex, caught = _run(builds / "resnext", OccupancyDevice(fail=RuntimeError("CUDA_ERROR_INVALID_HANDLE")),
                           feeds)
    assert len(caught) == 1
    assert "the occupancy query failed (RuntimeError: CUDA_ERROR_INVALID_HANDLE)" in str(caught[0].message)
    assert "rammer0" in ex.report()["persistent_fallbacks"]
    np.testing.assert_array_equal(out["y"], normal["y"])


@pytest.mark.parametrize("key", sorted(MODELS))
def test_fitting_grid_launches_persistent(builds, key):
    """A grid exactly as large as per SM x SMs fits: the persistent kernel runs, asked once, no warning."""
    build = builds / key
    (step,) = _persistent(build)
    grid = int(np.prod(step["grid"]))
    device = OccupancyDevice(per_sm=1, sms=grid)
    _, ex, caught = _run(build, device, onnx_feeds(str(SAMPLES / MODELS[key][0])), times=2)
    assert not caught and "persistent_fallbacks" not in ex.report()
    assert device.asked == [(step["block"], step["smem"])]
    assert {r["name"] for r in ex.report()["kernels"]} >= {step["kernel"]}


def test_one_block_short_takes_the_fallback(builds):
    (step,) = _persistent(builds / "skipnet")
    grid = int(np.prod(step["grid"]))
    _, ex, caught = _run(builds / "skipnet", OccupancyDevice(per_sm=1, sms=grid - 1),
                         onnx_feeds(str(SAMPLES / MODELS["skipnet"][0])))
    assert len(caught) == 1 and f"= {grid - 1}" in str(caught[0].message)


def test_no_fallback_in_the_plan_is_an_error_not_a_hang(builds):
    ex = Executor.from_build(str(builds / "resnext"), OccupancyDevice(per_sm=1, sms=1))
    for s in walk_steps(ex.plan["steps"]):
        s.pop("fallback", None)
    with pytest.raises(CompileError, match="has no fallback for it: running it would hang"):
        ex.run(onnx_feeds(str(SAMPLES / MODELS["resnext"][0])))


def test_run_json_lists_the_fallback(builds, tmp_path, monkeypatch):
    """``tilec run``'s RUN.json names each persistent kernel that fell back, and why."""
    from tilec import driver
    monkeypatch.setattr("tilec.runtime.emu_device.EmuDevice", OccupancyDevice)
    driver.save_npz(str(tmp_path / "in.npz"), onnx_feeds(str(SAMPLES / MODELS["skipnet"][0])))
    with pytest.warns(ResidencyWarning):
        driver.run_target(str(builds / "skipnet"), str(tmp_path / "in.npz"), str(tmp_path / "out.npz"), "emu",
                          report_path=str(tmp_path / "RUN.json"))
    run = json.loads((tmp_path / "RUN.json").read_text())
    (why,) = run["persistent_fallbacks"].values()
    assert "ran its non-persistent fallback" in why and "grinder0" in run["persistent_fallbacks"]


@pytest.mark.parametrize("key", sorted(MODELS))
def test_fallback_kernels_are_in_the_build_folder(builds, key):
    """Every kernel a fallback launches has its .cu in the build (rammer's members are no longer launched
    on their own) and Executor.from_build loads its source."""
    build = builds / key
    names = {s["kernel"] for s in walk_fallbacks(_plan(build)["steps"]) if s["kind"] == "launch"}
    assert names
    ex = Executor.from_build(str(build), EmuDevice())
    for name in names:
        assert (build / "kernels" / f"{name}.cu").is_file(), name
        assert ex.sources[name] == (build / "kernels" / f"{name}.cu").read_text()


def test_missing_fallback_kernel_is_a_clean_error(builds, tmp_path):
    build = tmp_path / "b"
    shutil.copytree(builds / "resnext", build)
    (step,) = _persistent(build)
    gone = next(s["kernel"] for s in step["fallback"])
    (build / "kernels" / f"{gone}.cu").unlink()
    feeds = onnx_feeds(str(SAMPLES / MODELS["resnext"][0]))
    _run(build, EmuDevice(), feeds)   # not needed while the grid fits
    with pytest.raises(CompileError, match=f"kernel source '{gone}.cu' is missing from the build folder"):
        _run(build, OccupancyDevice(per_sm=1, sms=1), feeds)


@pytest.mark.parametrize("key", ["resnext", "greedy"])
def test_plan_with_fallbacks_is_deterministic(builds, tmp_path, key):
    path, pipeline = MODELS[key]
    compile_model(str(SAMPLES / path), str(tmp_path / "again"), pipeline=pipeline)
    assert any(s.get("fallback") for s in _persistent(builds / key))
    assert (tmp_path / "again" / "plan.json").read_bytes() == (builds / key / "plan.json").read_bytes()


class _Function:
    """cupy.cuda.function.Function as far as the occupancy query uses it: ``ptr`` is the CUfunction
    (cupy/cuda/function.pxd)."""

    ptr = 0xC0FFEE


class _RawKernel:
    """What CuPy's RawModule.get_function returns (cupy/_core/raw.pyx): a RawKernel with no ``ptr`` of its
    own; ``kernel`` is the loaded Function, ``shared_size_bytes`` the static shared memory."""

    def __init__(self, static: int):
        self.kernel, self.shared_size_bytes, self.max_dynamic_shared_size_bytes = _Function(), static, 0


class _FakeCupy:
    """cupy.cuda's driver/runtime calls the occupancy check makes, with CuPy's signatures
    (cupy_backends/cuda/api/driver.pyx: occupancyMaxActiveBlocksPerMultiprocessor(func, blockSize,
    dynamicSMemSize); runtime.getDeviceProperties(device) -> dict)."""

    asked: list = []

    class cuda:  # noqa: N801 - mirrors cupy.cuda
        class driver:  # noqa: N801
            @staticmethod
            def occupancyMaxActiveBlocksPerMultiprocessor(func, blockSize, dynamicSMemSize):  # noqa: N802,N803
                _FakeCupy.asked.append((func, blockSize, dynamicSMemSize))
                return 3

        class runtime:  # noqa: N801
            @staticmethod
            def getDeviceProperties(device: int) -> dict:  # noqa: N802
                return {"multiProcessorCount": 132, "name": b"fake"}

        class Device:
            id = 0


@pytest.mark.parametrize("static, dynamic, opt_in", [(40000, 16384, 16384), (1024, 2048, 0)])
def test_cupy_occupancy_query(static, dynamic, opt_in):
    """CupyDevice asks the driver with the loaded function's CUfunction, the block's threads and the dynamic
    shared bytes, after the same shared-memory opt-in the launch takes (static + dynamic over 48 KB)."""
    from tilec.runtime.cupy_device import CupyDevice
    dev = CupyDevice.__new__(CupyDevice)  # no GPU here: skip __init__'s device query
    dev.cp, _FakeCupy.asked = _FakeCupy, []
    kernel = _RawKernel(static)
    assert dev.max_active_blocks(kernel, [128, 2, 1], dynamic) == 3
    assert _FakeCupy.asked == [(_Function.ptr, 256, dynamic)]
    assert kernel.max_dynamic_shared_size_bytes == opt_in
    assert dev.multiprocessor_count() == 132


class _GraphDevice(OccupancyDevice):
    """With CuPy's capture/replay, as far as Executor.time uses them."""

    def capture(self, fn):
        return fn

    def replay(self, graph):
        graph()


def test_cuda_graph_refuses_a_host_driven_fallback(builds):
    """Grinder's device loop captures; its host-driven fallback reads the exit condition back every
    iteration, which a CUDA graph cannot capture: a clean error, not a failed capture."""
    feeds = onnx_feeds(str(SAMPLES / MODELS["greedy"][0]))
    ok = Executor.from_build(str(builds / "greedy"), _GraphDevice(per_sm=1, sms=1000))
    assert len(ok.time(feeds, repeat=1, cuda_graph=True)) == 1
    ex = Executor.from_build(str(builds / "greedy"), _GraphDevice(per_sm=1, sms=1))
    with pytest.warns(ResidencyWarning), pytest.raises(CompileError, match="persistent kernel 'grinder0' runs its "
                                                       "fallback here, where a host-driven loop reads its trip"):
        ex.time(feeds, repeat=1, cuda_graph=True)


def test_cuda_graph_captures_an_rprogram_fallback(builds):
    feeds = onnx_feeds(str(SAMPLES / MODELS["resnext"][0]))
    ex = Executor.from_build(str(builds / "resnext"), _GraphDevice(per_sm=1, sms=1))
    with pytest.warns(ResidencyWarning):
        assert len(ex.time(feeds, repeat=2, cuda_graph=True)) == 2


def test_cli_prints_the_fallback_as_one_warning_line(builds, tmp_path):
    """``tilec run`` on a device that cannot hold the grid: exit 0, the outputs, and one diagnostic line
    (not Python's file:line and source echo)."""
    import subprocess
    import sys

    from tilec.driver import save_npz
    save_npz(str(tmp_path / "in.npz"), onnx_feeds(str(SAMPLES / MODELS["skipnet"][0])))
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import test_residency as t; "
              "import tilec.runtime.emu_device as e; e.EmuDevice = t.OccupancyDevice; "
              "from tilec.cli.main import main; sys.argv = ['tilec'] + sys.argv[2:]; main()")
    r = subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent), "run", str(builds / "skipnet"),
                        "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz"),
                        "--backend", "emu"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("tilec: warning: persistent kernel 'grinder0' needs all"), lines
    assert (tmp_path / "out.npz").is_file()


def test_a_persistent_step_inside_a_fallback_falls_back_too(builds):
    """No sample nests one (a device loop whose body holds an rProgram), so one is made: a body launch of
    the device loop's host fallback becomes a persistent step whose fallback is that launch. On a device
    that holds no block of either, both fall back, each warned once, and the answer does not change."""
    feeds = onnx_feeds(str(SAMPLES / MODELS["greedy"][0]))
    normal, _, _ = _run(builds / "greedy", EmuDevice(), feeds)
    ex = Executor.from_build(str(builds / "greedy"), OccupancyDevice(per_sm=0, sms=1))
    (step,) = [s for s in ex.plan["steps"] if s.get("concurrent")]
    body = step["fallback"][0]["body"]
    inner = body[1]
    body[1] = {**inner, "concurrent": True, "fallback": [dict(inner)]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = ex.run(feeds)
    assert sorted(ex.report()["persistent_fallbacks"]) == sorted([step["kernel"], inner["kernel"]])
    assert len([w for w in caught if issubclass(w.category, ResidencyWarning)]) == 2
    for name in normal:
        np.testing.assert_array_equal(out[name], normal[name], err_msg=name)
