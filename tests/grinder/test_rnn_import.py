"""ONNX LSTM / GRU / RNN import as a cf.loop over time (issue #7): the numpy interpreter against onnxruntime
for every direction, layout and optional input, the loop's shape (weights hoisted, one loop per op), the
torch-exported samples, the errors for what tilec does not express, and one LSTM under the CUDA emulator."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError
from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module
from tilec.passes.pipeline import PassManager, parse_pipeline
from tilec.runtime.interpreter import run_module

SAMPLES = Path(__file__).parents[2] / "samples" / "control"
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
SEQ, BATCH, INP, HID = 5, 2, 3, 4


def rnn_model(kind, direction="forward", layout=0, bias=True, init=True, peep=False, seq_lens=None,
              weights_as_inputs=False, seed=0, **attrs):
    """One ``kind`` node with seeded weights; returns (model bytes, feeds)."""
    g, nd = GATES[kind], 2 if direction == "bidirectional" else 1
    rng = np.random.default_rng(seed)
    arrays = {"W": rng.standard_normal((nd, g * HID, INP)), "R": rng.standard_normal((nd, g * HID, HID)),
              "B": rng.standard_normal((nd, 2 * g * HID)), "P": rng.standard_normal((nd, 3 * HID))}
    arrays = {k: (v * 0.5).astype(np.float32) for k, v in arrays.items()}
    xs = [SEQ, BATCH, INP] if layout == 0 else [BATCH, SEQ, INP]
    hs = [nd, BATCH, HID] if layout == 0 else [BATCH, nd, HID]
    feeds = {"X": rng.standard_normal(xs).astype(np.float32)}
    names = ["X", "W", "R", "B" if bias else "", "seq_lens" if seq_lens is not None else "", "", "", ""]
    if init:
        names[5] = "h0"
        feeds["h0"] = rng.standard_normal(hs).astype(np.float32)
        if kind == "LSTM":
            names[6] = "c0"
            feeds["c0"] = rng.standard_normal(hs).astype(np.float32)
    if peep:
        names[7] = "P"
    used = {n for n in names if n}
    inits = [numpy_helper.from_array(v, k) for k, v in arrays.items() if k in used]
    if seq_lens is not None:
        inits.append(numpy_helper.from_array(np.asarray(seq_lens, np.int32), "seq_lens"))
    if weights_as_inputs:
        feeds.update({i.name: numpy_helper.to_array(i) for i in inits})
        inits = []
    while names[-1] == "":
        names.pop()
    outs = ["Y", "Y_h"] + (["Y_c"] if kind == "LSTM" else [])
    ys = [SEQ, nd, BATCH, HID] if layout == 0 else [BATCH, SEQ, nd, HID]
    g_in = [h.make_tensor_value_info(k, numpy_helper.from_array(v).data_type, v.shape) for k, v in feeds.items()]
    g_out = [h.make_tensor_value_info("Y", T.FLOAT, ys)] + [h.make_tensor_value_info(o, T.FLOAT, hs)
                                                            for o in outs[1:]]
    node = h.make_node(kind, names, outs, hidden_size=HID, direction=direction, layout=layout, **attrs)
    graph = h.make_graph([node], "g", g_in, g_out, inits)
    return h.make_model(graph, opset_imports=[h.make_opsetid("", 14)]).SerializeToString(), feeds


def onnxruntime_outputs(kind, feeds, layout=0, **kw) -> list:
    """onnxruntime's outputs; it has no batch-major (layout=1) kernels, so those run as the layout-0 twin
    with inputs and outputs transposed."""
    if layout == 0:
        return ort.InferenceSession(rnn_model(kind, layout=0, **kw)[0]).run(None, feeds)
    twin = {k: v.transpose(1, 0, 2) if k in ("X", "h0", "c0") else v for k, v in feeds.items()}
    ref = ort.InferenceSession(rnn_model(kind, layout=0, **kw)[0]).run(None, twin)
    return [r.transpose(2, 0, 1, 3) if r.ndim == 4 else r.transpose(1, 0, 2) for r in ref]


def check(kind, layout=0, **kw):
    m, feeds = rnn_model(kind, layout=layout, **kw)
    module = import_onnx(m)
    got = run_module(module, feeds)
    ref = onnxruntime_outputs(kind, feeds, layout, **kw)
    assert len(got) == len(ref)
    for (name, g), r in zip(got.items(), ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=f"{kind} {kw} output {name}")
    return module


@pytest.mark.parametrize("kind", sorted(GATES))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("bias,init", [(True, True), (False, False), (True, False)])
def test_matches_onnxruntime(kind, direction, layout, bias, init):
    check(kind, layout, direction=direction, bias=bias, init=init)


@pytest.mark.parametrize("kind,kw", [
    ("LSTM", dict(peep=True)),
    ("LSTM", dict(peep=True, init=False, direction="reverse")),
    ("LSTM", dict(input_forget=1)),
    ("LSTM", dict(clip=0.4)),
    ("GRU", dict(clip=0.4, direction="bidirectional")),
    ("RNN", dict(clip=0.4)),
    ("LSTM", dict(direction="bidirectional", peep=True, input_forget=1, clip=0.7)),
    ("GRU", dict(linear_before_reset=1)),
    ("GRU", dict(linear_before_reset=1, bias=False)),
    ("GRU", dict(linear_before_reset=1, direction="bidirectional")),
    ("RNN", dict(activations=["Relu"])),
    ("RNN", dict(direction="bidirectional", activations=["LeakyRelu", "ThresholdedRelu"],
                 activation_alpha=[0.3, 0.2])),
    # activation_alpha is consumed in order by the activations that take one (LeakyRelu gets 0.3, not the
    # default that reading it by position would give).
    ("GRU", dict(activations=["Sigmoid", "LeakyRelu"], activation_alpha=[0.3])),
    ("RNN", dict(activations=["Affine"], activation_alpha=[0.3], activation_beta=[0.4])),
    ("RNN", dict(activations=["ScaledTanh"], activation_alpha=[0.3], activation_beta=[0.4])),
    ("GRU", dict(activations=["HardSigmoid", "Softsign"], activation_alpha=[0.3], activation_beta=[0.4])),
    ("LSTM", dict(activations=["HardSigmoid", "Elu", "Softplus"], activation_alpha=[0.3, 0.9],
                  activation_beta=[0.4])),
    ("LSTM", dict(direction="bidirectional", activations=["Sigmoid", "Tanh", "Relu", "Tanh", "Sigmoid", "Tanh"])),
    ("LSTM", dict(seq_lens=[SEQ] * BATCH)),
    ("GRU", dict(weights_as_inputs=True, direction="bidirectional")),
], ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={v}" for k, v in v.items()))
def test_attributes_match_onnxruntime(kind, kw):
    check(kind, **kw)


def test_clip_bounds_the_gates_not_the_cell_state():
    """A cell state beyond the clip: had h's input been clipped too, Y and Y_h would differ."""
    m, feeds = rnn_model("LSTM", clip=2.0)
    feeds["c0"] = feeds["c0"] * 10
    got = run_module(import_onnx(m), feeds)
    assert np.abs(got["Y_c"]).max() > 2.0
    for g, r in zip(got.values(), ort.InferenceSession(m).run(None, feeds)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind,matmuls", [("LSTM", 1), ("GRU", 2), ("RNN", 1)])
def test_one_loop_with_weights_hoisted(kind, matmuls):
    """Both directions share one cf.loop over the sequence; the body does only the recurrent matmul(s):
    weights are transposed and the input projection computed once, outside."""
    module = import_onnx(rnn_model(kind, direction="bidirectional")[0])
    loops = [op for op in module.walk() if op.name == "cf.loop"]
    assert len(loops) == 1 and loops[0].attributes["trip"] == SEQ
    body = [op.name for op in loops[0].regions[0].block.ops]
    assert body.count("graph.matmul") == 2 * matmuls
    assert "graph.transpose" not in body
    assert loops[0].attributes["num_scan"] == 2  # Y of each direction
    text = print_module(module)
    assert print_module(parse_module(text)) == text
    assert print_module(import_onnx(rnn_model(kind, direction="bidirectional")[0])) == text  # deterministic


def test_absent_y_has_no_scan_output():
    m, feeds = rnn_model("GRU")
    model = onnx.load_from_string(m)
    model.graph.node[0].output[0] = ""
    del model.graph.output[0]
    module = import_onnx(model.SerializeToString())
    loop = next(op for op in module.walk() if op.name == "cf.loop")
    assert loop.attributes["num_scan"] == 0
    got = list(run_module(module, feeds).values())
    np.testing.assert_allclose(got[0], ort.InferenceSession(m).run(None, feeds)[1], rtol=1e-4, atol=1e-5)


def test_passes_walk_into_the_cell():
    m, feeds = rnn_model("LSTM", direction="bidirectional", peep=True)
    module = import_onnx(m)
    PassManager(parse_pipeline("canonicalize,infer-shapes,fold-constants,decompose,cse,dce")).run(module)
    loop = next(op for op in module.walk() if op.name == "cf.loop")
    assert any(op.name == "tile.compute" for op in loop.regions[0].block.ops)
    for g, r in zip(run_module(module, feeds).values(), onnxruntime_outputs("LSTM", feeds, direction="bidirectional",
                                                                             peep=True)):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kw,message", [
    (dict(seq_lens=[SEQ, SEQ - 2]), "sequence_lens [5, 3] differ from the sequence length 5"),
    (dict(activations=["Gelu"]), "RNN activation 'Gelu' is not supported"),
    (dict(activations=["Tanh", "Tanh", "Tanh"]), "RNN takes 1 activations for 1 direction(s), got 3"),
])
def test_unsupported_forms_are_diagnosed(kw, message):
    with pytest.raises(CompileError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        import_onnx(rnn_model("RNN", **kw)[0])


def test_weights_of_the_wrong_shape_are_diagnosed():
    model = onnx.load_from_string(rnn_model("LSTM")[0])
    next(a for a in model.graph.node[0].attribute if a.name == "hidden_size").i = HID + 1
    with pytest.raises(CompileError, match=r"LSTM W has shape \[1, 16, 3\], expected \[1, 20, 3\]"):
        import_onnx(model.SerializeToString())


def test_sequence_lens_fed_at_run_time_must_be_frozen():
    m, _ = rnn_model("RNN", seq_lens=[SEQ, SEQ], weights_as_inputs=True)
    with pytest.raises(CompileError, match="sequence_lens .* must be a constant") as e:
        import_onnx(m)
    assert e.value.needs_constant == "seq_lens"


def test_cli_reports_an_error_not_a_traceback(tmp_path):
    path = tmp_path / "bad_rnn.onnx"
    path.write_bytes(rnn_model("RNN", seq_lens=[SEQ, 1])[0])
    tilec = Path(sys.executable).with_name("tilec")
    r = subprocess.run([str(tilec), "import", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "bad_rnn.onnx" in r.stderr and "error: RNN sequence_lens" in r.stderr
    assert "Traceback" not in r.stderr


TORCH_SAMPLES = ["torch_lstm", "torch_gru", "torch_rnn"]


@pytest.mark.parametrize("name", TORCH_SAMPLES)
def test_torch_exports_match_torch_and_onnxruntime(name):
    """nn.LSTM (2 layers, bidirectional, batch_first), nn.GRU (bidirectional, batch_first), nn.RNN (2
    layers, relu), exported by torch; torch's own outputs are saved beside each model."""
    path = SAMPLES / f"{name}.onnx"
    io = np.load(SAMPLES / f"{name}.io.npz")
    model = onnx.load(str(path))
    feeds = {i.name: io[i.name] for i in model.graph.input}
    module = import_onnx(str(path))
    assert sum(op.name == "cf.loop" for op in module.walk()) == sum(
        n.op_type in GATES for n in model.graph.node)
    got = run_module(module, feeds)
    ref = ort.InferenceSession(str(path)).run(None, feeds)
    for (k, g), r in zip(got.items(), ref):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5, err_msg=k)
        np.testing.assert_allclose(g, io[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_torch_samples_are_reproducible(tmp_path):
    pytest.importorskip("torch", reason="torch is not installed here: the samples' rebuild is not checked")
    sys.path.insert(0, str(SAMPLES))
    from build_rnn import main
    main(["--out", str(tmp_path)])
    for name in TORCH_SAMPLES:
        assert (tmp_path / f"{name}.onnx").read_bytes() == (SAMPLES / f"{name}.onnx").read_bytes(), name


def test_lstm_compiled_under_emu(tmp_path):
    """The default pipeline compiles the LSTM's loop into a host-driven loop step; under the CUDA emulator
    it gives the numpy interpreter's outputs."""
    from tilec.driver import compile_model, make_executor
    m, feeds = rnn_model("LSTM", peep=True)
    path = tmp_path / "lstm.onnx"
    path.write_bytes(m)
    compile_model(str(path), str(tmp_path / "build"))
    got = make_executor(str(tmp_path / "build"), "emu").run(feeds)
    want = run_module(import_onnx(m), feeds)
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
