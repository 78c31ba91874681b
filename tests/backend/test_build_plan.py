"""plan.json: steps, argument order, buffer kinds, lifetimes, views and the temporaries' arena."""
from __future__ import annotations

import itertools

import pytest
from build_fixtures import append_scale_chain, kernel_func, vadd_module

from tilec.backend import plan as plan_mod
from tilec.backend.plan import build_plan, lower_bound_bytes
from tilec.ir import CompileError, TensorType
from tilec.ir.attributes import SymbolRef
from tilec.ir.builder import Builder
from tilec.ir.core import Operation, lookup_symbol


def by_name(plan):
    return {b["name"]: b for b in plan["buffers"]}


def test_plan_steps_buffers_and_lifetimes():
    plan = build_plan(vadd_module(1000, host_op=True))
    assert [s["kind"] for s in plan["steps"]] == ["launch", "host", "launch"]
    k0, host, k1 = plan["steps"]
    assert (k0["kernel"], k0["cu"], k0["grid"], k0["block"], k0["smem"]) == ("k0_vadd", "kernels/k0_vadd.cu",
                                                                            [16, 1, 1], [64, 1, 1], 0)
    assert k0["args"] == ["x", "w", "t0"] and host["op"] == "graph.relu" and plan["host_ops"] == ["graph.relu"]
    b = by_name(plan)
    assert {n: v["kind"] for n, v in b.items()} == {"x": "input", "w": "weight", "t0": "temp", "t1": "temp",
                                                    "t2": "output"}
    assert (b["x"]["first_use"], b["x"]["last_use"]) == (-1, 0)
    assert (b["t0"]["first_use"], b["t0"]["last_use"]) == (0, 1)
    assert (b["t2"]["first_use"], b["t2"]["last_use"]) == (2, 3)
    assert b["t0"]["bytes"] == 4000 and b["t0"]["dtype"] == "f32" and b["t0"]["shape"] == [1000]
    assert plan["inputs"] == [{"name": "x", "buffer": "x"}] and plan["outputs"] == [{"name": "y", "buffer": "t2"}]
    assert lower_bound_bytes(plan) == 3 * 4000


def test_arena_never_overlaps_live_buffers():
    """Chain of 6 launches: t_i lives [i, i+1]; neighbours in time must be disjoint in memory, and dead
    buffers get reused so the arena stays at two slots."""
    m = vadd_module(100)
    append_scale_chain(m, 6, 100)
    plan = build_plan(m)
    temps = [x for x in plan["buffers"] if x["kind"] == "temp"]
    assert len(temps) == 7
    for p, q in itertools.combinations(temps, 2):
        if p["first_use"] <= q["last_use"] and q["first_use"] <= p["last_use"]:
            assert p["offset"] + p["bytes"] <= q["offset"] or q["offset"] + q["bytes"] <= p["offset"], (p, q)
        assert p["offset"] % plan_mod.ALIGN == 0
    assert plan["arena_bytes"] == 2 * 512


def test_args_follow_param_order_not_in_out_order():
    m = vadd_module(64)
    k = lookup_symbol(m, "k0_vadd")
    params = k.attributes["params"]
    k.attributes["params"] = [params[2], params[0], params[1]]  # out first
    assert build_plan(m)["steps"][0]["args"] == ["t0", "x", "w"]


def test_launch_arity_mismatch_is_an_error():
    m = vadd_module(64)
    m.body.insert_before(lookup_symbol(m, "main"), kernel_func("k9_bad", "", 64, ["a", "b", "c"], ["d"]))
    launch = next(op for op in lookup_symbol(m, "main").body.ops if op.name == "kernel.launch")
    launch.attributes["kernel"] = SymbolRef("k9_bad")
    with pytest.raises(CompileError, match="passes 2 inputs and 1 outputs; the kernel takes 3 and 1"):
        build_plan(m)


def test_views_alias_their_root_and_keep_it_alive(monkeypatch):
    """A reshape of a launch result that is returned: the view aliases the root, the root is an output (so it
    is not in the reusable arena) and lives to the end."""
    monkeypatch.setattr(plan_mod, "is_view", lambda op: op.name == "graph.reshape")
    m = vadd_module(64)
    fn = lookup_symbol(m, "main")
    ret = fn.body.ops[-1]
    first = next(op for op in fn.body.ops if op.name == "kernel.launch")
    view = Operation("graph.reshape", [first.result], [TensorType((8, 8), "f32")])
    fn.body.insert_before(ret, view)
    view2 = Operation("graph.reshape", [view.result], [TensorType((64,), "f32")])
    fn.body.insert_before(ret, view2)
    ret.set_operands([ret.operands[0], view2.result])
    fn.attributes["result_names"] = ["y", "z"]
    plan = build_plan(m)
    b = by_name(plan)
    assert [s["kind"] for s in plan["steps"]] == ["launch", "launch"]  # views are not steps
    assert b["t2"]["kind"] == b["t3"]["kind"] == "view"
    assert b["t2"]["alias_of"] == b["t3"]["alias_of"] == "t0"  # a view of a view aliases the root
    assert b["t0"]["kind"] == "output" and b["t0"]["last_use"] == 2 and "offset" not in b["t0"]
    assert b["t3"]["first_use"] == 0 and b["t3"]["last_use"] == 2
    assert plan["outputs"][1] == {"name": "z", "buffer": "t3"}
    assert lower_bound_bytes(plan) == 4 * 256  # x, w, y and t0 (z's bytes) once each


def test_inline_constants_are_weight_buffers():
    import numpy as np

    from tilec.backend.plan import const_key, weight_arrays
    m = vadd_module(16)
    fn = lookup_symbol(m, "main")
    first = next(op for op in fn.body.ops if op.name == "kernel.launch")
    c = Builder(m, fn.body, before=first).constant(np.arange(16, dtype=np.float32))
    first.set_operand(1, c)
    plan = build_plan(m)
    (const,) = [b for b in plan["buffers"] if b.get("const")]
    assert const["kind"] == "weight"
    np.testing.assert_array_equal(weight_arrays(m, plan)[const_key(const["name"])], np.arange(16))
