"""ONNX Loop / If / Scan import: numpy interpreter vs onnxruntime on small hand-built graphs, passes that
walk into bodies, and the errors for what tilec cannot express with static shapes."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError
from tilec.ir.printer import print_module
from tilec.passes.pipeline import PassManager, parse_pipeline
from tilec.runtime.interpreter import run_module


def vi(name, dtype, shape):
    return h.make_tensor_value_info(name, dtype, shape)


def model(nodes, inputs, outputs, inits=()):
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17)]).SerializeToString()


def check(m: bytes, inputs: dict, pipeline: str | None = None):
    module = import_onnx(m)
    if pipeline:
        PassManager(parse_pipeline(pipeline)).run(module)
    got = list(run_module(module, inputs).values())
    for g, r in zip(got, ort.InferenceSession(m).run(None, inputs)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-6)
    return module


def scan_model(reverse_in=0, reverse_out=0, out_axis=0):
    body = h.make_graph([h.make_node("Add", ["s", "xt"], ["s2"]), h.make_node("Mul", ["s2", "k"], ["y"])],
                        "b", [vi("s", T.FLOAT, [3]), vi("xt", T.FLOAT, [3])],
                        [vi("s2", T.FLOAT, [3]), vi("y", T.FLOAT, [3])])
    node = h.make_node("Scan", ["s0", "x"], ["sT", "ys"], body=body, num_scan_inputs=1,
                       scan_input_directions=[reverse_in], scan_output_directions=[reverse_out],
                       scan_output_axes=[out_axis])
    ys = [5, 3] if out_axis == 0 else [3, 5]
    return model([node], [vi("s0", T.FLOAT, [3]), vi("x", T.FLOAT, [5, 3])],
                 [vi("sT", T.FLOAT, [3]), vi("ys", T.FLOAT, ys)],
                 [numpy_helper.from_array(np.array(0.5, np.float32), "k")])


@pytest.mark.parametrize("rin,rout,axis", [(0, 0, 0), (1, 0, 0), (0, 1, 1), (1, 1, 1)])
def test_scan_directions_and_axes(rin, rout, axis):
    rng = np.random.default_rng(0)
    module = check(scan_model(rin, rout, axis), {"s0": rng.random(3, np.float32), "x": rng.random((5, 3), np.float32)},
                   "canonicalize,infer-shapes,fold-constants,decompose,cse,dce")
    text = print_module(module)
    assert "cf.loop" in text and "tile.compute" in text  # decompose went into the body


def nested_loop_if():
    """for i < 3: acc = acc + (x if sum(acc) > 1 else -x); the If reads x from two scopes out."""
    then_g = h.make_graph([h.make_node("Identity", ["x"], ["d1"])], "t", [], [vi("d1", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Neg", ["x"], ["d2"])], "e", [], [vi("d2", T.FLOAT, [2])])
    body = h.make_graph([
        h.make_node("ReduceSum", ["acc"], ["s"], keepdims=0),
        h.make_node("Greater", ["s", "one"], ["p"]),
        h.make_node("If", ["p"], ["d"], then_branch=then_g, else_branch=else_g),
        h.make_node("Add", ["acc", "d"], ["acc2"]),
        h.make_node("Identity", ["c"], ["c2"]),
    ], "body", [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("acc", T.FLOAT, [2])],
        [vi("c2", T.BOOL, []), vi("acc2", T.FLOAT, [2])])
    return model([h.make_node("Loop", ["n", "", "a0"], ["aT"], body=body)],
                 [vi("x", T.FLOAT, [2]), vi("a0", T.FLOAT, [2]), vi("n", T.INT64, [])], [vi("aT", T.FLOAT, [2])],
                 [numpy_helper.from_array(np.array(1.0, np.float32), "one")])


@pytest.mark.parametrize("a0", [[0.0, 0.0], [2.0, 0.0]])
def test_nested_if_in_loop_with_captured_values(a0):
    check(nested_loop_if(), {"x": np.array([0.75, -0.25], np.float32), "a0": np.array(a0, np.float32),
                             "n": np.array(3, np.int64)})


def test_loop_runs_under_emu_with_dynamic_trip_count(tmp_path):
    import onnx

    from tilec.driver import compile_model, make_executor
    (tmp_path / "m.onnx").write_bytes(nested_loop_if())
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"))
    ex = make_executor(str(tmp_path / "b"), "emu")
    x, a0 = np.array([0.75, -0.25], np.float32), np.array([0.0, 0.0], np.float32)
    out = ex.run({"x": x, "a0": a0, "n": np.array(3, np.int64)})
    ref = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x, "a0": a0, "n": np.array(3, np.int64)})
    np.testing.assert_allclose(out["aT"], ref[0], rtol=1e-6)
    t = ex.report()["totals"]
    # trip count (1) + the If predicate each iteration (3) + results (1); the loop condition is constant.
    assert t["host_syncs"] == 5 and t["launches"] > 0
    assert onnx  # noqa


def test_constant_if_is_folded_at_import():
    then_g = h.make_graph([h.make_node("Neg", ["x"], ["a"])], "t", [], [vi("a", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Identity", ["x"], ["b"])], "e", [], [vi("b", T.FLOAT, [2])])
    m = model([h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)],
              [vi("x", T.FLOAT, [2])], [vi("y", T.FLOAT, [2])], [numpy_helper.from_array(np.array(True), "c")])
    module = check(m, {"x": np.array([1.0, 2.0], np.float32)})
    assert "cf.if" not in print_module(module)


def test_scan_output_with_early_exit_is_refused():
    body = h.make_graph([h.make_node("Greater", ["a", "lim"], ["c2"]), h.make_node("Identity", ["a"], ["a2"]),
                         h.make_node("Identity", ["a"], ["s"])], "b",
                        [vi("i", T.INT64, []), vi("c", T.BOOL, []), vi("a", T.FLOAT, [])],
                        [vi("c2", T.BOOL, []), vi("a2", T.FLOAT, []), vi("s", T.FLOAT, [])])
    m = model([h.make_node("Loop", ["n", "", "a0"], ["aT", "ss"], body=body, name="L")],
              [vi("a0", T.FLOAT, [])], [vi("aT", T.FLOAT, []), vi("ss", T.FLOAT, [None])],
              [numpy_helper.from_array(np.array(4, np.int64), "n"),
               numpy_helper.from_array(np.array(0.0, np.float32), "lim")])
    with pytest.raises(CompileError, match="dynamic length"):
        import_onnx(m)


def test_if_branches_of_different_shapes_are_refused():
    then_g = h.make_graph([h.make_node("Identity", ["x"], ["a"])], "t", [], [vi("a", T.FLOAT, [2])])
    else_g = h.make_graph([h.make_node("Concat", ["x", "x"], ["b"], axis=0)], "e", [], [vi("b", T.FLOAT, [4])])
    m = model([h.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g, name="br")],
              [vi("x", T.FLOAT, [2]), vi("c", T.BOOL, [])], [vi("y", T.FLOAT, None)])
    with pytest.raises(CompileError, match="If branches give different types"):
        import_onnx(m)
