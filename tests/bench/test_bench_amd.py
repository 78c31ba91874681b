"""``scripts/bench_amd.py`` (make bench's mi250x section): one sample end to end through hipcc, and the row's
figures read from report.json (largest VGPR+AGPR and LDS, lowest occupancy, spills and who spills)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tilec.testing.scripts import load_file_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench_amd():
    return load_file_module(ROOT / "scripts" / "bench_amd.py", "bench_amd_script")


def test_hip_summary_and_table(bench_amd):
    hip = dict(agprs=0, lds_bytes=0, occupancy=8, scratch_bytes=0, sgpr_spills=0, sgprs=12, spills=0, vgpr_spills=0,
               vgprs=11)
    report = {"kernels": [{"name": "k0", "hip": hip},
                          {"name": "rammer0", "hip": dict(hip, agprs=30, vgprs=256, lds_bytes=4096, occupancy=1,
                                                          vgpr_spills=5, sgpr_spills=2, spills=7)}]}
    s = bench_amd.hip_summary(report)
    assert s == {"max_vgprs": 286, "max_lds": 4096, "min_occupancy": 1, "spills": 7, "spilling": ["rammer0 5V/2S"]}
    row = {"name": "m", "compile_s": 1.5, "kernels": 2, "launches": 1, "bytes": 2_500_000, "modelled_us": 12.34, **s}
    text = bench_amd.table([row, {"name": "bad", "error": "over 9 s"}])
    assert "| m | 1.5 | 2 | 1 | 2.500 | 12.3 | 286 | 4096 | 1 | 7 | rammer0 5V/2S |" in text
    assert "| bad | failed: over 9 s |" in text


@pytest.mark.skipif(shutil.which("hipcc") is None, reason="no hipcc")
def test_one_sample_end_to_end(bench_amd, tmp_path):
    rc = bench_amd.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--models", "--gemms",
                         "--samples", "samples/control/skipnet_if.onnx"])
    assert rc == 0
    data = json.loads((tmp_path / "out").glob("mi250x-*.json").__next__().read_text())
    (row,) = data["rows"]
    assert row["name"] == "skipnet_if" and row["kernels"] > 0 and row["spills"] == 0 and row["max_vgprs"] > 0
    md = next((tmp_path / "out").glob("mi250x-*.md")).read_text()
    assert "scripts/bench_amd.py" in md and "| skipnet_if |" in md


@pytest.mark.slow   # the MFMA kernel's hipcc check runs in CI in tests/backend/test_mfma_engine.py
@pytest.mark.skipif(shutil.which("hipcc") is None, reason="no hipcc")
def test_one_gemm_row_on_mfma(bench_amd, tmp_path):
    """The batched f16 GEMM's row: its MFMA kernel's shape, hipcc's AGPRs (the accumulators) and no spills."""
    rc = bench_amd.main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"), "--models", "--samples",
                         "--gemms", "bgemm-f16-8x512x512x64"])
    assert rc == 0
    data = json.loads(next((tmp_path / "out").glob("mi250x-*.json")).read_text())
    (row,) = data["gemms"]
    assert row["inst"] in ("32x32x8", "16x16x16") and row["mfma_per_wave"] > 0 and row["agprs"] + row["vgprs"] > 0
    assert row["kernel_spills"] == 0 and row["lds"] > 0 and row["tflops"] > 0
    md = next((tmp_path / "out").glob("mi250x-*.md")).read_text()
    assert "| bgemm-f16-8x512x512x64 |" in md and "MFMA per wave" in md
