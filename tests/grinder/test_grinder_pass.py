"""The grinder pass (DESIGN §6): control-flow samples compiled with ``--pipeline grinder`` run their loops and
ifs as one device launch under the emulator (every block order), match numpy and onnxruntime, and take fewer
launches and host syncs than the host-driven ``rammer`` pipeline; decisions are in the IR."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.runtime.interpreter import run_module

SAMPLES = Path(__file__).parents[2] / "samples" / "control"
MOVED = ("lstm_loop", "nasrnn_loop", "skipnet_if")


def _inputs(path: Path, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for vi in onnx.load(str(path)).graph.input:
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == T.INT64:
            out[vi.name] = rng.integers(1, 6, shape).astype(np.int64)
        else:
            out[vi.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _until_model(path: Path) -> Path:
    """s += x until sum(s) >= limit (at most 10 times): a loop whose condition comes from kernels, so the
    device loop must read it back on the device and stop early."""
    body = h.make_graph([
        h.make_node("Add", ["s", "x"], ["s2"]),
        h.make_node("ReduceSum", ["s2"], ["tot"], keepdims=0),
        h.make_node("Less", ["tot", "limit"], ["cond2"]),
    ], "until_body", [h.make_tensor_value_info("i", T.INT64, []), h.make_tensor_value_info("c", T.BOOL, []),
                      h.make_tensor_value_info("s", T.FLOAT, [1, 4])],
        [h.make_tensor_value_info("cond2", T.BOOL, []), h.make_tensor_value_info("s2", T.FLOAT, [1, 4])])
    inits = [numpy_helper.from_array(np.array(10, np.int64), "M"), numpy_helper.from_array(np.array(True), "t"),
             numpy_helper.from_array(np.array(20.0, np.float32), "limit")]
    g = h.make_graph([h.make_node("Loop", ["M", "t", "s0"], ["s_T"], body=body, name="until")], "until",
                     [h.make_tensor_value_info("x", T.FLOAT, [1, 4]), h.make_tensor_value_info("s0", T.FLOAT, [1, 4])],
                     [h.make_tensor_value_info("s_T", T.FLOAT, [1, 4])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("grinder_models")
    out = {n: SAMPLES / f"{n}.onnx" for n in MOVED + ("greedy_decoder",)}
    out["until"] = _until_model(root / "until.onnx")
    return out


@pytest.fixture(scope="module")
def builds(tmp_path_factory, models) -> dict:
    from tilec.driver import compile_model
    root = tmp_path_factory.mktemp("grinder")
    out = {}
    for name, path in models.items():
        for pipeline in ("grinder", "rammer"):
            compile_model(str(path), str(root / f"{name}.{pipeline}"), pipeline=pipeline)
            out[name, pipeline] = root / f"{name}.{pipeline}"
    return out


def _run(build: Path, inputs: dict, order: str = "normal"):
    from tilec.driver import make_executor
    ex = make_executor(str(build), "emu", emu_order=order)
    out = ex.run(inputs)
    return out, ex.report()["totals"]


def _case(models, name, seed):
    inputs = _inputs(models[name], seed)
    if name == "skipnet_if":
        inputs["x"] = inputs["x"] + (1.0 if seed % 2 else -1.0)  # gate open / closed: both branches
    if name == "until":
        inputs["x"] = np.abs(inputs["x"]) + 0.5  # reaches the limit after a few steps, before 10
    return inputs


@pytest.mark.parametrize("name", MOVED + ("until",))
@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
@pytest.mark.parametrize("seed", [0, 1])
def test_device_schedule_matches_numpy_and_onnxruntime(models, builds, name, order, seed):
    inputs = _case(models, name, seed)
    ref = run_module(import_onnx(str(models[name])), inputs)
    ort_out = ort.InferenceSession(str(models[name])).run(None, inputs)
    out, totals = _run(builds[name, "grinder"], inputs, order)
    for (k, r), o in zip(ref.items(), ort_out):
        np.testing.assert_allclose(r, o, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(out[k], r, rtol=1e-5, atol=1e-5)
    assert totals["host_syncs"] == 1  # only the results: no trip count, condition or predicate read back


@pytest.mark.parametrize("name", MOVED + ("until",))
def test_launches_and_syncs_drop_against_the_host_schedule(models, builds, name):
    inputs = _case(models, name, 0)
    _, dev = _run(builds[name, "grinder"], inputs)
    _, host = _run(builds[name, "rammer"], inputs)
    plan = json.loads((builds[name, "grinder"] / "plan.json").read_text())
    assert not [s for s in plan["steps"] if s["kind"] in ("loop", "if")]
    moved = [s for s in plan["steps"] if s.get("control")]
    assert len(moved) == 1 and moved[0]["concurrent"] and moved[0]["zero"] == [moved[0]["args"][-1]]
    if name == "skipnet_if":
        # Gate closed: the host launches nothing for the empty branch, the device still launches the if
        # kernel once (one launch more, one sync less). Gate open: four branch launches become one.
        assert dev["launches"] == host["launches"] + 1
        _, dev = _run(builds[name, "grinder"], _case(models, name, 1))
        _, host = _run(builds[name, "rammer"], _case(models, name, 1))
        assert host["launches"] - dev["launches"] == 3
    else:
        trips = {"lstm_loop": 4, "nasrnn_loop": 4}.get(name) or _until_trips(inputs)
        assert host["launches"] - dev["launches"] >= trips
    assert dev["host_syncs"] <= host["host_syncs"] and dev["host_syncs"] == 1
    if name in ("skipnet_if", "until"):  # the host schedule reads a predicate / condition back
        assert host["host_syncs"] > dev["host_syncs"]


def _until_trips(inputs) -> int:
    s, n = inputs["s0"].astype(np.float32), 0
    while n < 10:
        s, n = s + inputs["x"], n + 1
        if not s.sum() < 20.0:
            break
    assert 1 < n < 10  # the case exits early, after more than one step
    return n


def test_ir_records_the_decisions(builds):
    from tilec.analysis.hardware import get_arch
    from tilec.ir.io import read_ir
    from tilec.ir.printer import print_module
    from tilec.ir.parser import parse_module
    spec = get_arch("h200")
    text = (builds["lstm_loop", "grinder"] / "model.tir").read_text()
    assert print_module(parse_module(text)) == text
    module = read_ir(str(builds["lstm_loop", "grinder"] / "model.tir"))
    loop = next(op for op in module.walk() if op.name == "cf.loop")
    d = loop.attributes["grinder"]
    assert loop.attributes["placement"] == "device"
    assert d["grid"] % spec.num_sms == 0 and d["grid"] == d["blocks_per_sm"] * spec.num_sms
    assert d["host_syncs"] == 0 and d["stages"] == sum(1 for o in loop.body.ops if o.name == "kernel.launch")
    assert "SM-count multiples" in d["grid_why"]
    func = next(op for op in module.body.ops if op.sym_name == d["kernel"].name)
    assert func.attributes["kind"] == "device_loop" and func.attributes["grid"] == [d["grid"], 1, 1]
    assert [s.attributes["kernel"].name for s in func.body.ops] == \
        [o.attributes["kernel"].name for o in loop.body.ops if o.name == "kernel.launch"]
    cu = (builds["lstm_loop", "grinder"] / "kernels" / f"{d['kernel'].name}.cu").read_text()
    kernel = cu[cu.index('extern "C"'):]
    assert kernel.count("tl_grid_barrier(") == d["barriers"] + 1  # one per stage, the carry step, the init
    assert not re.search(r"while\s*\(", kernel)  # waits only through the prelude's helpers


def test_a_loop_with_a_host_op_is_left_on_the_host(models, builds):
    """greedy_decoder's body runs ArgMax, which has no kernel: the loop stays host-driven, says why, and
    still gives the right answer."""
    text = (builds["greedy_decoder", "grinder"] / "model.tir").read_text()
    assert 'placement = "host"' in text and "graph.arg_max on the host" in text
    assert "device_loop" not in text
    plan = json.loads((builds["greedy_decoder", "grinder"] / "plan.json").read_text())
    assert [s["kind"] for s in plan["steps"] if s["kind"] == "loop"] == ["loop"]
    inputs = _inputs(models["greedy_decoder"], 3)
    ref = run_module(import_onnx(str(models["greedy_decoder"])), inputs)
    out, _ = _run(builds["greedy_decoder", "grinder"], inputs)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_two_compiles_are_byte_identical(models, builds, tmp_path):
    from tilec.driver import compile_model
    for name in ("nasrnn_loop", "skipnet_if"):
        again = tmp_path / name
        compile_model(str(models[name]), str(again), pipeline="grinder")
        first = builds[name, "grinder"]
        for rel in ["model.tir", "plan.json"] + [f"kernels/{p.name}" for p in (first / "kernels").glob("*.cu")]:
            assert (again / rel).read_bytes() == (first / rel).read_bytes(), rel


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_device_kernels_pass_ptxas(builds):
    from tilec.backend.ptxas import check_kernels
    for name in MOVED + ("until",):
        for cu in sorted((builds[name, "grinder"] / "kernels").glob("grinder*.cu")):
            info = check_kernels({cu.stem: cu.read_text()})[cu.stem]
            assert info.spill_stores == 0 and info.registers > 0, (name, cu.name)
