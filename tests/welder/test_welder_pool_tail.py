"""Welder's pooling tails (issue #5): a conv chain whose result is only summed over its spatial dims (global
average pool, ReduceSum) reduces each block's tile to partial sums in shared memory instead of writing the
result, and a small reduction finishes the sum. Deterministic (no atomics), onnxruntime-exact in both thread
orders, fewer bytes than without the tail, modelled bytes == emulator-counted bytes."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.fusion.conv_pool import match as pool_tail
from tilec.driver import compile_model, run_target

from fused_checks import (assert_deterministic, assert_emu_matches, assert_fewer_bytes, assert_no_spills,  # noqa: E402
                          build_pair, launches)

RNG = np.random.default_rng(11)


def _w(name, shape, scale=0.3):
    return numpy_helper.from_array((scale * RNG.standard_normal(shape)).astype(np.float32), name)


def _model(nodes, inits, x_shape, outs):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def dw_pw_gap():
    """depthwise 3x3 + BN + Clip -> pointwise + ReLU -> GlobalAveragePool, 13x13 (edge tiles overhang)."""
    c = 8
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("BatchNormalization", ["d", "s", "t", "m", "v"], ["bn"]),
             helper.make_node("Clip", ["bn", "lo", "hi"], ["cl"]),
             helper.make_node("Conv", ["cl", "pw", "pb"], ["p"]),
             helper.make_node("Relu", ["p"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["y"])]
    inits = [_w("dw", (c, 1, 3, 3)), numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "s"),
             _w("t", (c,)), _w("m", (c,)), numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "v"),
             numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(6.0), "hi"),
             _w("pw", (24, c, 1, 1)), _w("pb", (24,))]
    return _model(nodes, inits, [1, c, 13, 13], [("y", [1, 24, 1, 1])])


def conv_conv_sum():
    """batch 2: conv3x3 + ReLU -> conv3x3 stride 2 -> ReduceSum over H, W (keepdims 0)."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("ReduceSum", ["c2", "axes"], ["y"], keepdims=0)]
    inits = [_w("w1", (8, 4, 3, 3)), _w("b1", (8,)), _w("w2", (16, 8, 3, 3)),
             numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")]
    return _model(nodes, inits, [2, 4, 36, 36], [("y", [2, 16])])


CASES = {"dw_pw_gap": dw_pw_gap, "conv_conv_sum": conv_conv_sum}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    # the same chains, their results written and pooled apart
    return build_pair(d, CASES[request.param](), RNG, "tail", lambda mp: mp.setattr(pool_tail, "_reader", lambda *a: None))




def test_tail_fuses_into_the_chain(built):
    assert len([x for x in launches(built / "tail") if "_fused_conv_pool" in x]) == 1
    assert not any("_fused_conv_chain" in x for x in launches(built / "tail"))
    assert len([x for x in launches(built / "apart") if "_fused_conv_chain" in x]) == 1


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_tail_matches_onnxruntime_and_its_modelled_bytes(built, order):
    assert_emu_matches(built / "tail", built, order)


def test_tail_is_deterministic_across_thread_orders(built):
    """Fixed-order partial sums: both orders give bit-identical outputs."""
    outs = []
    for order in ("normal", "reverse"):
        path = built / f"det-{order}.npz"
        run_target(str(built / "tail"), str(built / "in.npz"), str(path), backend="emu", emu_order=order)
        outs.append(np.load(path)["y"])
    assert np.array_equal(outs[0], outs[1])


def test_tail_moves_fewer_bytes_than_without_it(built):
    assert_fewer_bytes(built / "tail", built / "apart")


def test_tail_passes_ptxas_without_spills(built):
    assert_no_spills(built / "tail")


def test_compile_is_deterministic(built, tmp_path):
    assert_deterministic(built / "m.onnx", built / "tail", tmp_path / "again")


def test_no_tail_when_the_chain_result_is_also_an_output(tmp_path):
    """The pooled tensor is needed whole elsewhere: the chain must store it, so no tail."""
    model = dw_pw_gap()
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, 24, 13, 13]))
    onnx.save(model, str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder")
    assert not any("_fused_conv_pool" in x for x in launches(tmp_path / "b"))
