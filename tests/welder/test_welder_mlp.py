"""Welder's back-to-back GEMMs (issue #5): matmul → epilogue → matmul → epilogue in one kernel, a row tile of
the hidden in shared memory and each weight read once per block; onnxruntime-exact in both thread orders,
fewer bytes than the best grouping without it, modelled bytes == emulator-counted bytes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.fusion.mlp import match as mlp_chain
from tilec.driver import compile_model

from fused_checks import (assert_deterministic, assert_emu_matches, assert_no_spills,  # noqa: E402
                          build_pair, launches, report)

RNG = np.random.default_rng(5)


def _w(name, shape, scale=0.2):
    return numpy_helper.from_array((scale * RNG.standard_normal(shape)).astype(np.float32), name)


def _c(name, value):
    return numpy_helper.from_array(np.array(value, dtype=np.float32), name)


def _model(nodes, inits, x_shape, outs):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ffn_gelu_residual(s=24, d=48, f=160):
    """A transformer FFN: x·W1 + b1 → GELU (erf) → ·W2 + b2 + x; 24 tokens (an overhanging row tile),
    hidden 48, ffn 160 (not a multiple of the block's threads)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Div", ["h1", "sq2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
             helper.make_node("Add", ["g1", "one"], ["g2"]), helper.make_node("Mul", ["h1", "g2"], ["g3"]),
             helper.make_node("Mul", ["g3", "half"], ["g4"]),
             helper.make_node("MatMul", ["g4", "w2"], ["y0"]), helper.make_node("Add", ["y0", "b2"], ["y1"]),
             helper.make_node("Add", ["y1", "x"], ["y"])]
    inits = [_w("w1", (d, f)), _w("b1", (f,)), _c("sq2", [1.4142135]), _c("one", [1.0]), _c("half", [0.5]),
             _w("w2", (f, d)), _w("b2", (d,))]
    return _model(nodes, inits, [1, s, d], [("y", [1, s, d])])


def mlp_relu_2d():
    """2-D rows: x·W1 → ReLU → ·W2 (no biases)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    return _model(nodes, [_w("w1", (32, 96)), _w("w2", (96, 24))], [16, 32], [("y", [16, 24])])


def ffn_layernorm():
    """A post-norm FFN: the residual sum goes through LayerNorm (a row tail: mean, variance, scale-and-shift
    on the block's rows in shared memory); 24 tokens in a 32-row tile."""
    d, f, s = 32, 128, 24
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]), helper.make_node("MatMul", ["h2", "w2"], ["y0"]),
             helper.make_node("Add", ["y0", "x"], ["y1"]),
             helper.make_node("LayerNormalization", ["y1", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
    inits = [_w("w1", (d, f)), _w("b1", (f,)), _w("w2", (f, d)),
             numpy_helper.from_array(RNG.uniform(0.5, 1.5, d).astype(np.float32), "g"), _w("b", (d,))]
    return _model(nodes, inits, [1, s, d], [("y", [1, s, d])])


def mlp_softmax_2d():
    """2-D rows: x·W1 → Tanh → ·W2 + b2 → Softmax over the last axis (a row tail with max and sum)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Tanh", ["h"], ["t"]),
             helper.make_node("MatMul", ["t", "w2"], ["z0"]), helper.make_node("Add", ["z0", "b2"], ["z"]),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    return _model(nodes, [_w("w1", (16, 64)), _w("w2", (64, 20)), _w("b2", (20,))], [10, 16], [("y", [10, 20])])


def proj_residual_layernorm():
    """One GEMM (an attention output projection): ·W + b + residual → LayerNorm, the rows kept on chip for the
    row tail; 24 tokens in a 32-row tile."""
    d, s = 48, 24
    nodes = [helper.make_node("MatMul", ["x", "w"], ["p0"]),
             helper.make_node("Add", ["p0", "b"], ["p1"]), helper.make_node("Add", ["p1", "x"], ["p2"]),
             helper.make_node("LayerNormalization", ["p2", "g", "bb"], ["y"], axis=-1, epsilon=1e-5)]
    inits = [_w("w", (d, d)), _w("b", (d,)), numpy_helper.from_array(RNG.uniform(0.5, 1.5, d).astype(np.float32), "g"),
             _w("bb", (d,))]
    return _model(nodes, inits, [1, s, d], [("y", [1, s, d])])


CASES = {"ffn_gelu_residual": ffn_gelu_residual, "mlp_relu_2d": mlp_relu_2d, "ffn_layernorm": ffn_layernorm,
         "mlp_softmax_2d": mlp_softmax_2d, "proj_residual_layernorm": proj_residual_layernorm}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    # the best grouping Welder finds without back-to-back GEMMs
    return build_pair(d, CASES[request.param](), RNG, "mlp", lambda mp: mp.setattr(mlp_chain, "mlp_group", lambda *a: None))




def test_mlp_is_one_kernel(built):
    kernels = launches(built / "mlp")
    assert len(kernels) == 1 and "_fused_mlp" in kernels[0], kernels
    assert report(built / "apart")["totals"]["launches"] > 1


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_mlp_matches_onnxruntime_and_its_modelled_bytes(built, order):
    assert_emu_matches(built / "mlp", built, order)


def test_mlp_is_faster_by_the_latency_model_than_without_it(built):
    # Issue #18: the kernel takes the config the latency model times fastest (these few rows: one row per
    # block, the weights re-read per block from L2), not the fewest bytes; what it must beat is the time.
    got, without = (report(b)["totals"]["modelled_us"] for b in (built / "mlp", built / "apart"))
    assert got < without, (got, without)


def test_mlp_passes_ptxas_without_spills(built):
    assert_no_spills(built / "mlp")


def test_compile_is_deterministic(built, tmp_path):
    assert_deterministic(built / "m.onnx", built / "mlp", tmp_path / "again")


def test_row_tail_is_inside_the_kernel(built):
    """LayerNorm / Softmax after the second GEMM run in the same kernel (their edges at shared level)."""
    text = open(built / "mlp" / "model.tir").read()
    if "graph.layer_norm" not in text and "graph.softmax" not in text:
        pytest.skip("no row group after the second GEMM in this case")
    (line,) = [x for x in text.splitlines() if 'kind = "mlp"' in x]
    assert "graph.layer_norm" in line or "graph.softmax" in line, line


def test_no_mlp_when_the_hidden_is_also_an_output(tmp_path):
    """The hidden is needed whole elsewhere: it must reach global memory, so no back-to-back kernel."""
    model = mlp_relu_2d()
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [16, 96]))
    onnx.save(model, str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder")
    assert not any("_fused_mlp" in x for x in launches(tmp_path / "b"))




def test_no_mlp_at_bert_size(tmp_path):
    """BERT-base's FFN (128 tokens, 768 → 3072 → 768): ≤ 32 accumulators per thread allow ≤ 2 rows per
    block, so both 9.4 MB weights would be read by each of 64 blocks; the search keeps the GEMMs apart."""
    onnx.save(ffn_gelu_residual(s=128, d=768, f=3072), str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder")
    assert not any("_fused_mlp" in x for x in launches(tmp_path / "b"))
    assert len(launches(tmp_path / "b")) == 2
