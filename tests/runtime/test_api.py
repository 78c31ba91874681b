"""The Python API (``tilec/api.py``): the README's example as written, onnxruntime's ``run`` contract, numpy
and torch inputs, ``tilec.load`` on a CLI build, the emulator backend, and clean errors."""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import tilec
from tilec.ir.diagnostics import CompileError

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "samples" / "mlp.onnx")
TL = str(ROOT / "samples" / "transformer_layer.onnx")


def _feeds(path: str, seed: int = 0) -> dict:
    m = onnx.load(path)
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([d.dim_value for d in i.type.tensor_type.shape.dim]).astype(np.float32)
            for i in m.graph.input}


def _ort(path: str, feeds: dict) -> list:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_readme_example_runs(monkeypatch, capsys):
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- python-api-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert block, "the README lost its Python API example"
    monkeypatch.chdir(ROOT)
    exec(compile(block.group(1), "README.md", "exec"), {})   # noqa: S102 - our own README
    assert "CompiledModel(" in capsys.readouterr().out


@pytest.mark.parametrize("backend", ["numpy", "emu"])
def test_run_matches_onnxruntime_in_its_contract(backend):
    model = tilec.compile(TL, backend=backend)
    feeds = _feeds(TL)
    want = _ort(TL, feeds)
    got = model.run(None, feeds)
    assert isinstance(got, list) and len(got) == len(want) == len(model.output_names)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-3, atol=1e-4)
    by_name = model(**feeds)
    assert list(by_name) == model.output_names
    last = model.output_names[-1]
    (only,) = model.run([last], feeds)
    np.testing.assert_array_equal(only, by_name[last])
    assert model.report["totals"]["kernels"] >= 1


def test_model_proto_and_load_of_a_cli_build(tmp_path):
    proto = onnx.load(MLP)
    a = tilec.compile(proto, backend="numpy", build_dir=str(tmp_path / "b"))
    assert (tmp_path / "b" / "plan.json").is_file()
    b = tilec.load(str(tmp_path / "b"), backend="emu")
    feeds = _feeds(MLP, 3)
    np.testing.assert_allclose(a.run(None, feeds)[0], b.run(None, feeds)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.run(None, feeds)[0], _ort(MLP, feeds)[0], rtol=1e-4, atol=1e-5)


def test_temporary_build_is_removed_with_the_model():
    model = tilec.compile(MLP, backend="numpy")
    where = model.build_dir
    assert os.path.isdir(where)
    del model
    import gc
    gc.collect()
    assert not os.path.exists(where)


def test_torch_inputs_give_torch_outputs():
    torch = pytest.importorskip("torch")
    model = tilec.compile(MLP, backend="numpy")
    feeds = _feeds(MLP, 5)
    (y,) = model.run(None, {k: torch.from_numpy(v) for k, v in feeds.items()})
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(y.numpy(), _ort(MLP, feeds)[0], rtol=1e-4, atol=1e-5)


def test_errors_are_compile_errors(tmp_path):
    model = tilec.compile(MLP, backend="numpy")
    x = _feeds(MLP)["x"]
    with pytest.raises(CompileError, match=r"input 'x' has dtype float64"):
        model.run(None, {"x": x.astype(np.float64)})
    np.testing.assert_allclose(model.run(None, {"x": x.astype(np.float64)}, cast=True)[0], model.run(None, {"x": x})[0])
    with pytest.raises(CompileError, match="missing input"):
        model.run(None, {})
    with pytest.raises(CompileError, match="unknown output"):
        model.run(["nope"], {"x": x})
    with pytest.raises(CompileError, match="unknown backend"):
        tilec.compile(MLP, backend="tpu")
    with pytest.raises(CompileError, match="not a tilec build folder"):
        tilec.load(str(tmp_path))
    with pytest.raises(CompileError, match="onnx.ModelProto"):
        tilec.compile(42)


def test_cupy_inputs_give_cupy_outputs_on_a_gpu():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("CuPy sees no GPU")
    except Exception:  # noqa: BLE001 - no driver: no GPU
        pytest.skip("CuPy sees no GPU")
    model = tilec.compile(MLP, backend="cupy")
    feeds = _feeds(MLP, 6)
    (y,) = model.run(None, {k: cupy.asarray(v) for k, v in feeds.items()})
    assert isinstance(y, cupy.ndarray)
    np.testing.assert_allclose(cupy.asnumpy(y), _ort(MLP, feeds)[0], rtol=1e-3, atol=1e-4)


class _FakeCupyArray:
    """Stands in for a CuPy array where CuPy is not installed: the API tells kinds by their module."""

    __module__ = "cupy._core.core"

    def __init__(self, array):
        self.array = np.asarray(array)

    def get(self):
        return self.array


def test_a_cupy_kind_comes_back_as_cupy(monkeypatch):
    # Without CuPy: a module named cupy whose asarray wraps; inputs of that kind are read with .get() and the
    # outputs come back through cupy.asarray, on the numpy backend too.
    import sys
    import types
    fake = types.ModuleType("cupy")
    fake.asarray = _FakeCupyArray
    monkeypatch.setitem(sys.modules, "cupy", fake)
    model = tilec.compile(MLP, backend="numpy")
    feeds = _feeds(MLP, 7)
    (y,) = model.run(None, {k: _FakeCupyArray(v) for k, v in feeds.items()})
    assert isinstance(y, _FakeCupyArray)
    np.testing.assert_allclose(y.array, _ort(MLP, feeds)[0], rtol=1e-4, atol=1e-5)
    assert isinstance(model(x=_FakeCupyArray(feeds["x"]))["y"], _FakeCupyArray)


def _dynamic_relu(tmp_path) -> str:
    from onnx import TensorProto as T
    from onnx import helper as h
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", 4])
    y = h.make_tensor_value_info("y", T.FLOAT, ["batch", 4])
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = str(tmp_path / "dyn.onnx")
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    return path


def test_load_interprets_an_onnx_at_each_runs_shapes(tmp_path):
    # tilec.load of an .onnx on numpy, as InferenceSession(path): a dynamic batch is imported at each run's
    # shape; the fixed dim is still checked, and a misnamed input is named as such.
    path = _dynamic_relu(tmp_path)
    model = tilec.load(path, backend="numpy")
    assert model.input_names == ["x"] and model.output_names == ["y"]
    for batch in (1, 3, 2):
        x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
        (y,) = model.run(None, {"x": x})
        np.testing.assert_array_equal(y, np.maximum(x, 0))
    with pytest.raises(CompileError, match="fixes it to 4"):
        model.run(None, {"x": np.zeros((2, 5), np.float32)})
    with pytest.raises(CompileError, match=r"missing input\(s\): x \(the model takes x\)"):
        model.run(None, {"X": np.zeros((2, 4), np.float32)})
    pinned = tilec.load(path, backend="numpy", input_shapes={"x": (2, 4)})
    with pytest.raises(CompileError, match=r"shape \[3, 4\], expected \[2, 4\]"):
        pinned.run(None, {"x": np.zeros((3, 4), np.float32)})
    with pytest.raises(CompileError, match="runs a build folder"):
        tilec.load(path, backend="emu")


def test_compile_takes_the_cli_options(tmp_path):
    stages = []
    model = tilec.compile(MLP, backend="numpy", build_dir=str(tmp_path / "b"), pipeline="welder",
                          compile_to="roller", dump_dir=str(tmp_path / "d"),
                          progress=lambda i, n, name: stages.append(name))
    assert model.compile_result.summary().startswith("compiled ") and str(tmp_path / "b") in \
        model.compile_result.summary()
    assert stages[0] == "import" and "roller" in stages and "welder" not in stages
    assert sorted(p.name for p in (tmp_path / "d").iterdir())[0].startswith("00_import")
    feeds = _feeds(MLP, 8)
    np.testing.assert_allclose(model.run(None, feeds)[0], _ort(MLP, feeds)[0], rtol=1e-4, atol=1e-5)
    with pytest.raises(CompileError, match="buckets chooses"):
        tilec.compile(MLP, backend="numpy", buckets={"batch": [1, 2]})
    with pytest.raises(CompileError, match="compile_to"):
        tilec.compile(MLP, backend="numpy", shape_profile={"x": "1..2x256"}, compile_to="roller")


def test_the_cli_is_a_layer_over_the_api(tmp_path, monkeypatch):
    # `tilec compile` is tilec.compile and `tilec run` is tilec.load + CompiledModel.run (issue #20): wrap
    # them and watch the commands go through.
    from click.testing import CliRunner

    from tilec import api
    from tilec.cli.main import cli
    calls = []

    def spy(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        monkeypatch.setattr(api, name, wrapper)
    spy("compile", api.compile)
    spy("load", api.load)
    monkeypatch.setattr(api.CompiledModel, "run", lambda *a, _run=api.CompiledModel.run, **k: (
        calls.append("run"), _run(*a, **k))[1])
    build = str(tmp_path / "b")
    r = CliRunner().invoke(cli, ["compile", MLP, "-o", build, "--pipeline", "welder", "-q"])
    assert r.exit_code == 0, r.output
    assert calls == ["compile"] and r.output.startswith("compiled ")
    feeds = _feeds(MLP, 9)
    np.savez(tmp_path / "in.npz", **feeds)
    r = CliRunner().invoke(cli, ["run", build, "--inputs", str(tmp_path / "in.npz"), "--outputs",
                                 str(tmp_path / "out.npz")])
    assert r.exit_code == 0, r.output
    assert calls[1:] == ["load", "run"]
    with np.load(tmp_path / "out.npz") as out:
        np.testing.assert_allclose(out["y"], _ort(MLP, feeds)[0], rtol=1e-4, atol=1e-5)
