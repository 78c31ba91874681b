"""Huge shapes get a clean diagnostic before anything is allocated (ir/limits.py): in the verifier (IR
text), the importer (ONNX inputs, --input-shape, converters that build constants), the CLI and the runtime's
.npz loaders. The limits are configurable through the environment."""
import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.frontend.importer import import_onnx
from tilec.ir.diagnostics import CompileError
from tilec.ir.io import read_ir
from tilec.ir.limits import DEFAULT_MAX_ELEMENTS, check_npz, shape_problem
from tilec.testing.guard import DIAGNOSTIC, run_guarded

SRC = str(Path(__file__).resolve().parents[2] / "src")
HUGE = "100000000000x100000000"


def _ir(shape: str, dtype: str = "f32") -> str:
    t = f"tensor<{shape}x{dtype}>"
    return (f"module {{\n  func.func @main(%x: {t}) -> ({t}) {{\n"
            f"    %0 = \"graph.relu\"(%x) : ({t}) -> ({t})\n    return %0 : {t}\n  }}\n}}\n")


def _model(nodes, inputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info("y", T.FLOAT, None)], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def test_verifier_rejects_a_huge_tensor_at_its_position():
    with pytest.raises(CompileError) as e:
        read_ir("big.tir", _ir(HUGE))
    d = e.value.diagnostic
    assert (d.file, d.line, d.col) == ("big.tir", 2, 3)
    assert "10,000,000,000,000,000,000 elements" in d.message and "TILEC_MAX_ELEMENTS" in d.message


def test_limits_are_configurable(monkeypatch):
    read_ir("ok.tir", _ir("4x4"))     # 2 values x 64 bytes
    monkeypatch.setenv("TILEC_MAX_BYTES", "100")
    with pytest.raises(CompileError, match=r"brings the module's tensors to 128 bytes.*TILEC_MAX_BYTES") as e:
        read_ir("ok.tir", _ir("4x4"))
    assert e.value.diagnostic.line == 3  # the relu result is the value that crosses the total
    monkeypatch.setenv("TILEC_MAX_BYTES", str(1 << 40))
    monkeypatch.setenv("TILEC_MAX_ELEMENTS", str(1 << 34))
    read_ir("big.tir", _ir(f"{1 << 33}"))  # raised limits let a 2^33-element tensor through the verifier
    monkeypatch.setenv("TILEC_MAX_ELEMENTS", "many")
    with pytest.raises(CompileError, match="TILEC_MAX_ELEMENTS must be a positive integer"):
        read_ir("ok.tir", _ir("4x4"))


def test_shape_problem_counts_dynamic_dims_as_one():
    assert shape_problem((None, "n", 4)) is None
    assert shape_problem((DEFAULT_MAX_ELEMENTS,)) is None
    assert "elements" in shape_problem((DEFAULT_MAX_ELEMENTS + 1,))


BIG_SHAPE = np.array([100000, 100000, 100000], np.int64)
X1 = [h.make_tensor_value_info("x", T.FLOAT, [1])]
CASES = {
    "constant_of_shape": _model([h.make_node("ConstantOfShape", ["s"], ["y"])], X1, [nh.from_array(BIG_SHAPE, "s")]),
    "expand": _model([h.make_node("Expand", ["x", "s"], ["y"])], X1, [nh.from_array(BIG_SHAPE, "s")]),
    "range": _model([h.make_node("Range", ["a", "b", "c"], ["y"])], X1,
                    [nh.from_array(np.array(v, np.float32), n) for n, v in (("a", 0), ("b", 1e13), ("c", 1))]),
    "input": _model([h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, [65536] * 3)]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_importer_rejects_huge_results_before_allocating(name):
    o = run_guarded(import_onnx, CASES[name], seconds=20)
    assert o.kind == DIAGNOSTIC and "TILEC_MAX_ELEMENTS" in o.detail, o


def test_input_shape_flag_is_bounded_in_the_importer():
    model = _model([h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, ["n", "m"])])
    with pytest.raises(CompileError, match="TILEC_MAX_ELEMENTS"):
        import_onnx(model, {"x": (1 << 20, 1 << 20)})


def _evil_npz(path: Path) -> Path:
    """An .npz whose member claims 10^15 floats but holds 16 bytes."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": tuple(int(d) for d in BIG_SHAPE)})
    buf.write(b"\0" * 16)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("x.npy", buf.getvalue())
    return path


def test_npz_headers_are_checked_before_loading(tmp_path):
    with pytest.raises(CompileError, match="array 'x' in .* has 1,000,000,000,000,000 elements"):
        check_npz(_evil_npz(tmp_path / "evil.npz"))
    np.savez(tmp_path / "fine.npz", x=np.zeros((2, 3), np.float32))
    check_npz(tmp_path / "fine.npz")
    check_npz(tmp_path / "missing.npz")  # not readable: left to np.load's own diagnostic


def _tilec(*args, cwd):
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "tilec.cli.main", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_exit_codes(tmp_path):
    model = _model([h.make_node("Relu", ["x"], ["y"])], [h.make_tensor_value_info("x", T.FLOAT, ["n"])])
    onnx.save(model, tmp_path / "dyn.onnx")
    r = _tilec("compile", "dyn.onnx", "-o", "b", "--input-shape", "x=100000x100000x100000", cwd=tmp_path)
    assert r.returncode == 2 and "TILEC_MAX_ELEMENTS" in r.stderr and "Traceback" not in r.stderr
    _evil_npz(tmp_path / "evil.npz")
    r = _tilec("run", "dyn.onnx", "--input-shape", "x=4", "--inputs", "evil.npz", "--outputs", "o.npz",
               cwd=tmp_path)
    assert r.returncode == 1 and "array 'x'" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "big.tir").write_text(_ir(HUGE))
    r = _tilec("opt", "big.tir", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("big.tir:2:3: error:"), r.stderr
