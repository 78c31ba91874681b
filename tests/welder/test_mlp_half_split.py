"""The FFN chain in f16 on sm_80+ (issue #17): the ``mlp`` kind's back-to-back kernel computes in f32 on
CUDA cores, so a half-precision chain is left to the ``epilogue`` kind, which splits it into two tensor-core
engine GEMMs with fused epilogues (GEMM + bias + GELU, GEMM + bias); the same graph in f32 still
takes the ``mlp`` kind. Why the split and not a back-to-back tensor-core kernel: fusion/mlp/__init__.py.
Checked under the emulator against numpy on the same f16 weights."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from tilec.driver import compile_model, run_target
from tilec.ir import read_ir

HALF = (96, 64, 256)   # tokens, hidden, inner: Roller gives both GEMMs mma-aligned tiles, an overhanging row tile
SMALL = (24, 48, 160)  # test_welder_mlp's FFN: the mlp kind wins in f32
ERF = np.vectorize(math.erf)


def _ffn(path, dtype: str, shape: tuple) -> tuple:
    """x·W1 + b1 → GELU (erf) → ·W2 + b2 (2-D rows), and its numpy value in f32 on the model's (rounded) weights,
    with the hidden rounded to the model type as the split stores it."""
    t, npt = (TensorProto.FLOAT16, np.float16) if dtype == "f16" else (TensorProto.FLOAT, np.float32)
    TOKENS, HIDDEN, INNER = shape
    rng = np.random.default_rng(3)
    w = {"w1": 0.2 * rng.standard_normal((HIDDEN, INNER)), "b1": 0.2 * rng.standard_normal(INNER),
         "w2": 0.2 * rng.standard_normal((INNER, HIDDEN)), "b2": 0.2 * rng.standard_normal(HIDDEN),
         "sq2": np.array([math.sqrt(2.0)]), "one": np.array([1.0]), "half": np.array([0.5])}
    w = {n: v.astype(npt) for n, v in w.items()}
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "w1"], ["h0"]), mk("Add", ["h0", "b1"], ["h1"]), mk("Div", ["h1", "sq2"], ["g0"]),
             mk("Erf", ["g0"], ["g1"]), mk("Add", ["g1", "one"], ["g2"]), mk("Mul", ["h1", "g2"], ["g3"]),
             mk("Mul", ["g3", "half"], ["g4"]), mk("MatMul", ["g4", "w2"], ["y0"]), mk("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, [TOKENS, HIDDEN])],
                              [helper.make_tensor_value_info("y", t, [TOKENS, HIDDEN])],
                              [numpy_helper.from_array(v, n) for n, v in w.items()])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    x = rng.standard_normal((TOKENS, HIDDEN)).astype(npt)
    f = {n: v.astype(np.float32) for n, v in w.items()}
    h = x.astype(np.float32) @ f["w1"] + f["b1"]
    g = (h * (ERF(h / np.float32(math.sqrt(2.0))) + 1.0) * 0.5).astype(npt).astype(np.float32)
    return x, g @ f["w2"] + f["b2"]


def _kinds(dump_dir) -> list:
    text = next(dump_dir.glob("*_welder.tir")).read_text()
    return [line.split('kind = "')[1].split('"')[0] for line in text.splitlines() if 'kind = "' in line]


@pytest.fixture(scope="module")
def half(tmp_path_factory):
    d = tmp_path_factory.mktemp("ffn16")
    x, ref = _ffn(d / "m.onnx", "f16", HALF)
    np.savez(d / "in.npz", x=x)
    compile_model(str(d / "m.onnx"), str(d / "b"), pipeline="welder", arch="a100", dump_dir=str(d / "dumps"))
    return d, ref


def test_half_ffn_splits_into_two_engine_gemms(half):
    d, _ = half
    assert _kinds(d / "dumps") == ["epilogue", "epilogue"]
    funcs = [op for op in read_ir(str(d / "b" / "model.tir")).body.ops if op.name == "kernel.func"]
    assert len(funcs) == 2
    for f in funcs:
        assert (f.attributes.get("config") or {}).get("engine") == "mma_sync", f.attributes.get("config")
        assert "tl_mma_m16n8k16_f16f32" in f.attributes["source"]


def test_half_ffn_matches_numpy_under_the_emulator(half):
    d, ref = half
    run_target(str(d / "b"), str(d / "in.npz"), str(d / "o.npz"), backend="emu", report_path=str(d / "r.json"))
    got = np.load(d / "o.npz")["y"].astype(np.float32)
    np.testing.assert_allclose(got, ref, atol=1e-2 * float(np.abs(ref).max()), rtol=0)
    for k in json.load(open(d / "r.json"))["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k


def test_f32_ffn_keeps_the_mlp_kind(tmp_path):
    """The mlp kind is not switched off: an f32 chain where it wins still takes it."""
    _ffn(tmp_path / "m.onnx", "f32", SMALL)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch="a100",
                  dump_dir=str(tmp_path / "dumps"))
    assert _kinds(tmp_path / "dumps") == ["mlp"]
