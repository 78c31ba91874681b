"""Ops added for real exports (issue #19) beyond their ONNX node tests: a QDQ int8 model as onnxruntime's
quantiser writes it, run by the numpy interpreter and, compiled, by the emulator, against onnxruntime;
and the diagnostics of the cases tilec refuses (each names the node and why)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _qdq_model():
    """x -> Quantize/Dequantize (uint8, per tensor) -> MatMul with int8 weights dequantised per output
    channel -> Relu, and beside it the same product by QLinearMatMul (uint8 in, uint8 out)."""
    rng = np.random.default_rng(0)
    w = rng.integers(-127, 128, size=(16, 8)).astype(np.int8)
    inits = [_init("x_s", np.float32(0.05)), _init("x_zp", np.uint8(128)),
             _init("w_q", w), _init("w_s", (rng.random(8) * 0.02 + 0.01).astype(np.float32)),
             _init("w_zp", np.zeros(8, np.int8)),
             _init("wq_u8", (w.astype(np.int16) + 128).astype(np.uint8)), _init("w_s1", np.float32([0.015])),
             _init("w_zp1", np.uint8([128])), _init("y_s", np.float32([0.2])), _init("y_zp", np.uint8([10]))]
    nodes = [h.make_node("QuantizeLinear", ["x", "x_s", "x_zp"], ["xq"]),
             h.make_node("DequantizeLinear", ["xq", "x_s", "x_zp"], ["xd"]),
             h.make_node("DequantizeLinear", ["w_q", "w_s", "w_zp"], ["wd"], axis=1),
             h.make_node("MatMul", ["xd", "wd"], ["mm"]),
             h.make_node("Relu", ["mm"], ["y"]),
             h.make_node("QLinearMatMul", ["xq", "x_s", "x_zp", "wq_u8", "w_s1", "w_zp1", "y_s", "y_zp"], ["yq"])]
    g = h.make_graph(nodes, "qdq", [h.make_tensor_value_info("x", T.FLOAT, [4, 16])],
                     [h.make_tensor_value_info("y", T.FLOAT, [4, 8]), h.make_tensor_value_info("yq", T.UINT8, [4, 8])],
                     inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 21)])


def _feeds():
    return {"x": np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32) * 3}


def _onnxruntime(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    # Graph optimisations off: onnxruntime fuses DequantizeLinear -> MatMul into an int8 GEMM whose u8 x s8
    # products saturate int16 on x86 CPUs without VNNI (AVX2's vpmaddubsw), which gave outputs off by whole
    # units on an AMD EPYC here; unfused, it computes the operators' own definitions, as tilec's reference does.
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip(["y", "yq"], sess.run(None, feeds)))


def test_qdq_model_matches_onnxruntime_in_the_interpreter():
    from tilec.runtime.interpreter import run_module
    model, feeds = _qdq_model(), _feeds()
    want = _onnxruntime(model, feeds)
    got = run_module(import_onnx(model, {"x": (4, 16)}), feeds)
    np.testing.assert_allclose(got["y"], want["y"], rtol=1e-5, atol=1e-5)
    # The requantised uint8 result is exact except where onnxruntime's float32 rounding lands on the
    # other side of a .5 tie than the reference's float64 (at most one step).
    assert got["yq"].dtype == np.uint8
    assert np.abs(got["yq"].astype(int) - want["yq"].astype(int)).max() <= 1
    assert (got["yq"] == want["yq"]).mean() > 0.9


def test_qdq_model_compiled_runs_under_the_emulator(tmp_path):
    import tilec
    from tilec.runtime.interpreter import run_module
    model, feeds = _qdq_model(), _feeds()
    ref = run_module(import_onnx(model, {"x": (4, 16)}), feeds)
    compiled = tilec.compile(model, backend="emu")
    y, yq = compiled.run(None, feeds)
    np.testing.assert_allclose(y, ref["y"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(yq, ref["yq"])


def _error(nodes, inputs, outputs, opset, inits=()) -> str:
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    with pytest.raises(CompileError) as e:
        import_onnx(h.make_model(g, opset_imports=[h.make_opsetid("", opset)]))
    return str(e.value)


def _vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def test_quantize_to_a_type_tilec_does_not_carry_is_refused():
    err = _error([h.make_node("QuantizeLinear", ["x", "s"], ["y"], name="q16", output_dtype=T.INT4)],
                 [_vi("x", T.FLOAT, [4])], [_vi("y", T.INT4, [4])], 21, [_init("s", np.float32(0.1))])
    assert "int4" in err and "q16" in err


def test_nonzero_of_a_run_time_input_needs_a_constant():
    err = _error([h.make_node("NonZero", ["x"], ["y"], name="nz")], [_vi("x", T.FLOAT, [4])],
                 [_vi("y", T.INT64, None)], 13)
    assert "must be a constant at import time" in err and "'nz'" in err


def test_nonzero_of_a_constant_folds():
    from tilec.runtime.interpreter import run_module
    g = h.make_graph([h.make_node("NonZero", ["c"], ["n"]), h.make_node("Cast", ["n"], ["nf"], to=T.FLOAT),
                      h.make_node("ReduceSum", ["nf"], ["s"], keepdims=0), h.make_node("Add", ["x", "s"], ["y"])],
                     "g", [_vi("x", T.FLOAT, [])], [_vi("y", T.FLOAT, [])],
                     [_init("c", np.array([[0, 3], [5, 0]], np.float32))])
    got = run_module(import_onnx(h.make_model(g, opset_imports=[h.make_opsetid("", 13)])), {"x": np.float32(1)})
    assert got["y"] == 1 + (0 + 1) + (1 + 0)   # coordinates (0, 1) and (1, 0)


def test_det_of_a_large_matrix_is_refused():
    err = _error([h.make_node("Det", ["x"], ["y"], name="d")], [_vi("x", T.FLOAT, [7, 7])],
                 [_vi("y", T.FLOAT, [])], 13)
    assert "7x7" in err and "at most 6x6" in err


def test_long_linear_attention_is_refused():
    x = [_vi(n, T.FLOAT, [1, 65, 8]) for n in ("q", "k", "v")]
    err = _error([h.make_node("LinearAttention", ["q", "k", "v"], ["y"], name="la", q_num_heads=1,
                              kv_num_heads=1, update_rule="linear")], x, [_vi("y", T.FLOAT, None)], 27)
    assert "65 tokens" in err and "at most 64" in err


def test_attention_heads_must_group():
    q, k = _vi("q", T.FLOAT, [1, 4, 2, 8]), _vi("k", T.FLOAT, [1, 3, 2, 8])
    err = _error([h.make_node("Attention", ["q", "k", "k"], ["y"], name="att")], [q, k],
                 [_vi("y", T.FLOAT, None)], 23)
    assert "multiple of the key/value heads" in err and "'att'" in err


def test_bitcast_keeps_every_bit_under_the_emulator():
    # Random floats use all 32 bits: a float temporary on the way to the int output would round them.
    import tilec
    x = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    g = h.make_graph([h.make_node("BitCast", ["x"], ["y"], to=T.INT32)], "g", [_vi("x", T.FLOAT, [64])],
                     [_vi("y", T.INT32, [64])])
    (y,) = tilec.compile(h.make_model(g, opset_imports=[h.make_opsetid("", 26)]), backend="emu").run(None, {"x": x})
    np.testing.assert_array_equal(y, x.view(np.int32))


@pytest.mark.parametrize("name", ["test_roialign_aligned_false", "test_roialign_aligned_true",
                                  "test_gridsample_bicubic"])
def test_rounded_node_tests_match_the_onnx_reference(name):
    # These node tests store outputs rounded to 4 digits; ONNX's reference evaluator is the exact bar,
    # for the interpreter and for the compiled kernels under the emulator.
    import sys
    from pathlib import Path

    import tilec
    from onnx.reference import ReferenceEvaluator
    from tilec.runtime.interpreter import run_module
    sys.path.insert(0, str(Path(__file__).parent))
    import node_harness as H
    case = next(c for c in H.all_cases() if c.name == name)
    names = [i.name for i in case.model.graph.input]
    for inputs, _ in case.data_sets:
        feeds = dict(zip(names, (H._array(v) for v in inputs)))
        want = ReferenceEvaluator(case.model).run(None, feeds)[0]
        got = run_module(H._import(case, feeds), feeds)["Y"]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        (emu,) = tilec.compile(case.model, backend="emu").run(None, feeds)
        np.testing.assert_allclose(emu, want, rtol=1e-5, atol=1e-6)


def test_max_roi_pool_matches_onnxruntime():
    # ONNX has no node test (nor reference) for MaxRoiPool; onnxruntime's kernel is the bar.
    import tilec
    from tilec.runtime.interpreter import run_module
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 12, 10)).astype(np.float32)
    rois = np.array([[0, 0, 0, 9, 11], [1, 2.4, 3.5, 7.6, 8.5], [0, 5, 5, 5, 5], [1, -3, 4, 30, 6]], np.float32)
    g = h.make_graph([h.make_node("MaxRoiPool", ["x", "rois"], ["y"], pooled_shape=[3, 4], spatial_scale=0.9)],
                     "g", [_vi("x", T.FLOAT, [2, 3, 12, 10]), _vi("rois", T.FLOAT, [4, 5])],
                     [_vi("y", T.FLOAT, [4, 3, 3, 4])])
    model = h.make_model(g, opset_imports=[h.make_opsetid("", 13)])
    feeds = {"x": x, "rois": rois}
    ort = pytest.importorskip("onnxruntime")
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    got = run_module(import_onnx(model), feeds)["y"]
    np.testing.assert_array_equal(got, want)
    (emu,) = tilec.compile(model, backend="emu").run(None, feeds)
    np.testing.assert_array_equal(emu, want)
