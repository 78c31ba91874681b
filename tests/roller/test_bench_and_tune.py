"""The Roller benchmark script on a few ops, and the tuning hook: selection with a fake timer, the no-GPU
path of ``tilec compile --tune`` and ``tilec tune`` (report.json says the model decided)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tilec.tune import Trial, candidates, select, tune_module
from tilec.cli.main import cli
from tilec.ir import parse_module
from tilec.passes import get_pass
from tilec.testing.scripts import load_file_module

ROOT = Path(__file__).resolve().parents[2]
MLP = ROOT / "samples" / "mlp.onnx"

MATMUL = """module {
  func.func @main(%a0: tensor<64x96xf32>, %a1: tensor<96x80xf32>) -> (tensor<64x80xf32>) {
    %0 = tile.compute "C[m, n] += A[m, k] * B[k, n]" (%a0, %a1) : (tensor<64x96xf32>, tensor<96x80xf32>) -> tensor<64x80xf32>
    return %0 : tensor<64x80xf32>
  }
}
"""


def rollered(k=4):
    m = parse_module(MATMUL)
    get_pass("roller", topk=k).apply(m)
    return m, next(op for op in m.walk() if op.name == "tile.compute")


def test_select_keeps_the_fastest_and_skips_failures():
    trials = [Trial({"id": 0}, 1.0), Trial({"id": 1}, 2.0), Trial({"id": 2}, 3.0), Trial({"id": 3}, 4.0)]
    times = {0: 5e-6, 1: None, 2: 2e-6, 3: 2e-6}

    def timer(cfg):
        if times[cfg["id"]] is None:
            raise RuntimeError("launch failed")
        return times[cfg["id"]]
    assert select(trials, timer) == 2          # the fastest; the tie with 3 keeps the model's order
    assert trials[1].error.startswith("RuntimeError") and trials[1].measured_seconds is None
    assert select([Trial({}, 1.0), Trial({}, 2.0)], lambda c: 1 / 0) == 0   # all fail: the model's pick


def test_tune_module_rewrites_rtile_with_a_fake_profiler():
    m, op = rollered(4)
    trials = candidates(op, 4)
    assert len(trials) >= 2 and trials[0].config == {k: op.attributes["rtile"][k] for k in ("block", "thread",
                                                                                            "step")}
    last = trials[-1].config
    fake = lambda op: (lambda cfg: 1e-6 if cfg == last else 1e-3)  # noqa: E731 - the model's last is fastest
    out = tune_module(m, 4, profiler=fake)
    assert out["tuning"] == "profiled" and out["tuned"][0]["chosen"] == len(trials) - 1
    assert op.attributes["rtile"] == last
    # and the tuned config lowers
    get_pass("lower-cuda").apply(m)


def test_tune_module_without_gpu_lets_the_model_decide():
    m, op = rollered(4)
    before = dict(op.attributes["rtile"])
    out = tune_module(m, 4)        # no CuPy here: the model decides
    assert out["tuning"] == "model" and "tuning_reason" in out
    assert op.attributes["rtile"] == before


@pytest.mark.skipif(not MLP.exists(), reason="samples/mlp.onnx missing")
def test_cli_compile_tune_and_tune_without_gpu(tmp_path):
    build = tmp_path / "b"
    r = CliRunner().invoke(cli, ["compile", str(MLP), "-o", str(build), "--tune", "3"])
    assert r.exit_code == 0, r.output
    report = json.loads((build / "report.json").read_text())
    assert report["tuning"] == "model" and report["tuning_k"] == 3
    r = CliRunner().invoke(cli, ["tune", str(build), "-k", "2"])
    assert r.exit_code == 0, r.output
    assert "model decided" in r.output
    report = json.loads((build / "report.json").read_text())
    assert report["tuning"] == "model" and report["tuning_k"] == 2 and report["kernels"]
    assert (build / "plan.json").is_file() and (build / "reference.tir").is_file()


def test_bench_roller_script_on_two_ops(tmp_path):
    mod = load_file_module(ROOT / "scripts" / "bench_roller.py")
    report = tmp_path / "roller-2026-11-29.md"
    report.write_text("# stale table\n\n| stale_op | x |\n\n" + mod.NOTES + "\n\nhand-written note\n")
    rc = mod.main(["--out", str(tmp_path), "--only", "bert_layernorm_mean,resnet50_fc", "--no-ptxas",
                   "--jobs", "1"])
    assert rc == 0
    text = report.read_text()
    assert "median Roller construction time (top-1)" in text and "make bench-roller" in text
    assert "skipped: none" in text and "stale" not in text
    rows = [line for line in text.splitlines() if line.startswith("| bert_") or line.startswith("| resnet50_")]
    assert len(rows) == 2 and all(line.rstrip(" |").endswith("ok") for line in rows)
    assert text.endswith(mod.NOTES + "\n\nhand-written note\n")   # notes survive the rerun
