"""Attention kept on chip (issue #5): Welder fuses S = Q·Kᵀ → scale / additive mask → softmax → ·V (→ the
head-merge transpose) into one kernel, matched from expression structure, chosen by its bytes against the
segments apart, and lowered so that the emulator's count equals the modelled bytes. Small graphs built with
onnx.helper, checked against onnxruntime in normal and reverse thread order."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.fusion.attention import match as attention
from tilec.driver import compile_model, run_target

# (batch, heads, seq, head dim, mask: None | "keys" (B,1,1,S) | "full" (B,1,S,S), merge heads after ·V)
CASES = {
    "keys_mask": (1, 2, 16, 16, "keys", False),
    "no_mask_merge": (2, 4, 64, 32, None, True),
    "full_mask": (2, 3, 32, 16, "full", False),
}


def _model(path, b, h, s, d, mask, merge) -> dict:
    f = TensorProto.FLOAT
    ins = [helper.make_tensor_value_info("q", f, [b, h, s, d]), helper.make_tensor_value_info("kt", f, [b, h, d, s]),
           helper.make_tensor_value_info("v", f, [b, h, s, d])]
    inits = [numpy_helper.from_array(np.array([math.sqrt(d)], np.float32), "scale")]
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"])]
    scores = "sd"
    if mask:
        shape = [b, 1, 1, s] if mask == "keys" else [b, 1, s, s]
        ins.append(helper.make_tensor_value_info("mask", f, shape))
        nodes.append(helper.make_node("Add", ["sd", "mask"], ["sm"]))
        scores = "sm"
    nodes += [helper.make_node("Softmax", [scores], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    out_shape = [b, h, s, d]
    if merge:
        nodes.append(helper.make_node("Transpose", ["o"], ["om"], perm=[0, 2, 1, 3]))
        out_shape = [b, s, h, d]
    out = "om" if merge else "o"
    graph = helper.make_graph(nodes, "attn", ins, [helper.make_tensor_value_info(out, f, out_shape)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    rng = np.random.default_rng(b * 100 + s)
    feeds = {"q": rng.standard_normal((b, h, s, d)), "kt": rng.standard_normal((b, h, d, s)),
             "v": rng.standard_normal((b, h, s, d))}
    if mask:
        m = np.where(rng.random(shape) < 0.25, -10000.0, 0.0)
        feeds["mask"] = m
    return {k: v.astype(np.float32) for k, v in feeds.items()}


def _emu(build, inputs, work, order):
    run_target(str(build), str(inputs), str(work / f"o-{order}.npz"), backend="emu",
               report_path=str(work / f"r-{order}.json"), emu_order=order)
    got = np.load(work / f"o-{order}.npz")
    return got[got.files[0]], json.load(open(work / f"r-{order}.json"))


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    feeds = _model(str(d / "m.onnx"), *CASES[request.param])
    np.savez(d / "in.npz", **feeds)
    ref = ort.InferenceSession(str(d / "m.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    compile_model(str(d / "m.onnx"), str(d / "fused"), pipeline="welder", check_ptx=True, dump_dir=str(d / "dumps"))
    return d, ref


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_attention_is_one_kernel_and_matches(built, order):
    d, ref = built
    got, run = _emu(d / "fused", d / "in.npz", d, order)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    assert run["totals"]["launches"] == 1
    assert "fused_attention" in run["kernels"][0]["name"]
    for k in run["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k


def test_attention_kernel_records_its_choice_and_passes_ptxas(built):
    d, _ = built
    report = json.load(open(d / "fused" / "report.json"))
    assert report["ptxas_checked"]
    for k in report["kernels"]:
        assert k.get("ptxas") and k["ptxas"]["spill_bytes"] == 0, k
    text = next((d / "dumps").glob("*_welder.tir")).read_text()
    # the group's tile and its score against the segments apart are visible in the IR, like other groups'
    assert text.count('kind = "attention"') == 1 and "tq = " in text and "apart = " in text


def test_attention_moves_fewer_bytes_than_unfused(built, monkeypatch):
    """The same model with the attention match switched off: softmax and the two matmuls apart."""
    d, ref = built
    monkeypatch.setattr(attention, "match", lambda graph, idx: None)
    compile_model(str(d / "m.onnx"), str(d / "apart"), pipeline="welder")
    got, apart = _emu(d / "apart", d / "in.npz", d / "apart", "normal")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    fused = json.load(open(d / "r-normal.json")) if (d / "r-normal.json").exists() else _emu(
        d / "fused", d / "in.npz", d, "normal")[1]
    assert apart["totals"]["launches"] > 1
    assert fused["totals"]["global_bytes"] < apart["totals"]["global_bytes"]


def test_probabilities_used_outside_are_not_fused(tmp_path):
    """When the softmax output is also a model output the score tile cannot stay on chip."""
    _model(str(tmp_path / "m.onnx"), 1, 2, 16, 16, None, False)
    m = onnx.load(str(tmp_path / "m.onnx"))
    m.graph.output.append(helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 2, 16, 16]))
    onnx.save(m, str(tmp_path / "m.onnx"))
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder")
    assert "fused_attention" not in " ".join(k["name"] for k in json.load(open(tmp_path / "b" / "report.json"))["kernels"])
