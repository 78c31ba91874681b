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
