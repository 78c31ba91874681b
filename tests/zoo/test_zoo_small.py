"""Checks on the model zoo (``samples/models``).

- Every small model passes the full ONNX checker, uses only ops tilec imports, is opset 17
  with static shapes, is under 2 MB, runs in onnxruntime with finite outputs of the declared
  shapes, builds byte-identically twice, and tilec (import, the graph passes, the numpy
  interpreter) matches onnxruntime on it. Emulator runs of the small models are in
  ``make bench`` (every pipeline; minutes of g++ on a cold cache), and of the control-flow
  ones under ``--pipeline grinder`` in ``test_zoo_grinder.py``.
- The Cocktailer models keep their control flow (LSTM / GRU / Loop / If, not unrolled);
  the small seq2seq takes its decoder's EOS exit and the small BlockDrop both runs and
  skips blocks on the seeded inputs.
- Every full builder, built in "meta" mode (no weight data), has the expected parameter
  count (the published one for torchvision/timm/HF models) and strict shape inference
  gets the declared output shapes - so the full graphs are checked without generating
  hundreds of MB of weights.
- ``build_zoo.py`` caches by builder hash and writes full models with external data.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from samples.models import ALLOWED_OPS, ZOO, build, param_count  # noqa: E402
from samples.models import build_zoo  # noqa: E402

NAMES = sorted(ZOO)
SMALL_LIMIT_BYTES = 2_000_000
# Published counts that are given to three significant figures only.
APPROX_PARAMS = {"resnext29": 34.4e6, "nasnet": 3.3e6, "blockdrop": 1.7e6}


def _dims(vi):
    return [d.dim_value if d.HasField("dim_value") else None
            for d in vi.type.tensor_type.shape.dim]


def _feeds(model):
    rng = np.random.default_rng(0)
    feeds = {}
    for vi in model.graph.input:
        shape = _dims(vi)
        if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(np.int64)   # valid ids/mask
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def _all_ops(graph) -> set[str]:
    """Op types of ``graph`` and of every Loop body / If branch in it."""
    ops = set()
    for node in graph.node:
        ops.add(node.op_type)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                ops |= _all_ops(attr.g)
    return ops


@pytest.fixture(scope="module")
def small_models():
    return {n: build(n, "small") for n in NAMES}


@pytest.mark.parametrize("name", NAMES)
def test_small_model_is_valid(name, small_models):
    model = small_models[name]
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    used = _all_ops(model.graph)
    assert used <= ALLOWED_OPS, f"ops tilec does not import: {sorted(used - ALLOWED_OPS)}"
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.name.isidentifier(), vi.name
        assert all(d and d > 0 for d in _dims(vi)), f"{vi.name} is not static: {_dims(vi)}"
    size = len(model.SerializeToString())
    assert size < SMALL_LIMIT_BYTES, f"{name}-small is {size} bytes"
    # Accounting sanity: parameters are a subset of the stored floats.
    stored = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 0 < param_count(model) <= stored


@pytest.mark.parametrize("name", NAMES)
def test_small_model_runs_in_onnxruntime(name, small_models):
    model = small_models[name]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = _feeds(model)
    outs = sess.run(None, feeds)
    for vi, out in zip(model.graph.output, outs):
        assert list(out.shape) == _dims(vi), vi.name
        assert np.isfinite(out).all(), f"{vi.name} has non-finite values"


@pytest.mark.parametrize("name", NAMES)
def test_small_model_matches_onnxruntime_under_numpy(name, small_models, tmp_path):
    """Import + the graph passes (canonicalize ... dce) + the numpy interpreter vs onnxruntime."""
    from tilec.driver import pipeline_spec
    from tilec.frontend.importer import import_onnx
    from tilec.passes.pipeline import PassManager, parse_pipeline
    from tilec.runtime.interpreter import run_module
    model = small_models[name]
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    feeds = _feeds(model)
    module = import_onnx(str(path), {})
    passes = parse_pipeline(pipeline_spec("roller"))
    # the graph passes only: roller annotates tiles, which the interpreter does not read
    PassManager(passes[:[p.name for p in passes].index("roller")]).run(module)
    got = run_module(module, feeds)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for vi, want in zip(model.graph.output, sess.run(None, feeds)):
        scale = max(1.0, float(np.abs(want).max()))
        err = float(np.abs(got[vi.name].astype(np.float64) - want).max())
        assert err <= 1e-4 * scale, f"{vi.name}: max abs err {err:.2e}"


@pytest.mark.parametrize("name", NAMES)
def test_small_build_is_deterministic(name, small_models):
    again = build(name, "small").SerializeToString(deterministic=True)
    assert again == small_models[name].SerializeToString(deterministic=True)


@pytest.mark.parametrize("name", NAMES)
def test_full_param_count_and_shapes(name):
    model = build(name, "full", weights="meta")
    n = param_count(model)
    ref = ZOO[name].reference_params
    if ref is not None:
        assert n == ref
    if name in APPROX_PARAMS:
        assert abs(n - APPROX_PARAMS[name]) / APPROX_PARAMS[name] < 0.02, n
    assert _all_ops(model.graph) <= ALLOWED_OPS
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    for declared, got in zip(model.graph.output, inferred.graph.output):
        assert _dims(got) == _dims(declared), declared.name


def test_bert_base_is_about_110m():
    assert abs(param_count(build("bert_base", "full", weights="meta")) - 110e6) < 1e6


def test_weight_modes_build_the_same_graph():
    graphs = [build("mobilenet_v2", "small", w) for w in ("random", "zeros", "meta")]
    nodes = [[(n.op_type, list(n.input), list(n.output)) for n in g.graph.node] for g in graphs]
    assert nodes[0] == nodes[1] == nodes[2]
    assert len({param_count(g) for g in graphs}) == 1


def test_build_zoo_caches_by_hash(tmp_path):
    path, built = build_zoo.build_one("lstm", "small", str(tmp_path))
    assert built and os.path.exists(path)
    first = open(path, "rb").read()
    assert build_zoo.build_one("lstm", "small", str(tmp_path)) == (path, False)
    assert build_zoo.build_one("lstm", "small", str(tmp_path), force=True) == (path, True)
    assert open(path, "rb").read() == first
    # A manifest from another builder version means rebuild.
    manifest = path[:-len(".onnx")] + ".json"
    text = open(manifest).read().replace(build_zoo.builder_hash("lstm", "small"), "stale")
    open(manifest, "w").write(text)
    assert build_zoo.build_one("lstm", "small", str(tmp_path)) == (path, True)


def test_build_zoo_full_uses_external_data(tmp_path):
    # NeRF is the one full model small enough (2.4 MB of weights) to write in a unit test.
    path, built = build_zoo.build_one("nerf_mlp", "full", str(tmp_path))
    assert built and os.path.getsize(path + ".data") > 2_000_000
    assert os.path.getsize(path) < 100_000
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    model = onnx.load(path, load_external_data=False)
    rgb, sigma = sess.run(None, _feeds(model))
    assert rgb.shape == (4096, 3) and sigma.shape == (4096, 1)
    data = open(path + ".data", "rb").read()
    build_zoo.build_one("nerf_mlp", "full", str(tmp_path), force=True)
    assert open(path + ".data", "rb").read() == data     # rebuilt, not appended to


# -- the Cocktailer models keep their control flow (what --pipeline grinder moves) ----------

def _ort(model):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in model.graph.output], sess.run(None, _feeds(model))))


@pytest.mark.parametrize("name, ops", [
    ("lstm", {"LSTM": 10}), ("nasrnn", {"Loop": 1}), ("seq2seq", {"GRU": 1, "Loop": 1}),
    ("blockdrop", {"If": 54})])
def test_control_flow_models_are_not_unrolled(name, ops):
    """Full builds: one LSTM per layer, one time Loop, an encoder GRU and a decoder Loop, one
    If per ResNet-110 block - and graphs that no longer grow with the sequence length."""
    model = build(name, "full", weights="meta")
    count = {op: sum(n.op_type == op for n in model.graph.node) for op in ops}
    assert count == ops
    assert len(model.graph.node) < 1000


def test_seq2seq_small_stops_at_eos():
    """The decoder Loop's data-dependent exit is taken on the tests' input: fewer steps than
    the maximum, the EOS-padded tail, and EOS as the last decoded token."""
    from samples.models.rnn import CONFIGS
    c = CONFIGS["seq2seq"]["small"]
    out = _ort(build("seq2seq", "small"))
    n = int(out["length"][0])
    assert 1 <= n < c["tgt"]
    assert out["tokens"][0, n - 1] == c["eos"] and (out["tokens"][0, n:] == c["eos"]).all()
    assert (out["tokens"][0, :n - 1] != c["eos"]).all()


def test_blockdrop_small_runs_and_skips_blocks():
    """The policy keeps some blocks and drops others on the tests' input, so both branches of
    the Ifs are exercised (the numpy-vs-onnxruntime test then checks them)."""
    model = build("blockdrop", "small")
    probs = next(n.output[0] for n in model.graph.node if n.op_type == "Reshape")
    model.graph.output.append(onnx.ValueInfoProto(name=probs))
    keep = _ort(model)[probs] > 0.5
    assert keep.any() and not keep.all(), keep
