"""Regression from the ONNX node-test sweep under emu (``test_reduce_*_empty_set``,
``test_reduce_sum_empty_set_non_reduced_axis_zero``, ``test_causal_conv_with_state_kernel_size_one_expanded``):
Roller divided by an axis extent of 0 in ``padding_waste`` (ZeroDivisionError) for any op whose iteration
space is empty. Fixed in analysis/roller.py: an empty iteration space gets no rTile, and lower-cuda's
default kernel runs it as an empty loop, so a reduction over an empty axis stores ONNX's identity value
(0 for sum, -inf for max, 1 for prod; log(0) = -inf after ReduceLogSum) and an empty output stores nothing."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.analysis.hardware import get_arch
from tilec.analysis.roller import construct_rtiles
from tilec.driver import compile_model, make_executor

SHAPE = [2, 0, 4]
# output name -> (ONNX op, reduced axis, expected value of every element / None for an empty output)
REDUCES = {"sum": ("ReduceSum", 1, 0.0), "max": ("ReduceMax", 1, -np.inf), "prod": ("ReduceProd", 1, 1.0),
           "logsum": ("ReduceLogSum", 1, -np.inf), "empty": ("ReduceSum", 2, None)}


def _model(path):
    nodes, outs, inits = [], [], []
    for name, (op, axis, _) in REDUCES.items():
        inits.append(nh.from_array(np.array([axis], np.int64), f"axes_{name}"))
        nodes.append(h.make_node(op, ["x", f"axes_{name}"], [name], keepdims=1))
        shape = [1 if i == axis else d for i, d in enumerate(SHAPE)]
        outs.append(h.make_tensor_value_info(name, T.FLOAT, shape))
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", T.FLOAT, SHAPE)], outs, inits)
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), path)


@pytest.mark.parametrize("pipeline", ["roller", "grinder"])
def test_reductions_over_an_empty_axis_store_the_identity(tmp_path, pipeline):
    _model(tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline=pipeline)
    x = np.zeros(SHAPE, np.float32)
    for order in ("normal", "reverse"):
        got = make_executor(str(tmp_path / "b"), "emu", emu_order=order).run({"x": x})
        for name, (_, axis, value) in REDUCES.items():
            shape = tuple(1 if i == axis else d for i, d in enumerate(SHAPE))
            want = np.zeros(shape, np.float32) if value is None else np.full(shape, value, np.float32)
            np.testing.assert_array_equal(got[name], want, err_msg=f"{name} ({order})")


@pytest.mark.parametrize("m,n,k", [(4, 8, 0), (0, 8, 16)])
def test_roller_gives_no_rtile_for_an_empty_iteration_space(m, n, k):
    from tilec.analysis.tile_problem import TileProblem
    from tilec.ir.texpr import parse_texpr
    problem = TileProblem(parse_texpr("C[m, n] += A[m, k] * B[k, n]"), {"m": m, "n": n, "k": k},
                          ((m, k), (k, n)), ("f32", "f32"), (m, n), "f32")
    assert construct_rtiles(problem, get_arch("h200")) == []
    # the same problem with every extent non-zero is tiled: the early return is only for empty spaces
    full = TileProblem(problem.expr, {"m": 4, "n": 8, "k": 16}, ((4, 16), (16, 8)), ("f32", "f32"), (4, 8), "f32")
    assert construct_rtiles(full, get_arch("h200"))
