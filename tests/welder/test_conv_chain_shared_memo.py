"""The conv-chain search's memos shared between contexts of one core (``fusion/conv_chain/kernel.shared_memos``):
Welder's search asks the chain search for ``[P.., C]``, then ``[P.., C, relu]``, and identical blocks of a network
repeat the same P and C. What depends on P's side and C's reduction only is computed once for all of them; every
context must still choose exactly what a context computing everything afresh chooses."""
from __future__ import annotations

import onnx

from tilec.analysis.hardware import get_arch
from tilec.analysis.welder import TileGraph
from tilec.driver import FRONT_PASSES, load_target
from tilec.fusion import search_groups
from tilec.fusion.conv_chain import kernel
from tilec.fusion.conv_chain.match import chain_context, choose, split
from tilec.ir.core import functions
from tilec.passes.pipeline import PassManager, parse_pipeline

from test_welder_conv_chain import conv_relu_conv, depthwise_pointwise   # noqa: E402

SPEC = get_arch("h200")


def _chain(model, tmp_path, name):
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    module = load_target(str(path))
    PassManager(parse_pipeline(f"{FRONT_PASSES},roller")).run(module)
    graph = TileGraph(functions(module)[0].body)
    [members] = [g.members for g in search_groups(graph, SPEC) if g.kind == "conv_chain"]
    return graph, members


def test_contexts_of_one_core_share_memos_and_choose_as_fresh_ones(tmp_path):
    graph, members = _chain(conv_relu_conv(), tmp_path, "crc")
    shorter = members[:-1]   # without C's ReLU: the same P side and C reduction, another epilogue
    assert split(graph, shorter, SPEC) is not None and split(graph, members, SPEC) is not None
    kernel.clear_shared_memos()
    a, b = chain_context(graph, shorter), chain_context(graph, members)
    assert a._shared is b._shared
    got_a = choose(a, SPEC)
    filled = {name: len(memo) for name, memo in a._shared.items()}
    got_b = choose(b, SPEC)   # reads what a's search left
    assert filled["plans"] > 0 and filled["footprints"] > 0
    assert got_a is not None and got_b is not None
    for group, got in ((shorter, got_a), (members, got_b)):
        kernel.clear_shared_memos()
        fresh = chain_context(graph, group)
        assert fresh._shared is not a._shared and not any(fresh._shared.values())
        assert choose(fresh, SPEC) == got
        for cfg in (got, dict(got, pstep={r: 1 for r in got["pstep"]})):
            kernel.clear_shared_memos()
            assert b.smem_bytes(cfg) == chain_context(graph, members).smem_bytes(cfg)
            kernel.clear_shared_memos()
            assert b.chain_bytes(cfg) == chain_context(graph, members).chain_bytes(cfg)


def test_other_cores_do_not_share(tmp_path):
    graph, members = _chain(conv_relu_conv(), tmp_path, "crc")
    graph2, members2 = _chain(depthwise_pointwise(), tmp_path, "dp")
    kernel.clear_shared_memos()
    a, b = chain_context(graph, members), chain_context(graph2, members2)
    assert a._shared is not b._shared
    assert kernel.core_key(a.pmembers + a.members[:1]) != kernel.core_key(b.pmembers + b.members[:1])


def test_the_number_of_shared_cores_is_bounded(tmp_path, monkeypatch):
    graph, members = _chain(conv_relu_conv(), tmp_path, "crc")
    monkeypatch.setattr(kernel, "SHARED_CORES", 1)
    kernel.clear_shared_memos()
    first = chain_context(graph, members)._shared
    first["x"] = 1
    kernel.shared_memos([])   # another core evicts the oldest
    assert len(kernel._SHARED) == 1
    assert chain_context(graph, members)._shared is not first
