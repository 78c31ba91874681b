"""Dynamic-shape profiles end to end (``driver_profile.py``, ``runtime/profile.py``): a BERT-style encoder with
dynamic batch and sequence compiled once runs at three shapes against onnxruntime (batch padded, sequence
exact), the padding analysis' verdict on it, out-of-profile shapes as clean exit-1 errors, shared weights,
an MLP's padded batch on numpy and the emulator, and the compile-time errors."""
from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import tilec
from tilec.cli.main import cli
from tilec.driver_profile import compile_profile
from tilec.ir.diagnostics import CompileError

from profile_models import bert_encoder, bert_feeds, dynamic_mlp

BERT_PROFILE = {"input_ids": [(1, 4), (8, 16)], "attention_mask": [(1, 4), (8, 16)]}
BERT_BUCKETS = {"batch": [2, 4], "seq": [8, 16]}


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """The encoder's .onnx and its profile build (batch 1..4 in buckets 2, 4; seq 8..16 in 8, 16)."""
    root = tmp_path_factory.mktemp("bert")
    path = str(root / "bert.onnx")
    onnx.save(bert_encoder(), path)
    compile_profile(path, str(root / "build"), BERT_PROFILE, BERT_BUCKETS)
    return path, str(root / "build")


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """The dynamic-batch MLP and its profile build with the default buckets of 1..8 (1, 2, 4, 8)."""
    root = tmp_path_factory.mktemp("mlp")
    path = str(root / "mlp.onnx")
    onnx.save(dynamic_mlp(), path)
    compile_profile(path, str(root / "build"), {"x": [(1, 8), 16]})
    return path, str(root / "build")


def _ort(path: str, feeds: dict) -> list:
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.mark.parametrize("batch, seq, bucket", [(3, 8, "4x8"), (1, 16, "2x16"), (4, 16, "4x16")])
def test_bert_runs_at_three_shapes_like_onnxruntime(bert, batch, seq, bucket):
    path, build = bert
    model = tilec.load(build, backend="numpy")
    feeds = bert_feeds(batch, seq, seed=batch * 100 + seq)
    got = model.run(None, feeds)
    assert model.last_bucket == bucket
    for g, w in zip(got, _ort(path, feeds)):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_bert_analysis_pads_batch_and_not_sequence(bert):
    _, build = bert
    profile = json.loads(open(os.path.join(build, "profile.json")).read())
    assert profile["dims"]["batch"]["padding_safe"] is True
    assert profile["dims"]["seq"]["padding_safe"] is False
    assert "graph.matmul" in profile["dims"]["seq"]["why"]   # attention mixes sequence positions
    assert [b["key"] for b in profile["buckets"]] == ["2x8", "2x16", "4x8", "4x16"]
    assert profile["buckets"][0]["outputs"] == {"last_hidden_state": {"batch": 0, "seq": 1},
                                                "pooler_output": {"batch": 0}}
    report = json.loads(open(os.path.join(build, "report.json")).read())
    assert [b["key"] for b in report["buckets"]] == ["2x8", "2x16", "4x8", "4x16"]
    assert report["totals"]["buckets"] == 4 and all(b["totals"]["kernels"] > 0 for b in report["buckets"])


def test_buckets_with_equal_weights_share_one_file(bert):
    _, build = bert
    stat = {k: os.stat(os.path.join(build, "buckets", k, "weights.npz")) for k in ("2x8", "4x8", "2x16", "4x16")}
    # one file per distinct weight set: the position embeddings are folded per sequence length, so the
    # two sequence buckets differ, and the batch buckets of one sequence length share theirs (hard links)
    assert stat["2x8"].st_ino == stat["4x8"].st_ino and stat["2x16"].st_ino == stat["4x16"].st_ino
    assert stat["2x8"].st_ino != stat["2x16"].st_ino and stat["2x8"].st_nlink >= 3
    totals = json.loads(open(os.path.join(build, "report.json")).read())["totals"]
    assert totals["weights_files"] == 2
    assert totals["weights_bytes"] == stat["2x8"].st_size + stat["2x16"].st_size
    assert totals["weights_bytes_linked"] == 2 * totals["weights_bytes"]


@pytest.mark.parametrize("batch, seq, why", [(2, 12, "not one of its buckets"), (5, 8, "outside its range 1..4"),
                                             (2, 20, "outside its range 8..16")])
def test_out_of_profile_shapes_are_clean_errors(bert, tmp_path, batch, seq, why):
    _, build = bert
    np.savez(tmp_path / "in.npz", **bert_feeds(batch, seq))
    out = tmp_path / "out.npz"
    result = CliRunner().invoke(cli, ["run", build, "--inputs", str(tmp_path / "in.npz"), "--outputs", str(out)])
    assert result.exit_code == 1, result.output
    assert why in result.output and "buckets: batch 2,4 (padded); seq 8,16 (exact)" in result.output
    assert "input_ids=1..4x8..16" in result.output and not out.exists()
    with pytest.raises(CompileError, match=why):
        tilec.load(build, backend="numpy").run(None, bert_feeds(batch, seq))


def test_inputs_that_disagree_on_a_dim_are_refused(bert):
    feeds = bert_feeds(2, 8)
    feeds["attention_mask"] = np.ones((2, 16), np.int64)
    with pytest.raises(CompileError, match="disagree on dim 'seq'"):
        tilec.load(bert[1], backend="numpy").run(None, feeds)


@pytest.mark.parametrize("backend", ["numpy", "emu"])
def test_mlp_batch_is_padded_and_sliced_back(mlp, tmp_path, backend):
    path, build = mlp
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = ["run", build, "--inputs", str(tmp_path / "x.npy"), "--outputs", str(tmp_path / "y.npz"),
            "--backend", backend, "--report", str(tmp_path / "run.json")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "bucket 4 (padded batch 3->4)" in result.output
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["bucket"] == {"key": "4", "dims": {"batch": 4}, "padded": {"batch": {"given": 3, "bucket": 4}}}
    y = np.load(tmp_path / "y.npz")["y"]
    assert y.shape == (3, 8)
    np.testing.assert_allclose(y, _ort(path, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_mlp_default_buckets_and_exact_fit(mlp):
    path, build = mlp
    profile = json.loads(open(os.path.join(build, "profile.json")).read())
    assert profile["dims"]["batch"]["buckets"] == [1, 2, 4, 8] and profile["dims"]["batch"]["padding_safe"]
    model = tilec.load(build, backend="numpy")
    x = np.random.default_rng(2).standard_normal((8, 16)).astype(np.float32)
    (y,) = model.run(None, {"x": x})
    assert model.last_bucket == "8"
    np.testing.assert_allclose(y, _ort(path, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_a_size_read_as_a_value_forbids_padding(tmp_path):
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["x", "nf"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
                              [numpy_helper.from_array(np.int64(0), "zero")])
    path = str(tmp_path / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    result = compile_profile(path, str(tmp_path / "b"), {"x": [(1, 4), 4]}, pipeline="none")
    assert "note: dim 'n' is not padding-safe (the model reads its size as a value (Cast" in result.summary()
    dims = json.loads((tmp_path / "b" / "profile.json").read_text())["dims"]
    assert dims["n"]["padding_safe"] is False and "size as a value" in dims["n"]["why"]


def test_only_the_dim_whose_size_is_read_loses_its_padding(tmp_path):
    """y = x / Cast(Shape(x)[1]): the sequence length is a number in the model, the batch is not."""
    from onnx import TensorProto, helper, numpy_helper
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Gather", ["s", "one"], ["n"], axis=0),
             helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["x", "nf"], ["y"])]
    dyn = ["batch", "seq"]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, dyn)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, dyn)],
                              [numpy_helper.from_array(np.int64(1), "one")])
    path = str(tmp_path / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    compile_profile(path, str(tmp_path / "b"), {"x": [(1, 4), (2, 4)]}, {"seq": [2, 3, 4]}, pipeline="none")
    dims = json.loads((tmp_path / "b" / "profile.json").read_text())["dims"]
    assert dims["batch"]["padding_safe"] is True and dims["seq"]["padding_safe"] is False
    model = tilec.load(str(tmp_path / "b"), backend="numpy")
    x = np.arange(9, dtype=np.float32).reshape(3, 3)
    np.testing.assert_allclose(model(x=x)["y"], x / 3)
    assert model.last_bucket == "4x3"


def test_profile_errors(tmp_path, bert):
    path, _ = bert
    out = str(tmp_path / "b")
    cases = [({"input_ids": [(1, 4), (8, 16)]}, None, "dynamic dimensions.*attention_mask"),
             ({**BERT_PROFILE, "nope": [1]}, None, "unknown input"),
             ({"input_ids": [(1, 4)], "attention_mask": [(1, 4), 8]}, None, "rank 1"),
             ({"input_ids": [(1, 4), (8, 16)], "attention_mask": [(1, 2), (8, 16)]}, None, "two ranges"),
             (BERT_PROFILE, {"seq": [4]}, "outside its range 8..16"),
             (BERT_PROFILE, {"heads": [4]}, "not a dynamic dim")]
    for profile, buckets, message in cases:
        with pytest.raises(CompileError, match=message):
            compile_profile(path, out, profile, buckets)
    assert not os.path.exists(out)


def test_a_failing_bucket_leaves_nothing_behind(tmp_path, mlp, monkeypatch):
    import tilec.driver as driver
    real, calls = driver.compile_model, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise CompileError("injected failure")
        return real(*args, **kwargs)
    monkeypatch.setattr(driver, "compile_model", flaky)
    with pytest.raises(CompileError, match="injected"):
        compile_profile(mlp[0], str(tmp_path / "b"), {"x": [(1, 8), 16]}, pipeline="none")
    assert list(tmp_path.iterdir()) == []


def test_cli_compile_options(tmp_path, mlp):
    path, _ = mlp
    runner = CliRunner()
    ok = runner.invoke(cli, ["compile", path, "-o", str(tmp_path / "b"), "--shape-profile", "x=1..4x16",
                             "--buckets", "x:0=2,4", "--pipeline", "none", "-q"])
    assert ok.exit_code == 0, ok.output
    assert "compiled 2 buckets (2, 4;" in ok.output and "note" not in ok.output
    assert json.loads((tmp_path / "b" / "profile.json").read_text())["dims"]["batch"]["buckets"] == [2, 4]
    for args in (["--shape-profile", "x=4..1x16"], ["--shape-profile", "x=1..4xq"], ["--buckets", "batch=2"],
                 ["--shape-profile", "x=1..4x16", "--input-shape", "x=1x16"],
                 ["--shape-profile", "x=1..4x16", "--buckets", "batch=two"]):
        bad = runner.invoke(cli, ["compile", path, "-o", str(tmp_path / "c")] + args)
        assert bad.exit_code == 2, (args, bad.output)
    fixed = runner.invoke(cli, ["compile", path, "-o", str(tmp_path / "c"), "--shape-profile", "x=1..4x8"])
    assert fixed.exit_code == 1 and "fixes it to 16" in fixed.output
    assert not (tmp_path / "c").exists()


def test_api_compile_with_a_profile(tmp_path, mlp):
    path, _ = mlp
    model = tilec.compile(path, backend="numpy", pipeline="none", shape_profile={"x": "1..4x16"},
                          buckets={"batch": [4]})
    x = np.random.default_rng(3).standard_normal((2, 16)).astype(np.float32)
    y = model(x=x)["y"]
    assert model.last_bucket == "4" and y.shape == (2, 8)
    np.testing.assert_allclose(y, _ort(path, {"x": x})[0], rtol=1e-4, atol=1e-5)


def test_dims_out_of_alphabetical_order(tmp_path):
    """profile.json sorts its keys; the bucket of a shape is still found by its sizes."""
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph([helper.make_node("Add", ["x", "one"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["rows", "cols"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "cols"])],
                              [numpy_helper.from_array(np.float32(1), "one")])
    path = str(tmp_path / "m.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    compile_profile(path, str(tmp_path / "b"), {"x": [(1, 2), (1, 4)]}, {"rows": [2]}, pipeline="none")
    model = tilec.load(str(tmp_path / "b"), backend="numpy")
    x = np.arange(3, dtype=np.float32).reshape(1, 3)
    np.testing.assert_array_equal(model(x=x)["y"], x + 1)
    assert model.last_bucket == "2x4"


def test_a_profile_without_ranges_is_one_static_bucket(tmp_path, mlp):
    path, _ = mlp
    compile_profile(path, str(tmp_path / "b"), {"x": [2, 16]}, pipeline="none")
    model = tilec.load(str(tmp_path / "b"), backend="numpy")
    x = np.ones((2, 16), np.float32)
    assert model(x=x)["y"].shape == (2, 8) and model.last_bucket == "static"
    with pytest.raises(CompileError, match="fixed to 2"):
        model(x=np.ones((3, 16), np.float32))


def test_a_dim_pinned_in_one_input_and_ranged_in_another_is_refused(tmp_path, bert):
    with pytest.raises(CompileError, match="dim 'batch' a size in one input and a range"):
        compile_profile(bert[0], str(tmp_path / "b"), {"input_ids": [(1, 4), (8, 16)],
                                                       "attention_mask": [2, (8, 16)]})


@pytest.mark.parametrize("edit", [lambda p: "{not json", lambda p: json.dumps({**p, "dims": []}),
                                  lambda p: json.dumps({**p, "buckets": [{**p["buckets"][0], "dir": "../x"}]}),
                                  lambda p: json.dumps({**p, "inputs": [{**p["inputs"][0], "dims": ["n"]}]})])
def test_a_damaged_profile_json_is_a_clean_error(tmp_path, mlp, edit):
    import shutil
    build = tmp_path / "b"
    shutil.copytree(mlp[1], build)
    text = (build / "profile.json").read_text()
    (build / "profile.json").write_text(edit(json.loads(text)))
    np.save(tmp_path / "x.npy", np.ones((2, 16), np.float32))
    result = CliRunner().invoke(cli, ["run", str(build), "--inputs", str(tmp_path / "x.npy"),
                                      "--outputs", str(tmp_path / "y.npz")])
    assert result.exit_code == 1 and "unreadable profile.json" in result.output, result.output


def test_api_refuses_input_shapes_with_a_profile(mlp):
    with pytest.raises(CompileError, match="not both"):
        tilec.compile(mlp[0], backend="numpy", shape_profile={"x": "1..4x16"}, input_shapes={"x": [1, 16]})
    with pytest.raises(CompileError, match="shape_profile: '1...4' in 'x=1...4x16'"):
        tilec.compile(mlp[0], backend="numpy", shape_profile={"x": "1...4x16"})


def test_profile_builds_are_deterministic(tmp_path, mlp):
    for name in ("a", "b"):
        compile_profile(mlp[0], str(tmp_path / name), {"x": [(1, 4), 16]}, pipeline="none")
    assert (tmp_path / "a" / "profile.json").read_bytes() == (tmp_path / "b" / "profile.json").read_bytes()
    for key in ("1", "2", "4"):
        for f in ("plan.json", "model.tir"):
            assert (tmp_path / "a" / "buckets" / key / f).read_bytes() == \
                (tmp_path / "b" / "buckets" / key / f).read_bytes()
