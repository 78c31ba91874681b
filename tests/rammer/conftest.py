"""Builds of samples/parallel under the rammer pipeline, one per model per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from tilec.driver import compile_model

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "parallel"


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """``build(model, pipeline="rammer")`` → the build folder (compiled once per session)."""
    root = tmp_path_factory.mktemp("rammer-builds")
    done: dict = {}

    def get(model: str, pipeline: str = "rammer") -> Path:
        key = (model, pipeline)
        if key not in done:
            out = root / f"{model}-{pipeline}"
            compile_model(str(SAMPLES / f"{model}.onnx"), str(out), pipeline=pipeline)
            done[key] = out
        return done[key]
    return get
