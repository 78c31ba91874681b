"""scripts/realworld.py (``make realworld``) on a tiny model, without torch: the row's figures come from the
build, a wrong output is flagged, a constant reference proves nothing and fails, the table is written."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.testing.scripts import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "realworld.py"


@pytest.fixture(scope="module")
def rw():
    return load_file_module(SCRIPT)


def _model(folder: Path, name: str, scale: float, batch=4) -> Path:
    """``relu(x @ (scale * w))`` with ``x`` 4x8, written with its ``.inputs.npz`` as export_real.py does;
    ``batch`` may be a dim_param (a dynamic axis, as ``dynamic_axes`` exports have)."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array((scale * rng.standard_normal((8, 16))).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 16])], [w])
    path = folder / f"{name}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    np.savez(folder / f"{name}.inputs.npz", x=rng.standard_normal((4, 8)).astype(np.float32))
    return path


def test_a_model_that_matches(rw, tmp_path):
    row = rw.check_one(_model(tmp_path, "mlp", 1.0), tmp_path / "build")
    assert row["status"] == "ok" and row["rel_err"] <= 1e-6 and row["rtol"] == 1e-3
    assert row["kernels"] >= 1 and row["compile_s"] > 0 and "persistent" in row
    assert 0 < row["compile_cpu_s"] and f"| {row['compile_cpu_s']:.1f} |" in rw.table([row])
    assert row["op_types"] == ["MatMul", "Relu"] and row["unsupported"] == []
    assert "| mlp | ok | 2, all supported |" in rw.table([row])
    assert "| mlp | MatMul, Relu |" in rw.table([row])   # the op types per model, below the figures


def test_a_model_with_an_unsupported_op_names_it(rw, tmp_path):
    # The child's failure row still says which ops the model uses and which tilec lacks.
    import json
    path = _model(tmp_path, "odd", 1.0)
    m = onnx.load(path)
    m.graph.node[1].op_type = "FooBar"
    onnx.save(m, path)
    out = tmp_path / "row.json"
    assert rw.main(["--one", str(path), "--build", str(tmp_path / "build"), "--row-json", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["status"] == "failed" and "FooBar" in row["error"]
    assert row["op_types"] == ["FooBar", "MatMul"] and row["unsupported"] == ["FooBar"]
    text = rw.table([row])
    assert "| 2, **missing**: FooBar |" in text and "| odd | **FooBar**, MatMul |" in text
    assert len(text.splitlines()[0].split("|")) == len(text.splitlines()[2].split("|"))   # a full row


def test_a_dynamic_axis_is_pinned_to_the_inputs_shape(rw, tmp_path):
    # Without the pin the import stops on the symbolic 'batch' dim and asks for --input-shape.
    row = rw.check_one(_model(tmp_path, "dyn", 1.0, batch="batch"), tmp_path / "build")
    assert row["status"] == "ok" and row["rel_err"] <= 1e-6


def test_the_emulator_runs_the_kernels_too(rw, tmp_path):
    row = rw.check_one(_model(tmp_path, "mlp", 1.0), tmp_path / "build", emu=True)
    assert row["status"] == "ok" and row["emu_rel_err"] <= 1e-5 and row["emu_s"] > 0
    assert f"{row['emu_rel_err']:.2e} |" in rw.table([row])


def test_a_wrong_output_is_flagged(rw, tmp_path, monkeypatch):
    import tilec.driver as driver
    real = driver.run_target

    def off_by_one(target, inputs, outputs, **kw):   # the comparison must be able to fail
        real(target, inputs, outputs, **kw)
        with np.load(outputs) as f:
            got = {k: f[k] + 1 for k in f.files}
        np.savez(outputs, **got)
    monkeypatch.setattr(driver, "run_target", off_by_one)
    row = rw.check_one(_model(tmp_path, "mlp", 1.0), tmp_path / "build", emu=True)
    assert row["status"] == "wrong" and row["abs_err"] == pytest.approx(1.0)
    assert row["emu_abs_err"] == pytest.approx(1.0)
    assert "**wrong**" in rw.table([row])


def test_a_constant_reference_proves_nothing(rw, tmp_path):
    with pytest.raises(RuntimeError, match="constant"):
        rw.check_one(_model(tmp_path, "zero_head", 0.0), tmp_path / "build")


def test_missing_exports_are_a_usage_error(rw, tmp_path, capsys):
    assert rw.main(["--dir", str(tmp_path)]) == 2
    assert "export_real.py" in capsys.readouterr().err
