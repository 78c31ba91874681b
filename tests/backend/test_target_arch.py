"""The target GPU is a fact of the module (issue #16, part): ``tilec compile --arch`` / ``tilec opt --arch``
set ``tilec.target``; every pass, the lowering, ``--check-ptx`` / ``--check-nvrtc``, plan.json, report.json and
the runtime's launch limits read it, and a pass's ``arch=`` option overrides it for that pass."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from tilec.analysis.hardware import DEFAULT_ARCH, available_archs, get_arch, module_arch
from tilec.backend import ptxas
from tilec.cli.main import cli
from tilec.driver import compile_model, make_executor
from tilec.ir.io import read_ir
from tilec.runtime.interpreter import run_module

ROOT = Path(__file__).resolve().parents[2]
TL = str(ROOT / "samples" / "transformer_layer.onnx")


def _gemm_tanh(tmp_path) -> str:
    """A GEMM + bias + tanh whose h200 build shares operand rows across a thread-block cluster."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array((rng.standard_normal(s) * 0.2).astype(np.float32), n)
             for n, s in (("w", (256, 512)), ("b", (512,)))]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Tanh", ["a"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [128, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [128, 512])], inits)
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def _clusters(build: Path) -> int:
    return sum(1 for cu in (build / "kernels").glob("*.cu") for line in cu.read_text().splitlines()
               if "__cluster_dims__(" in line and not line.lstrip().startswith("//"))


def test_default_target_is_recorded(tmp_path):
    compile_model(TL, str(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "plan.json").read_text())["arch"] == DEFAULT_ARCH
    assert json.loads((tmp_path / "b" / "report.json").read_text())["arch"] == DEFAULT_ARCH
    assert module_arch(read_ir(str(tmp_path / "b" / "model.tir"))) == DEFAULT_ARCH


def test_a100_build_uses_sm80_ampere_limits_and_runs(tmp_path, monkeypatch):
    seen = []
    real = ptxas.check_kernels
    monkeypatch.setattr(ptxas, "check_kernels", lambda *a, **k: seen.append(k.get("sm_arch")) or real(*a, **k))
    model = _gemm_tanh(tmp_path)
    compile_model(model, str(tmp_path / "h200"))
    compile_model(model, str(tmp_path / "a100"), arch="a100", check_ptx=True)
    assert seen == ["sm_80"]   # ptxas really compiled every kernel for sm_80 (and succeeded)
    report = json.loads((tmp_path / "a100" / "report.json").read_text())
    assert report["arch"] == "a100" and all("ptxas" in r for r in report["kernels"])
    assert json.loads((tmp_path / "a100" / "plan.json").read_text())["arch"] == "a100"
    module = read_ir(str(tmp_path / "a100" / "model.tir"))
    assert module_arch(module) == "a100"
    estimates = [op.attributes["estimate"]["arch"] for op in read_ir(str(tmp_path / "a100" / "reference.tir")).walk()
                 if op.name == "tile.compute" and "estimate" in op.attributes]
    assert estimates and set(estimates) == {"a100"}
    # Ampere has no thread-block clusters (a100.json: max_cluster_blocks 1); the H200 build of the same
    # model uses them.
    assert get_arch("a100").max_cluster_blocks == 1
    assert _clusters(tmp_path / "h200") > 0 and _clusters(tmp_path / "a100") == 0
    x = np.random.default_rng(0).standard_normal((128, 256)).astype(np.float32)
    ex = make_executor(str(tmp_path / "a100"), "emu")
    assert ex.device.arch == "a100"   # launches are held to the A100's per-block limits
    got = ex.run({"x": x})["y"]
    want = run_module(read_ir(str(tmp_path / "a100" / "reference.tir")), {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_cli_arch_and_pass_option_override(tmp_path):
    r = CliRunner().invoke(cli, ["import", str(ROOT / "samples" / "mlp.onnx"), "-o", str(tmp_path / "m.tir")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["opt", "--arch", "a100", "-p", "decompose,roller", str(tmp_path / "m.tir")])
    assert r.exit_code == 0 and 'tilec.target = "a100"' in r.output and 'arch = "a100"' in r.output, r.output
    assert 'arch = "h200"' not in r.output
    r = CliRunner().invoke(cli, ["opt", "--arch", "a100", "-p", "decompose,roller{arch=h100}", str(tmp_path / "m.tir")])
    assert 'arch = "h100"' in r.output and 'arch = "a100"' not in r.output.replace('tilec.target = "a100"', "")


@pytest.mark.parametrize("cmd", [["compile", TL, "-o", "OUT"], ["opt", "-p", "roller", "IN"]])
def test_unknown_arch_is_a_clean_error(tmp_path, cmd):
    (tmp_path / "in.tir").write_text("module {\n}\n")
    args = [str(tmp_path / "out") if a == "OUT" else str(tmp_path / "in.tir") if a == "IN" else a for a in cmd]
    r = CliRunner().invoke(cli, [args[0], "--arch", "tpu", *args[1:]])
    assert r.exit_code == 1 and f"unknown arch 'tpu' (available: {', '.join(available_archs())})" in r.output, r.output
    assert not (tmp_path / "out").exists()
