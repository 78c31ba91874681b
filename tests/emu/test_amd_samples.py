"""AMD builds under the 64-lane emulator (issue #23): samples, samples/parallel, samples/control and the small
zoo compiled with ``--arch mi250x`` (HIP sources, warps of the spec's 64 lanes) match onnxruntime in the
normal and reverse thread orders, with every pipeline, and every kernel moves the bytes the compiler modelled.

The wavefront width reaches the kernels: the reductions the lowering writes (row groups, block reductions,
arg-max) shuffle over 64 lanes in blocks of whole wavefronts, and a butterfly cut to 32 lanes in a built
kernel gives a wrong answer there. CI runs the transformer layer and the LSTM loop with two pipelines and one
small model; every other sample, pipeline and zoo model is ``-m slow``."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tilec.analysis.hardware import get_arch
from tilec.bench.measure import onnx_feeds
from tilec.driver import PIPELINES, compile_model, make_executor

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
ARCH = "mi250x"
MODELS = ["conv_block", "dw_separable", "mlp", "transformer_layer", "parallel/inception_block",
          "parallel/lstm_cell", "parallel/nasnet_cell", "parallel/resnext_block", "control/greedy_decoder",
          "control/lstm_loop", "control/nasrnn_loop", "control/skipnet_if", "control/torch_gru",
          "control/torch_lstm", "control/torch_rnn"]
CI = {("transformer_layer", "welder"), ("transformer_layer", "grinder"), ("control/lstm_loop", "grinder"),
      ("control/lstm_loop", "none")}
ZOO_CI = {("bert_base", "grinder")}
ORDERS = ("normal", "reverse")
TOL = 1e-3

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from samples.models import ZOO, build as build_zoo  # noqa: E402

pytestmark = pytest.mark.skipif(get_arch(ARCH).warp_size != 64, reason="the mi250x spec is not a 64-lane target")


def _cases(names, ci):
    return [pytest.param(n, p, id=f"{n}-{p}", marks=[] if (n, p) in ci else [pytest.mark.slow])
            for n in names for p in PIPELINES]


def _check(model: Path, pipeline: str, build: Path) -> None:
    compile_model(str(model), str(build), pipeline=pipeline, arch=ARCH)
    plan = json.loads((build / "plan.json").read_text())
    assert plan["arch"] == ARCH
    sources = sorted((build / "kernels").glob("*"))
    assert sources and all(p.suffix == ".hip" for p in sources if p.suffix in (".cu", ".hip")), sources
    feeds = onnx_feeds(str(model))
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    for order in ORDERS:
        ex = make_executor(str(build), "emu", emu_order=order)
        got = ex.run(feeds)
        for name, ref in want.items():
            np.testing.assert_allclose(np.asarray(got[name], dtype=ref.dtype), ref, rtol=TOL, atol=TOL,
                                       err_msg=f"{model.name} {pipeline} {order}: {name}")


@pytest.mark.parametrize("name,pipeline", _cases(MODELS, CI))
def test_sample_matches_onnxruntime_on_mi250x(name, pipeline, tmp_path):
    _check(SAMPLES / f"{name}.onnx", pipeline, tmp_path / "build")


@pytest.mark.parametrize("name,pipeline", _cases(sorted(ZOO), ZOO_CI))
def test_small_zoo_matches_onnxruntime_on_mi250x(name, pipeline, tmp_path):
    path = tmp_path / f"{name}-small.onnx"
    onnx.save(build_zoo(name, "small"), str(path))
    _check(path, pipeline, tmp_path / "build")


def _reductions(path: Path, shape=(6, 1000)) -> None:
    """Softmax (a row group), ArgMax (a warp per row) and ReduceSum (a block reduction) of one input."""
    from onnx import TensorProto as T
    from onnx import helper as h
    nodes = [h.make_node("Softmax", ["x"], ["y"], axis=-1), h.make_node("ArgMax", ["x"], ["a"], axis=1, keepdims=0),
             h.make_node("ReduceSum", ["x"], ["s"], keepdims=0)]
    outs = [h.make_tensor_value_info(n, t, None) for n, t in (("y", T.FLOAT), ("a", T.INT64), ("s", T.FLOAT))]
    graph = h.make_graph(nodes, "reductions", [h.make_tensor_value_info("x", T.FLOAT, list(shape))], outs)
    onnx.save(h.make_model(graph, opset_imports=[h.make_opsetid("", 13)]), str(path))


@pytest.fixture(scope="module")
def reductions(tmp_path_factory):
    d = tmp_path_factory.mktemp("reductions")
    _reductions(d / "m.onnx")
    compile_model(str(d / "m.onnx"), str(d / "build"), pipeline="welder", arch=ARCH)
    x = np.random.default_rng(0).standard_normal((6, 1000)).astype(np.float32)
    want = dict(zip("yas", ort.InferenceSession(str(d / "m.onnx")).run(None, {"x": x})))
    return d, x, want


def test_reductions_use_whole_wavefronts(reductions):
    d, _, _ = reductions
    text = (d / "build" / "model.tir").read_text()
    widths = [int(w) for w in re.findall(r'"kernel.warp_reduce"\(\) \{[^}]*width = (\d+)', text)]
    assert widths.count(64) == 3, widths   # the row group's max and sum, the block reduction's sum
    blocks = [int(b) for b in re.findall(r"block = \[(\d+), 1, 1\]", text)]
    assert blocks and all(b % 64 == 0 for b in blocks), blocks
    argmax = next(p for p in (d / "build" / "kernels").glob("*arg_max*.hip")).read_text()
    assert "threadIdx.x & 63" in argmax and "k_off = 32" in argmax


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_reductions_match_onnxruntime_with_modelled_bytes(reductions, order):
    d, x, want = reductions
    ex = make_executor(str(d / "build"), "emu", emu_order=order)
    got = ex.run({"x": x})
    for k, ref in want.items():
        np.testing.assert_allclose(got[k], ref, rtol=1e-5, atol=1e-5)
    for k in ex.report()["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k


def test_a_butterfly_cut_to_32_lanes_is_wrong_on_the_wavefront(reductions, tmp_path):
    """The built block reduction with its shuffle tree starting at offset 16, as a kernel written for 32-lane
    warps would: each 64-lane wavefront then sums its halves apart and the result is wrong."""
    import shutil
    d, x, want = reductions
    build = tmp_path / "cut"
    shutil.copytree(d / "build", build)
    src = next((build / "kernels").glob("*reduce_sum*.hip"))
    text = src.read_text()
    assert text.count("for (int k_o = 32;") == 1
    src.write_text(text.replace("for (int k_o = 32;", "for (int k_o = 16;"))
    got = make_executor(str(build), "emu").run({"x": x})
    assert abs(float(got["s"]) - float(want["s"])) > 1e-3
