"""Every kernel of the shipped models through NVRTC with CuPy's options (``tilec compile --check-nvrtc``), as
the GPU will compile them: the samples, the parallel (Rammer) and control-flow (Grinder) samples and every small
zoo model, under the default pipeline. (The 100 CI fuzz graphs get the same check in
``tests/reliability/test_pipeline_fuzz.py``.) NVRTC needs no GPU; results are cached per kernel source."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest

from tilec.driver import compile_model

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from samples.models import ZOO, build  # noqa: E402

SAMPLES = sorted(str(p.relative_to(ROOT)) for d in ("samples", "samples/parallel", "samples/control")
                 for p in (ROOT / d).glob("*.onnx"))


def _check(model_path: str, out: Path) -> None:
    compile_model(model_path, str(out), check_nvrtc=True)
    report = json.loads((out / "report.json").read_text())
    assert report["nvrtc_checked"] is True
    rows = report["kernels"]
    assert rows, "no kernels"
    # check_kernels raises NvrtcRejected on the first bad kernel; this says every row was really checked.
    assert all(r.get("nvrtc", {}).get("ok") is True for r in rows), [r["name"] for r in rows
                                                                      if not r.get("nvrtc", {}).get("ok")]
    assert {p.stem for p in (out / "kernels").glob("*.cu")} <= {r["name"] for r in rows}


def test_samples_cover_every_kind_of_sample():
    names = {Path(s).parent.name for s in SAMPLES}
    assert {"samples", "parallel", "control"} <= names and len(SAMPLES) >= 15


@pytest.mark.parametrize("path", SAMPLES)
def test_sample_kernels_compile_with_nvrtc(path, tmp_path):
    _check(str(ROOT / path), tmp_path / "build")


@pytest.mark.parametrize("name", sorted(ZOO))
def test_small_zoo_kernels_compile_with_nvrtc(name, tmp_path):
    path = tmp_path / f"{name}.onnx"
    onnx.save(build(name, "small"), str(path))
    _check(str(path), tmp_path / "build")
