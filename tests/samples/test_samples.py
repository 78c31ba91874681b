"""Checks on the committed sample models under ``samples/``.

- Hand-built samples (``samples/build_samples.py``): load, pass the full ONNX checker, run
  in onnxruntime, have the documented interface, match a small numpy reference, and
  rebuild byte-identically.
- Torch exports (``samples/torch/``): load (including the external-data copy), pass the
  checker, and onnxruntime reproduces the torch outputs saved in ``<name>.io.npz``. These
  tests need neither torch nor a GPU.
"""

from __future__ import annotations

import math
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from tilec.testing.scripts import load_file_module

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLES = os.path.join(ROOT, "samples")
TORCH = os.path.join(SAMPLES, "torch")

HAND_BUILT = {
    # name: (input shape, output shape)
    "mlp.onnx": ((1, 256), (1, 10)),
    "transformer_layer.onnx": ((1, 32, 64), (1, 32, 64)),
    "conv_block.onnx": ((1, 16, 32, 32), (1, 16, 32, 32)),
    "dw_separable.onnx": ((1, 32, 28, 28), (1, 64, 1, 1)),
}
# The MLP's 256-512-256-10 weights alone are 1.06 MB of fp32; every other sample is far
# under 1 MB. The limit is here to catch a big variant being committed by accident.
SIZE_LIMIT = {"mlp.onnx": 1_100_000}
DEFAULT_SIZE_LIMIT = 1_000_000

TORCH_MODELS = ["bert", "gpt2", "resnet", "vit"]
TORCH_FILES = ([f"legacy/{n}.onnx" for n in TORCH_MODELS]
               + [f"dynamo/{n}.onnx" for n in TORCH_MODELS]
               + ["external_data/bert/bert.onnx"])
TOKEN_INPUTS = {"input_ids", "token_type_ids", "attention_mask"}


def _load_builder():
    return load_file_module(os.path.join(SAMPLES, "build_samples.py"), "tilec_build_samples")


@pytest.fixture(scope="module")
def builder():
    return _load_builder()


def _session(path_or_bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # Two-core machine: one thread keeps runs fast, and results reproducible.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(path_or_bytes, opts, providers=["CPUExecutionProvider"])


def _run(path: str, x: np.ndarray) -> np.ndarray:
    (y,) = _session(path).run(["y"], {"x": x})
    return y


def _input(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# ----------------------------------------------------------------------------------------
# Hand-built samples
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("fname", sorted(HAND_BUILT))
def test_hand_built_sample_is_valid(fname):
    path = os.path.join(SAMPLES, fname)
    assert os.path.getsize(path) < SIZE_LIMIT.get(fname, DEFAULT_SIZE_LIMIT)
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    in_shape, out_shape = HAND_BUILT[fname]
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y"]
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    y = _run(path, _input(in_shape))
    assert y.shape == out_shape and y.dtype == np.float32
    assert np.isfinite(y).all() and y.std() > 1e-3


def test_hand_built_samples_rebuild_byte_identical(builder, tmp_path):
    written = builder.build_all(str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == sorted(HAND_BUILT)
    for p in written:
        with open(p, "rb") as f, open(os.path.join(SAMPLES, os.path.basename(p)), "rb") as g:
            assert f.read() == g.read(), f"{os.path.basename(p)} differs from a fresh build"


def test_mlp_matches_numpy():
    path = os.path.join(SAMPLES, "mlp.onnx")
    w = _weights(onnx.load(path))
    x = _input((1, 256))
    h = x
    for i in range(3):
        h = h @ w[f"fc{i}.weight"] + w[f"fc{i}.bias"]
        if i < 2:
            h = np.maximum(h, 0)
    np.testing.assert_allclose(_run(path, x), h, rtol=1e-4, atol=1e-5)


def _layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def test_transformer_layer_matches_numpy():
    from math import erf

    path = os.path.join(SAMPLES, "transformer_layer.onnx")
    w = _weights(onnx.load(path))
    x = _input((1, 32, 64)).astype(np.float64)
    p = lambda n: w[f"layer0.{n}"].astype(np.float64)  # noqa: E731
    lin = lambda t, n: t @ p(f"{n}.weight") + p(f"{n}.bias")  # noqa: E731
    heads = lambda t: t.reshape(1, 32, 4, 16).transpose(0, 2, 1, 3)  # noqa: E731
    q, k, v = heads(lin(x, "query")), heads(lin(x, "key")), heads(lin(x, "value"))
    s = q @ k.transpose(0, 1, 3, 2) / 4.0 + w["attention_mask"]
    s = np.exp(s - s.max(-1, keepdims=True))
    ctx = (s / s.sum(-1, keepdims=True)) @ v
    h = _layer_norm(lin(ctx.transpose(0, 2, 1, 3).reshape(1, 32, 64), "attn_out") + x,
                    p("ln1.weight"), p("ln1.bias"), 1e-12)
    f = lin(h, "ffn_in")
    f = 0.5 * f * (1 + np.vectorize(erf)(f / math.sqrt(2)))
    ref = _layer_norm(lin(f, "ffn_out") + h, p("ln2.weight"), p("ln2.bias"), 1e-12)
    # The mask really masks something: the last seq // 8 keys are padding.
    assert (w["attention_mask"][..., -4:] == -10000).all() and (w["attention_mask"][..., :-4] == 0).all()
    np.testing.assert_allclose(_run(path, x.astype(np.float32)), ref, rtol=1e-4, atol=1e-4)


def test_builders_take_dimensions(builder):
    # Shrunken / deepened variants, as the BERT-base variant is built; checker + ORT only.
    for model, in_shape, out_shape in [
        (builder.build_transformer(layers=2, seq=8, hidden=32, heads=2, ffn=64), (1, 8, 32), (1, 8, 32)),
        (builder.build_mlp(dims=(16, 8, 4), batch=2), (2, 16), (2, 4)),
        (builder.build_conv_block(channels=4, size=8), (1, 4, 8, 8), (1, 4, 8, 8)),
        (builder.build_dw_separable(channels=8, out_channels=12, size=6), (1, 8, 6, 6), (1, 12, 1, 1)),
    ]:
        onnx.checker.check_model(model, full_check=True)
        (y,) = _session(model.SerializeToString()).run(["y"], {"x": _input(in_shape)})
        assert y.shape == out_shape and np.isfinite(y).all()
    deep = builder.build_transformer(layers=2, seq=8, hidden=32, heads=2, ffn=64)
    assert sum(n.op_type == "LayerNormalization" for n in deep.graph.node) == 4


# ----------------------------------------------------------------------------------------
# Torch exports
# ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("rel", TORCH_FILES)
def test_torch_export_matches_torch(rel):
    path = os.path.join(TORCH, rel)
    folder = os.path.dirname(path)
    total = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)
                if f.startswith(os.path.basename(path)))      # .onnx and any .onnx.data
    assert total < 2_000_000
    # The path form lets the checker resolve external data relative to the model.
    onnx.checker.check_model(path, full_check=True)
    model = onnx.load(path)
    expected_opset = 17 if rel.startswith(("legacy/", "external_data/")) else None
    if expected_opset:
        assert {(o.domain, o.version) for o in model.opset_import} == {("", expected_opset)}
    io = np.load(path[:-len(".onnx")] + ".io.npz")
    in_names = [i.name for i in model.graph.input]
    out_names = [o.name for o in model.graph.output]
    assert sorted(io.files) == sorted(in_names + out_names)
    for n in in_names:
        assert io[n].dtype == (np.int64 if n in TOKEN_INPUTS else np.float32)
    outs = _session(path).run(out_names, {n: io[n] for n in in_names})
    for name, got in zip(out_names, outs):
        np.testing.assert_allclose(got, io[name], rtol=1e-4, atol=1e-5, err_msg=f"{rel}:{name}")


def test_external_data_copy_keeps_weights_outside():
    path = os.path.join(TORCH, "external_data", "bert", "bert.onnx")
    model = onnx.load(path, load_external_data=False)
    external = [t for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert external, "no initializer is stored externally"
    locations = {e.value for t in external for e in t.external_data if e.key == "location"}
    assert locations == {"bert.onnx.data"}
    assert os.path.exists(os.path.join(os.path.dirname(path), "bert.onnx.data"))
    # Same graph as the inline legacy export.
    inline = onnx.load(os.path.join(TORCH, "legacy", "bert.onnx"))
    assert [n.op_type for n in model.graph.node] == [n.op_type for n in inline.graph.node]
