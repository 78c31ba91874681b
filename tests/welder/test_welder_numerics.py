"""Fused kernels under the emulator: numerics against onnxruntime in both thread orders, one launch per
group, and modelled bytes within 5% of what the emulator counts."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.driver import compile_model, run_target


def _model(path):
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((32, 48)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal((48,)).astype(np.float32), "b")
    g = numpy_helper.from_array(rng.standard_normal((48,)).astype(np.float32), "g")
    be = numpy_helper.from_array(rng.standard_normal((48,)).astype(np.float32), "be")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["ab"]),
        helper.make_node("Relu", ["ab"], ["r"]),
        helper.make_node("Softmax", ["r"], ["s"], axis=-1),
        helper.make_node("LayerNormalization", ["s", "g", "be"], ["y"], axis=-1, epsilon=1e-5),
    ]
    graph = helper.make_graph(nodes, "welder_small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 48])], [w, b, g, be])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return model


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("welder")
    _model(str(d / "m.onnx"))
    x = np.random.default_rng(2).standard_normal((8, 32)).astype(np.float32)
    np.savez(d / "in.npz", x=x)
    ref = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compile_model(str(d / "m.onnx"), str(d / "build"), pipeline="welder", check_ptx=True)
    return d, ref


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_fused_model_matches_onnxruntime(built, order):
    d, ref = built
    run_target(str(d / "build"), str(d / "in.npz"), str(d / f"out-{order}.npz"), backend="emu",
               report_path=str(d / f"run-{order}.json"), emu_order=order)
    got = np.load(d / f"out-{order}.npz")
    np.testing.assert_allclose(got[got.files[0]], ref, rtol=1e-4, atol=1e-5)
    run = json.load(open(d / f"run-{order}.json"))
    report = json.load(open(d / "build" / "report.json"))
    # matmul+add+relu (register level) with the softmax+layernorm rows as its row tail (shared level; the
    # 8 rows, a row per block by the latency model: welder kind "mlp" with one GEMM): one launch for 10+ ops
    assert run["totals"]["launches"] == 1
    rows = [r for r in run["kernels"] if "fused" in r["name"]]
    assert len(rows) == 1
    for row in rows:
        measured = row["bytes_loaded"] + row["bytes_stored"]
        assert abs(measured - row["bytes_modelled"]) <= 0.05 * measured, row


def test_fused_kernels_compile_with_ptxas(built):
    d, _ = built
    report = json.load(open(d / "build" / "report.json"))
    assert report["ptxas_checked"]
    for k in report["kernels"]:
        assert k.get("ptxas"), k
