"""``--precision`` on the command line and in the API: recorded in report.json and on the module, a bad value
is a usage error, ``fp32`` (and no flag) builds today's kernels byte for byte."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tilec.cli.main import cli
from tilec.ir.diagnostics import CompileError

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "samples" / "mlp.onnx")


def _compile(tmp: Path, name: str, *flags) -> Path:
    out = tmp / name
    result = CliRunner().invoke(cli, ["compile", MLP, "-o", str(out), "-q", *flags])
    assert result.exit_code == 0, result.output
    return out


def test_bad_precision_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(cli, ["compile", MLP, "-o", str(tmp_path / "b"), "--precision", "fp8"])
    assert result.exit_code == 2
    assert "'fp8' is not one of 'fp32', 'tf32', 'fp16', 'bf16'" in result.output
    assert not (tmp_path / "b").exists()


def test_fp32_builds_the_default_kernels(tmp_path):
    default, fp32 = _compile(tmp_path, "default"), _compile(tmp_path, "fp32", "--precision", "fp32")
    assert json.loads((default / "report.json").read_text())["precision"] == "model"
    assert json.loads((fp32 / "report.json").read_text())["precision"] == "fp32"
    assert (default / "plan.json").read_bytes() == (fp32 / "plan.json").read_bytes()
    kernels = sorted(p.name for p in (default / "kernels").iterdir())
    assert kernels == sorted(p.name for p in (fp32 / "kernels").iterdir())
    for k in kernels:
        assert (default / "kernels" / k).read_bytes() == (fp32 / "kernels" / k).read_bytes(), k
    assert "tilec.precision" not in (default / "model.tir").read_text()
    assert 'tilec.precision = "fp32"' in (fp32 / "model.tir").read_text()


def test_fp16_is_recorded_and_tilec_opt_sees_it(tmp_path):
    dumps = tmp_path / "dumps"
    build = _compile(tmp_path, "fp16", "--precision", "fp16", "--dump-dir", str(dumps))
    assert json.loads((build / "report.json").read_text())["precision"] == "fp16"
    after = dumps / "05_precision.tir"
    text = after.read_text()
    assert 'tilec.precision = "fp16"' in text and "tensor<256x512xf16>" in text   # the weight, cast once
    # The attribute travels with the IR: tilec opt's precision pass reads it, and finds nothing left to do.
    again = CliRunner().invoke(cli, ["opt", "-p", "precision", str(after)])
    assert again.exit_code == 0, again.output
    assert again.output.count("f16(X0") == text.count("f16(X0") == 3
    # The emitted kernels compute the contractions in f16 (f32 accumulators: the CUDA-core lowering's rule).
    sources = "".join(p.read_text() for p in (build / "kernels").glob("*.cu"))
    assert "__half" in sources


def test_tf32_marks_the_contractions(tmp_path):
    build = _compile(tmp_path, "tf32", "--precision", "tf32")
    reference = (build / "reference.tir").read_text()
    assert reference.count("origin = \"graph.matmul\", precision = \"tf32\"") == 3 and "f16" not in reference


def test_api_precision(tmp_path):
    import tilec
    model = tilec.compile(MLP, precision="bf16", backend="numpy", build_dir=str(tmp_path / "b"))
    assert model.report["precision"] == "bf16"
    with pytest.raises(CompileError, match="unknown precision 'half'"):
        tilec.compile(MLP, precision="half", backend="numpy", build_dir=str(tmp_path / "c"))
