"""A layernorm over a tensor another kernel produced (BERT's after its residual add, 128 x 768): the
scale-and-shift (an elementwise op reading per-column weights) joins the row group of its statistics
instead of being a kernel of its own. The search now counts a lone elementwise op the way its kernel loads
(once per element), as it counts group members; under Roller's cache-aware estimate the op apart looked
cheaper than the group and was left out."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.driver import compile_model, run_target


def _model(path):
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((768,)).astype(np.float32), "g"),
             numpy_helper.from_array(rng.standard_normal((768,)).astype(np.float32), "be")]
    nodes = [helper.make_node("LayerNormalization", ["x", "g", "be"], ["y"], axis=-1, epsilon=1e-5)]
    graph = helper.make_graph(nodes, "welder_ln", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 768])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 768])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("ln")
    _model(str(d / "m.onnx"))
    x = np.random.default_rng(6).standard_normal((1, 128, 768)).astype(np.float32)
    np.savez(d / "in.npz", x=x)
    ref = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    compile_model(str(d / "m.onnx"), str(d / "fused"), pipeline="welder", check_ptx=True)
    return d, ref


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_layernorm_apply_joins_its_row_group(built, order):
    d, ref = built
    run_target(str(d / "fused"), str(d / "in.npz"), str(d / f"o-{order}.npz"), backend="emu",
               report_path=str(d / f"r-{order}.json"), emu_order=order)
    got = np.load(d / f"o-{order}.npz")
    np.testing.assert_allclose(got[got.files[0]], ref, rtol=1e-4, atol=1e-4)
    run = json.load(open(d / f"r-{order}.json"))
    # the whole layernorm in one row kernel: before, the scale-and-shift was a second kernel re-reading
    # the input and the row statistics.
    assert run["totals"]["launches"] == 1
    row = [k for k in run["kernels"] if "fused_row" in k["name"]]
    assert len(row) == 1
    for k in run["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k
    report = json.load(open(d / "fused" / "report.json"))
    assert report["ptxas_checked"] and all(k.get("ptxas") for k in report["kernels"])
