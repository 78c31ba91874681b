"""The GPU branch of the ``tilec`` row (``tilec.bench.gpu_systems.tilec`` with ``backend: cupy``), without a GPU:
CuPy is a stand-in (events read the host clock, the flush buffer is host memory) and the executor's device is
the emulator with a CUDA-graph capture that replays the captured calls. What it proves: the row checks
correctness before it times, asks the executor's own --cuda-graph checks before capturing, times the replayed
graph with events on the executor's stream and a flush sized from the device's L2, and falls back to plain
launches (saying why) where the executor refuses a graph."""
from __future__ import annotations

import contextlib
import sys
import time
import types
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import tilec.driver
from tilec.bench import gpu_systems
from tilec.ir import CompileError
from tilec.runtime.emu_device import EmuDevice
from tilec.runtime.executor import Executor

pytestmark = pytest.mark.skipif(not any(Path(d, "g++").is_file() for d in __import__("os").environ.get(
    "PATH", "").split(":")), reason="the emulator needs g++")


class _Event:
    recorded: list = []

    def record(self, stream=None):
        _Event.recorded.append(stream)
        self.t = time.perf_counter()

    def synchronize(self):
        pass


def _fake_cupy() -> types.ModuleType:
    cp = types.ModuleType("cupy")
    cp.uint8, cp.empty = np.uint8, np.empty
    cp.cuda = types.SimpleNamespace(
        Event=_Event, get_elapsed_time=lambda a, b: (b.t - a.t) * 1e3,
        Device=lambda i=0: types.SimpleNamespace(attributes={"L2CacheSize": 40 << 20}),
        runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"NVIDIA H100 80GB HBM3"}))
    return cp


class _GraphEmu(EmuDevice):
    """The emulator with what the row asks of a CuPy device: a stream, capture and replay."""

    stream = contextlib.nullcontext()

    def __init__(self):
        super().__init__()
        self.captures = self.replays = 0

    def capture(self, fn):
        self.captures += 1
        return fn

    def replay(self, graph):
        self.replays += 1
        graph()


def _model(path: Path) -> str:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])
    w = numpy_helper.from_array((np.arange(32, dtype=np.float32) - 16) / 8, "w")
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"]), helper.make_node("Relu", ["t"], ["y"])],
                          "g", [x], [y], [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.fixture
def gpu(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    devices = []

    def make_executor(build, backend):
        assert backend == "cupy"
        devices.append(_GraphEmu())
        return Executor.from_build(build, devices[-1])
    monkeypatch.setattr(tilec.driver, "make_executor", make_executor)
    _Event.recorded = []
    return devices


def _spec(tmp_path) -> dict:
    return {"kind": "tilec", "model": _model(tmp_path / "m.onnx"), "build": str(tmp_path / "b"),
            "pipeline": "default", "backend": "cupy", "runs": 3, "warmup": 1, "device": "cuda"}


def test_tilec_row_times_the_replayed_graph_with_events_on_the_executors_stream(tmp_path, gpu):
    row = {}
    gpu_systems.tilec(_spec(tmp_path), row)
    (dev,) = gpu
    assert row["rel_err"] < 1e-6 and row["cuda_graph"] is True and "graph_error" not in row
    assert row["arch"] == "h100" and '"arch": "h100"' in (tmp_path / "b" / "plan.json").read_text()  # the card
    # one throwaway capture by the executor's checks, one for the timed runs; every timed run is a replay
    assert dev.captures == 2 and dev.replays == 1 + 3 + 3
    assert row["clock"] == "CUDA events" and row["flush_bytes"] == 2 * (40 << 20)  # 2x the device's L2
    assert _Event.recorded and all(s is dev.stream for s in _Event.recorded)
    assert row["hot_ms"] > 0 and row["cold_ms"] > 0 and row["runs"] == 3


def test_tilec_row_times_plain_launches_where_the_executor_refuses_a_graph(tmp_path, gpu, monkeypatch):
    def refuse(self, inputs, repeat=10, warmup=1, cuda_graph=False):
        raise CompileError("--cuda-graph cannot capture this plan on this device: a read-back")
    monkeypatch.setattr(Executor, "time", refuse)
    row = {}
    gpu_systems.tilec(_spec(tmp_path), row)
    (dev,) = gpu
    assert row["cuda_graph"] is False and "a read-back" in row["graph_error"]
    assert dev.captures == 0 and dev.replays == 0 and row["hot_ms"] > 0 and row["rel_err"] < 1e-6
