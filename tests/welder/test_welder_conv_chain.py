"""Welder's shared-level conv chains (issue #5): a producer conv with its epilogue computed per consumer tile
into shared memory (halo recomputed) and read there by a consumer conv or pooling; one kernel, fewer
global bytes than the best grouping without it, exactly the bytes the emulator counts."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.fusion.conv_chain import match as conv_chain

from fused_checks import (assert_deterministic, assert_emu_matches, assert_fewer_bytes, assert_no_spills,  # noqa: E402
                          build_pair, launches, report)

RNG = np.random.default_rng(7)


def _w(name, shape, scale=0.3):
    return numpy_helper.from_array((scale * RNG.standard_normal(shape)).astype(np.float32), name)


def _model(nodes, inits, x_shape, y_shape):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_relu_conv():
    """conv3x3 (pad 1) + bias + ReLU -> conv3x3 stride 2 (pad 1) + ReLU."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["y"])]
    inits = [_w("w1", (8, 4, 3, 3)), _w("b1", (8,)), _w("w2", (8, 8, 3, 3))]
    return _model(nodes, inits, [1, 4, 20, 20], [1, 8, 10, 10])


def depthwise_pointwise():
    """depthwise conv3x3 stride 2 (pad 1) + BN + Clip(0, 6) -> pointwise conv1x1 + bias."""
    c = 8
    nodes = [helper.make_node("Conv", ["x", "dw"], ["d"], pads=[1, 1, 1, 1], strides=[2, 2], group=c),
             helper.make_node("BatchNormalization", ["d", "s", "t", "m", "v"], ["bn"]),
             helper.make_node("Clip", ["bn", "lo", "hi"], ["cl"]),
             helper.make_node("Conv", ["cl", "pw", "pb"], ["y"])]
    inits = [_w("dw", (c, 1, 3, 3)), numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "s"),
             _w("t", (c,)), _w("m", (c,)), numpy_helper.from_array(RNG.uniform(0.5, 1.5, c).astype(np.float32), "v"),
             numpy_helper.from_array(np.float32(0.0), "lo"), numpy_helper.from_array(np.float32(6.0), "hi"),
             _w("pw", (16, c, 1, 1)), _w("pb", (16,))]
    return _model(nodes, inits, [1, c, 24, 24], [1, 16, 12, 12])


def conv_maxpool():
    """conv3x3 (pad 1) + ReLU -> MaxPool 3x3 stride 2 (pad 1)."""
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])]
    return _model(nodes, [_w("w1", (8, 4, 3, 3))], [1, 4, 18, 18], [1, 8, 9, 9])


CASES = {"conv_relu_conv": conv_relu_conv, "depthwise_pointwise": depthwise_pointwise, "conv_maxpool": conv_maxpool}


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    # the best grouping Welder finds without conv chains
    return build_pair(d, CASES[request.param](), RNG, "chain", lambda mp: mp.setattr(conv_chain, "chain_group", lambda *a: None))



def test_chain_is_one_kernel(built):
    text = open(built / "chain" / "model.tir").read()
    launches = [line for line in text.splitlines() if '"kernel.launch"' in line]
    # Both convs and their epilogues in one kernel (BN's scale/shift from its parameters may be another).
    assert len([x for x in launches if "_fused_conv_chain" in x]) == 1, launches
    assert not any("conv" in x and "_fused_conv_chain" not in x for x in launches), launches
    chain, apart = (report(built / d)["totals"]["launches"] for d in ("chain", "apart"))
    assert chain < apart, (chain, apart)


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_chain_matches_onnxruntime_and_its_modelled_bytes(built, order):
    assert_emu_matches(built / "chain", built, order)


def test_chain_moves_fewer_bytes_than_without_it(built):
    assert_fewer_bytes(built / "chain", built / "apart")


def test_chain_passes_ptxas_without_spills(built):
    assert_no_spills(built / "chain")


def test_compile_is_deterministic(built, tmp_path):
    assert_deterministic(built / "m.onnx", built / "chain", tmp_path / "again")


@pytest.mark.parametrize("case", sorted(CASES))
def test_chain_search_context_caches_match_fresh_contexts(case, tmp_path):
    """The chain search asks one context for thousands of configs, and the context memoizes what depends
    only on parts of the config (fused_conv.ChainContext._memo, tiled.access_affines, grid_footprint_of): every
    config must cost the same on that context as on a fresh one."""
    import itertools

    from tilec.analysis.hardware import get_arch
    from tilec.analysis.welder import TileGraph
    from tilec.fusion import search_groups
    from tilec.fusion.conv_chain.kernel import clear_shared_memos
    from tilec.fusion.conv_chain.match import _options, chain_context, split
    from tilec.driver import FRONT_PASSES, load_target
    from tilec.ir.core import functions
    from tilec.passes.pipeline import PassManager, parse_pipeline
    import onnx

    spec = get_arch("h200")
    path = tmp_path / "m.onnx"
    onnx.save(CASES[case](), str(path))
    module = load_target(str(path))
    PassManager(parse_pipeline(f"{FRONT_PASSES},roller")).run(module)
    graph = TileGraph(functions(module)[0].body)
    [members] = [g.members for g in search_groups(graph, spec) if g.kind == "conv_chain"]
    assert split(graph, members, spec) is not None
    reused = chain_context(graph, members)
    axes, E = reused.out_axes, reused.extents
    checked = 0
    for sizes in itertools.product(*[_options(E[a], 16) for a in axes]):
        block = dict(zip(axes, sizes))
        thread = {a: 1 for a in axes}
        for cstep in itertools.product(*[sorted({1, E[r]}) for r in reused.reduce_axes]):
            for pdiv in (1, 2):
                cfg = {"block": block, "thread": thread, "step": dict(zip(reused.reduce_axes, cstep)),
                       "pstep": {r: -(-reused.p.extents[r] // pdiv) for r in reused.p.reduce_axes}}
                clear_shared_memos()   # a fresh context of the same core would share reused's memos
                fresh = chain_context(graph, members)
                assert reused.smem_bytes(cfg) == fresh.smem_bytes(cfg), cfg
                clear_shared_memos()
                assert reused.chain_bytes(cfg) == chain_context(graph, members).chain_bytes(cfg), cfg
                assert reused.staging_plan(cfg) is not reused.staging_plan(cfg)   # callers get their own list
                checked += 1
    assert checked > 10
