"""The samples and small-zoo models built with ``--precision``: the numpy reference and the emulator against
onnxruntime's f32 outputs at the mode's tolerance (``checks.py``: derived from the formats), fp16/bf16 visibly
rounded, and Welder's epilogues absorbing the casts back to f32. The mlp sample runs here; every sample and
four zoo models in every mode run with ``-m slow``."""
from __future__ import annotations

import sys
from pathlib import Path

import onnx
import pytest

from checks import assert_rounded, assert_within, build_and_run

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ("mlp", "transformer_layer", "conv_block", "dw_separable")
ZOO_MODELS = ("nerf_mlp", "resnet18", "bert_base", "lstm")   # GEMM chains, convs, attention, a loop
MODES = ("tf32", "fp16", "bf16")


def _sample(name: str) -> onnx.ModelProto:
    return onnx.load(str(ROOT / "samples" / f"{name}.onnx"))


def _check(model, tmp_path, mode) -> dict:
    want, got, report = build_and_run(model, tmp_path, mode)
    assert report["precision"] == mode
    for outputs in got.values():
        assert_within(want, outputs, mode)
        if mode in ("fp16", "bf16"):
            assert_rounded(want, outputs)
    return report


@pytest.mark.parametrize("mode", MODES)
def test_mlp(mode, tmp_path):
    report = _check(_sample("mlp"), tmp_path, mode)
    if mode != "tf32":
        # Each matmul's cast back to f32 (and the next one's cast to f16) rides in its epilogue: the only
        # kernel of its own is the model input's cast.
        casts = [k for k in report["kernels"] if k["origin"] == "graph.cast"]
        assert len(casts) == 1, [k["origin"] for k in report["kernels"]]
        matmuls = [k["origin"] for k in report["kernels"] if "graph.matmul" in k["origin"]]
        assert matmuls and all("graph.matmul+graph.cast" in o for o in matmuls), matmuls


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", SAMPLES[1:])
def test_samples(name, mode, tmp_path):
    _check(_sample(name), tmp_path, mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ZOO_MODELS)
def test_small_zoo(name, mode, tmp_path):
    sys.path.insert(0, str(ROOT))
    from samples.models import build
    _check(build(name, "small"), tmp_path, mode)
