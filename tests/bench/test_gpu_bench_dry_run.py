"""``scripts/gpu_bench.py --dry-run``: every phase of the GPU benchmark (probe, parallel compiles, then each
system one row at a time, correctness before timing) with the emu backend and CPU baselines, so the script does
not meet its first bug on a lent GPU. torch rows are skipped where torch is not installed (CI). A hung and a
crashed row are planted in the measure phase: each costs its own row, the rows after them run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tilec.bench.rowrun import FAULT_ENV

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~35 s idle (20 of them a planted hang), ~60 s on a busy 2-core machine
def test_gpu_bench_dry_run(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "gpu_bench.py"), "--out", str(tmp_path), "--work",
           str(tmp_path / "w"), "--date", "2000-01-01", "--models", "nerf_mlp", "--dry-run", "--timeout-cap", "20"]
    # a hung and a crashed row planted in the measure phase: each costs its own row
    env = {**os.environ, FAULT_ENV: "hang:cublas/tf32,crash:cublas/f16"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("gpu_bench: 26 rows in 4 phase(s); budget 540s")
    kinds = [ln for ln in proc.stdout.splitlines() if " x " in ln and "timeout" in ln and "probe" not in ln]
    assert kinds and all(ln.endswith("timeout 20s each") for ln in kinds), kinds  # the cap, in the plan
    data = json.loads((tmp_path / "gpu-2000-01-01-dry-run.json").read_text())
    rows = {r["id"]: r for r in data["rows"]}
    jsonl = [json.loads(ln)["id"] for ln in (tmp_path / "gpu-2000-01-01-dry-run.jsonl").read_text().splitlines()]
    assert jsonl == [r["id"] for r in data["rows"]] and len(jsonl) == 25  # every row but the probe, as it ran
    for rid in ("tilec/nerf_mlp/grinder", "tilec/gemm M64xN64xK64/grinder", "tilec/conv N1xC8xH8xK8/grinder",
                "ort/nerf_mlp"):
        assert rows[rid]["status"] == "ok" and rows[rid]["rel_err"] < 1e-3 and rows[rid]["cold_ms"] > 0, rows[rid]
    # GEMM vs cuBLAS in f16/bf16 (bf16's reference: onnxruntime on the f32 copy), the BERT FFN and attention in
    # f16 (the attention on wgmma: the dry run's h200), each within its type's tolerance
    for rid, tol in (("tilec/gemm f16 M64xN64xK64/grinder", 1e-2), ("tilec/gemm bf16 M64xN64xK64/grinder", 2e-2),
                     ("tilec/ffn f16 64x64x256/grinder", 1e-2), ("tilec/attention f16 b1h2s128d64/grinder", 1e-2),
                     ("ort/attention f16 b1h2s128d64", 1e-2)):
        assert rows[rid]["status"] == "ok" and rows[rid]["rel_err"] < tol and rows[rid]["cold_ms"] > 0, rows[rid]
    assert rows["tilec/gemm f16 M64xN64xK64/grinder"]["peak_tflops"] == 989.0   # h200's f16 dense peak
    tir = (tmp_path / "w" / "builds" / "attention-f16-b1h2s128d64-small-grinder" / "model.tir").read_text()
    assert 'engine = "wgmma"' in tir
    for rid in ("sdpa/attention f16 b1h2s128d64", "torch/ffn f16 64x64x256/eager"):
        assert rows[rid]["status"] == "ok" or rows[rid]["error"] == "torch not installed", rows[rid]
    assert rows["ort/nerf_mlp"]["provider"] == "CPUExecutionProvider"
    assert rows["tilec/gemm M64xN64xK64/grinder"]["bound"] == "memory" and rows["tilec/gemm M64xN64xK64/grinder"][
        "arch"] == "h200"
    for rid in ("torch/nerf_mlp/eager", "cublas/f32", "cublas/bf16"):
        assert rows[rid]["status"] == "ok" or rows[rid]["error"] == "torch not installed", rows[rid]
    assert rows["cublas/tf32"]["status"] == "timeout" and "20s" in rows["cublas/tf32"]["error"]
    assert rows["cublas/f16"]["status"] == "crashed" and jsonl.index("cublas/bf16") > jsonl.index("cublas/f16")
    md = (tmp_path / "gpu-2000-01-01-dry-run.md").read_text()
    assert "| nerf_mlp | onnxruntime | ok |" in md and "## Summary: cold / hot median ms" in md
    assert "## GEMM vs cuBLAS (torch.matmul)" in md and "| gemm f16 M64xN64xK64 | " in md
