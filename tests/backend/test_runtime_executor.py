"""The executor's logic on a fake device (numpy memory, kernels as Python functions): poisoning, views,
arena reuse, host steps and syncs, stats, errors, timing and CUDA-graph rules. The same code drives CuPy."""
from __future__ import annotations

import numpy as np
import pytest
from build_fixtures import append_scale_chain, expected, vadd_module, write_module_build

from tilec.backend import plan as plan_mod
from tilec.ir import CompileError, TensorType
from tilec.ir.core import Operation, lookup_symbol
from tilec.runtime.device import HostMemoryDevice, LaunchRecord
from tilec.runtime.executor import Executor


class FakeDevice(HostMemoryDevice):
    """Kernels by name: k0_vadd c = a + b, k1_scale c = 2a. Checks every output arrives poisoned."""

    name = "fake"
    counts_bytes = True

    def __init__(self):
        self.launches, self.loaded, self.captured = [], [], 0

    def load(self, name, source, cubin=None):
        assert "TL_LD" in source
        self.loaded.append(name)
        return name

    def launch(self, kernel, name, grid, block, smem, args, timed=False):
        self.launches.append(name)
        out = args[-1]
        if self.poison_expected:
            assert np.isnan(out).all(), f"{name}: output not poisoned"
        if kernel == "k0_vadd":
            out[...] = args[0] + args[1]
        else:
            out[...] = 2 * args[0]
        return LaunchRecord(sum(a.nbytes for a in args[:-1]), out.nbytes, 0.5)

    poison_expected = True

    def capture(self, fn):
        self.captured += 1
        return fn

    def replay(self, graph):
        graph()


def executor(tmp_path, module, **kw):
    write_module_build(module, tmp_path / "b")
    dev = FakeDevice()
    return Executor.from_build(str(tmp_path / "b"), dev, **kw), dev


@pytest.mark.parametrize("host_op", [False, True])
def test_fake_device_runs_the_plan(tmp_path, host_op):
    m = vadd_module(1000, host_op=host_op)
    ex, dev = executor(tmp_path, m)
    x = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    out = ex.run({"x": x})
    np.testing.assert_allclose(out["y"], expected(m, x, host_op), rtol=1e-6)
    assert dev.launches == ["k0_vadd", "k1_scale"] and dev.loaded == ["k0_vadd", "k1_scale"]
    rep = ex.report()
    assert rep["backend"] == "fake"
    assert rep["totals"] == {"launches": 2, "global_bytes": 8000 + 4000 + 4000 + 4000,
                             "global_bytes_source": "counted", "host_syncs": 2 if host_op else 1,
                             "host_ops": int(host_op), "seconds": rep["totals"]["seconds"]}
    assert [(r["name"], r["launches"], r["bytes_loaded"], r["bytes_stored"], r["bytes_modelled"], r["seconds"])
            for r in rep["kernels"]] == [("k0_vadd", 1, 8000, 4000, 12000, 0.5), ("k1_scale", 1, 4000, 4000, 8000, 0.5)]
    # a second run reuses memory and kernels; stats accumulate
    ex.run({"x": x})
    assert dev.loaded == ["k0_vadd", "k1_scale"] and ex.report()["totals"]["launches"] == 4


def test_views_share_bytes_with_their_root(tmp_path, monkeypatch):
    """y = 2(x+w) and z = reshape(x+w): z is read from the root's bytes, no copy, no step."""
    monkeypatch.setattr(plan_mod, "is_view", lambda op: op.name == "graph.reshape")
    m = vadd_module(64)
    fn = lookup_symbol(m, "main")
    ret = fn.body.ops[-1]
    first = next(op for op in fn.body.ops if op.name == "kernel.launch")
    view = Operation("graph.reshape", [first.result], [TensorType((8, 8), "f32")])
    fn.body.insert_before(ret, view)
    ret.set_operands([ret.operands[0], view.result])
    fn.attributes["result_names"] = ["y", "z"]
    from tilec.ir import print_module  # the unverified module still prints; the build does not verify
    assert "graph.reshape" in print_module(m)
    ex, dev = executor(tmp_path, m)
    x = np.arange(64, dtype=np.float32)
    out = ex.run({"x": x})
    np.testing.assert_allclose(out["z"], (x + _w(m)).reshape(8, 8))
    np.testing.assert_allclose(out["y"], 2 * (x + _w(m)))
    assert ex._mem["t2"].raw is ex._mem["t0"].raw


def _w(m):
    from tilec.ir.weights import module_weights
    return module_weights(m)["w"]


def test_arena_reuse_gives_right_answers(tmp_path):
    """A long chain through the 2-slot arena: every intermediate overwrites a dead one."""
    m = vadd_module(100)
    append_scale_chain(m, 5, 100)
    ex, dev = executor(tmp_path, m)
    x = np.ones(100, np.float32)
    np.testing.assert_allclose(ex.run({"x": x})["y"], 64 * (x + _w(m)), rtol=1e-6)
    assert ex.plan["arena_bytes"] == 2 * 512


def test_input_errors(tmp_path):
    ex, _ = executor(tmp_path, vadd_module(10))
    with pytest.raises(CompileError, match=r"missing input\(s\): x"):
        ex.run({"q": np.zeros(10)})
    with pytest.raises(CompileError, match=r"input 'x' has shape \[3\], expected \[10\]"):
        ex.run({"x": np.zeros(3)})
    out = ex.run({"x": np.zeros(10, np.float64)})  # dtypes convert, like the interpreter
    assert out["y"].dtype == np.float32


def test_not_a_build_folder(tmp_path):
    with pytest.raises(CompileError, match="not a tilec build folder"):
        Executor.from_build(str(tmp_path), FakeDevice())


def test_timing_and_cuda_graph(tmp_path):
    ex, dev = executor(tmp_path, vadd_module(10))
    x = {"x": np.zeros(10, np.float32)}
    ex.run(x)
    dev.poison_expected = False  # timing runs enqueue launches only
    times = ex.time(x, repeat=3, warmup=1, cuda_graph=True)
    assert len(times) == 3 and dev.captured == 1
    assert ex.report()["totals"]["launches"] == 2  # timing runs are not counted in the run's stats


def test_cuda_graph_refuses_host_ops(tmp_path):
    ex, _ = executor(tmp_path, vadd_module(10, host_op=True))
    with pytest.raises(CompileError, match="without host ops"):
        ex.time({"x": np.zeros(10, np.float32)}, repeat=1, cuda_graph=True)


def test_cupy_unavailable_is_a_clean_error():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed here")
    except ImportError:
        pass
    from tilec.runtime.cupy_device import CupyDevice
    with pytest.raises(CompileError, match="--backend cupy needs CuPy and a GPU"):
        CupyDevice()
