"""``tilec run`` on the ordinary mistakes of a user (issue #20): an unreadable or corrupt inputs file, an
``.npy``, a missing build, a dtype other than the model's, an unwritable output or build path. Each is exit 1
with one clean line and nothing written; ``--cast`` converts on request. Parse errors name tokens as written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tilec.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "samples" / "mlp.onnx")   # one input: x, f32 [1, 256]


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "build"
    r = CliRunner().invoke(cli, ["compile", MLP, "-o", str(out), "--pipeline", "welder"])
    assert r.exit_code == 0, r.output
    return str(out)


def _run(*args):
    return CliRunner().invoke(cli, ["run", *map(str, args)])


def _clean_error(r, *words):
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in r.output, r.output
    for w in words:
        assert w in lines[0], r.output


@pytest.mark.parametrize("content", [b"garbage", b"PK\x03\x04garbage", b"\x93NUMPY\x01\x00broken"])
def test_corrupt_inputs_file(build, tmp_path, content):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(content)
    _clean_error(_run(build, "--inputs", bad, "--outputs", tmp_path / "o.npz"), "bad.npz")
    assert not (tmp_path / "o.npz").exists()


def test_npy_is_the_input_of_a_one_input_model(build, tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "x.npz", x=x)
    for backend in ("numpy", "emu"):
        assert _run(build, "--inputs", tmp_path / "x.npy", "--outputs", tmp_path / f"a_{backend}.npz",
                    "--backend", backend).exit_code == 0
        assert _run(build, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / f"b_{backend}.npz",
                    "--backend", backend).exit_code == 0
        with np.load(tmp_path / f"a_{backend}.npz") as a, np.load(tmp_path / f"b_{backend}.npz") as b:
            assert a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)


def test_missing_or_wrong_build(tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 256), np.float32))
    _clean_error(_run(tmp_path / "nope", "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "o.npz"), "nope")
    _clean_error(_run(tmp_path / "nope", "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "o.npz",
                      "--backend", "emu"), "nope")
    _clean_error(_run(MLP, "--inputs", tmp_path / "missing.npz", "--outputs", tmp_path / "o.npz"), "missing.npz")
    _clean_error(_run(MLP, "--inputs", tmp_path, "--outputs", tmp_path / "o.npz"), "folder")


@pytest.mark.parametrize("backend", ["numpy", "emu"])
def test_dtype_mismatch_names_the_input_and_cast_converts(build, tmp_path, backend):
    x = np.random.default_rng(1).standard_normal((1, 256))
    np.savez(tmp_path / "f64.npz", x=x)
    np.savez(tmp_path / "f32.npz", x=x.astype(np.float32))
    r = _run(build, "--inputs", tmp_path / "f64.npz", "--outputs", tmp_path / "o.npz", "--backend", backend)
    _clean_error(r, "input 'x'", "float64", "float32", "--cast")
    assert not (tmp_path / "o.npz").exists()
    ok = _run(build, "--inputs", tmp_path / "f64.npz", "--outputs", tmp_path / "o.npz", "--backend", backend,
              "--cast")
    assert ok.exit_code == 0, ok.output
    _run(build, "--inputs", tmp_path / "f32.npz", "--outputs", tmp_path / "want.npz", "--backend", backend)
    with np.load(tmp_path / "o.npz") as got, np.load(tmp_path / "want.npz") as want:
        assert all(np.array_equal(got[k], want[k]) for k in want.files)


def test_wrong_and_unknown_input_names(build, tmp_path):
    np.savez(tmp_path / "y.npz", y=np.zeros((1, 256), np.float32))
    _clean_error(_run(build, "--inputs", tmp_path / "y.npz", "--outputs", tmp_path / "o.npz"), "missing input", "x")
    np.savez(tmp_path / "xy.npz", x=np.zeros((1, 256), np.float32), y=np.zeros(1, np.float32))
    _clean_error(_run(build, "--inputs", tmp_path / "xy.npz", "--outputs", tmp_path / "o.npz"), "unknown input", "y")


def test_unwritable_outputs_and_build_paths(build, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 256), np.float32))
    _clean_error(_run(build, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path), "cannot write outputs")
    (tmp_path / "file").write_text("")
    r = CliRunner().invoke(cli, ["compile", MLP, "-o", str(tmp_path / "file" / "b")])
    _clean_error(r, "cannot write build folder")
    r = CliRunner().invoke(cli, ["compile", MLP, "-o", "/proc/tilec-no-such/b"])
    _clean_error(r, "cannot write build folder")


def test_parse_errors_name_tokens_as_written(tmp_path):
    src = tmp_path / "bad.tir"
    src.write_text("module {\n  func.func @main(%x: tensor<4xf32>) -> tensor<4xf32> {\n    return %x tensor\n  }\n}\n")
    r = CliRunner().invoke(cli, ["opt", str(src)])
    assert r.exit_code == 1 and "__anon" not in r.output.lower(), r.output
    assert "bad.tir:2:41: error: unexpected 'tensor<4xf32>', expected '('" in r.output
    src.write_text("func @f(\n")
    r = CliRunner().invoke(cli, ["opt", str(src)])
    assert "expected 'func.func', 'module'" in r.output and "__anon" not in r.output.lower(), r.output


def test_run_onnx_takes_dynamic_shapes_from_the_arrays(tmp_path):
    # A model with dynamic batch and sequence: `tilec run M.onnx` needs no --input-shape, the arrays say it.
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", "sequence"])
    y = h.make_tensor_value_info("y", T.FLOAT, ["batch", "sequence"])
    g = h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    path = tmp_path / "dyn.onnx"
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    for shape in ((1, 5), (3, 7)):
        arr = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        np.savez(tmp_path / "in.npz", x=arr)
        r = _run(path, "--inputs", tmp_path / "in.npz", "--outputs", tmp_path / "out.npz")
        assert r.exit_code == 0, r.output
        with np.load(tmp_path / "out.npz") as out:
            np.testing.assert_array_equal(out["y"], np.maximum(arr, 0))
    r = CliRunner().invoke(cli, ["compile", str(path), "-o", str(tmp_path / "b")])
    _clean_error(r, "dynamic dims: batch, sequence", "--input-shape x=<batch>x<sequence>")


def test_run_ends_with_a_one_line_summary(build, tmp_path):
    np.savez(tmp_path / "x.npz", x=np.zeros((1, 256), np.float32))
    r = _run(build, "--inputs", tmp_path / "x.npz", "--outputs", tmp_path / "o.npz", "--backend", "emu")
    assert r.exit_code == 0, r.output
    (line,) = r.output.strip().splitlines()
    assert line.startswith(f"wrote 1 output (y) to {tmp_path / 'o.npz'}: emu, ") and " launch" in line
    assert line.endswith(" ms")


def test_run_onnx_with_dynamic_dims_names_a_misnamed_array(tmp_path):
    # With dynamic dims the shapes come from the arrays: an array under another name is reported as the
    # missing input it is, not as a shape to give with --input-shape.
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", 3])
    y = h.make_tensor_value_info("y", T.FLOAT, ["batch", 3])
    path = tmp_path / "dyn.onnx"
    onnx.save(h.make_model(h.make_graph([h.make_node("Relu", ["x"], ["y"])], "g", [x], [y]),
                           opset_imports=[h.make_opsetid("", 17)]), str(path))
    np.savez(tmp_path / "in.npz", X=np.zeros((2, 3), np.float32))
    r = _run(path, "--inputs", tmp_path / "in.npz", "--outputs", tmp_path / "o.npz")
    _clean_error(r, "missing input(s): x (the model takes x)")
    assert not (tmp_path / "o.npz").exists()


def test_unwritable_outputs_of_the_other_commands(tmp_path):
    # import, opt and viz write files too: an unwritable -o is one clean line, exit 1 (it was exit 3).
    (tmp_path / "file").write_text("")
    bad = str(tmp_path / "file" / "out")
    tir = tmp_path / "m.tir"
    assert CliRunner().invoke(cli, ["import", MLP, "-o", str(tir)]).exit_code == 0
    for args in (["import", MLP, "-o", bad], ["opt", str(tir), "-o", bad], ["viz", "--graph", str(tir), "-o", bad]):
        _clean_error(CliRunner().invoke(cli, args), "cannot write", bad)
