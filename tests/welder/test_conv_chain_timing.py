"""The conv-chain search's timing seam (``fusion/conv_chain/match.modelled_us_of``): ``choose`` times every
config, clustered and plain, through that one function, so a test that replaces it (test_welder_cluster lets
the bytes decide) really changes the choice. 06db070 moved ``choose`` to ``modelled_us_of`` while the cluster
test still replaced the older ``modelled_us``: the patch did nothing, the latency model chose, and the chain
lost its cluster-wide halo/weight sharing (335,872 modelled bytes instead of the 149,504 lower bound)."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.analysis.hardware import get_arch
from tilec.analysis.welder import TileGraph
from tilec.driver import FRONT_PASSES, load_target
from tilec.fusion import search_groups
from tilec.fusion.conv_chain import match as chain_match
from tilec.fusion.conv_chain.kernel import clear_shared_memos
from tilec.ir.core import functions
from tilec.ir.types import itemsize
from tilec.passes.pipeline import PassManager, parse_pipeline

SPEC = get_arch("h200")


def _conv_chain():
    """test_welder_cluster's chain: conv3x3 -> ReLU -> conv3x3 at 16 channels, 32x32."""
    rng = np.random.default_rng(5)
    w = {k: (rng.standard_normal((16, 16, 3, 3)) * 0.2).astype(np.float32) for k in ("w1", "w2")}
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Conv", ["r", "w2"], ["y"], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 32, 32])],
                              [numpy_helper.from_array(v, k) for k, v in w.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    path = tmp_path_factory.mktemp("timing") / "chain.onnx"
    onnx.save(_conv_chain(), str(path))
    module = load_target(str(path))
    PassManager(parse_pipeline(f"{FRONT_PASSES},roller")).run(module)
    graph = TileGraph(functions(module)[0].body)
    [members] = [g.members for g in search_groups(graph, SPEC) if g.kind == "conv_chain"]
    return graph, members


def _fresh(chain):
    clear_shared_memos()   # nothing left by another context of the same core
    return chain_match.chain_context(*chain)


def test_replacing_modelled_us_of_lets_the_bytes_decide(chain, monkeypatch):
    timed = []

    def flat(ctx, cfg, *args):   # every config equally fast: the fewest bytes win, the cluster included
        return lambda nbytes: timed.append(nbytes) or 0.0

    monkeypatch.setattr(chain_match, "modelled_us_of", flat)
    got = chain_match.choose(_fresh(chain), SPEC)
    assert got["modelled_us"] == 0.0 and timed   # the replacement was what timed the configs
    assert got["bytes"] == got["least_bytes"] == min(timed)
    assert got.get("cluster")   # the halo rows and both weights shared across the image's row tiles


def test_a_cluster_changes_only_the_bytes_of_the_time(chain):
    """``choose`` times a config's clustered and plain variants with one ``modelled_us_of`` of the plain
    config: exact only while a cluster changes nothing but the bytes. The chosen config's time is also what a
    fresh context gives it."""
    got = chain_match.choose(_fresh(chain), SPEC)
    ctx = _fresh(chain)
    plain = {k: v for k, v in got.items() if k != "cluster"}
    threads = math.prod(got["block"][a] // got["thread"][a] for a in ctx.out_axes)
    unique = sum(math.prod(v.type.shape) * itemsize(v.type.dtype) for v in list(ctx.args) + list(ctx.outs))
    timed = chain_match.modelled_us_of(ctx, got, SPEC, got["blocks"], threads, got["smem"], unique)
    assert timed(got["bytes"]) == got["modelled_us"] > 0
    for cluster in ({a: 2} for a in ctx.out_axes):
        clustered = chain_match.modelled_us_of(ctx, dict(plain, cluster=cluster), SPEC, got["blocks"], threads,
                                               got["smem"], unique)
        alone = chain_match.modelled_us_of(ctx, plain, SPEC, got["blocks"], threads, got["smem"], unique)
        for nbytes in (got["bytes"] // 2, got["bytes"], got["bytes"] * 3):
            assert clustered(nbytes) == alone(nbytes)
        assert alone(got["bytes"]) < alone(got["bytes"] * 1000)   # the bytes do count (once memory-bound)
