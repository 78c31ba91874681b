"""The f16/bf16 rows of ``make gpu-bench`` (issue #21) without a GPU: a bf16 model's reference is onnxruntime
on its f32 copy with normal (not 0/1) bf16 inputs widened exactly, the ``sdpa`` row reproduces the attention
model (or is skipped without torch), and the plan puts tilec's f16/bf16 GEMMs beside cuBLAS's at one size with
the FFN and attention models' rows (SDPA, torch.compile first in its phase)."""
from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from tilec.bench import gpu_row
from tilec.bench.gpu_systems import reference

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_bench  # noqa: E402
import tensorcore_fused  # noqa: E402


def test_bf16_reference_is_the_f32_copy_on_normal_inputs(tmp_path):
    path = tmp_path / "g.onnx"
    gpu_bench.single_op_model("gemm", {"M": 32, "N": 16, "K": 48}, path, "bf16")
    feeds, want = reference(str(path))
    a, b = (feeds[n].astype(np.float64) for n in ("a", "b"))
    assert feeds["a"].dtype.name == "bfloat16" and len(np.unique(a)) > 10   # normal floats, not 0/1
    np.testing.assert_allclose(want["y"], a @ b, rtol=1e-5, atol=1e-5)


def test_sdpa_row_matches_the_attention_model_or_skips_without_torch(tmp_path):
    path = tmp_path / "att.onnx"
    tensorcore_fused.attention_model(path, 1, 2, 32, 16)
    row = gpu_row.measure("sdpa/t", {"kind": "sdpa", "model": str(path), "device": "cpu", "runs": 1,
                                     "warmup": 0, "tol": 1e-2})
    if row["status"] == "skipped":
        assert row["error"] == "torch not installed"
    else:
        assert row["status"] == "ok" and row["rel_err"] < 1e-2 and row["provider"].startswith("torch SDPA"), row


def test_plan_has_the_half_gemm_ffn_and_attention_rows(tmp_path):
    args = SimpleNamespace(dry_run=True, runs=1, warmup=0, tol=1e-3, models=[], size="small", work=tmp_path,
                           pipelines=["welder"], backend="emu", compile_models=[], torch_modes=gpu_bench.MODES)
    plan = gpu_bench.plan_rows(args)
    measure = {r.id: r for r in plan["measure"]}
    for dtype in ("f16", "bf16"):
        tilec, cublas = measure[f"tilec/gemm {dtype} M64xN64xK64/welder"], measure[f"cublas/{dtype}"]
        assert tilec.spec["roofline"]["dtype"] == dtype and tilec.spec["tol"] == gpu_bench.HALF_TOL[dtype]
        assert cublas.spec["n"] == 64   # the same size as tilec's
    att = "attention f16 b1h2s128d64"
    assert measure[f"sdpa/{att}"].spec["tol"] == 1e-2 and "tilec/ffn f16 64x64x256/welder" in measure
    assert [r.id for r in plan["torch.compile"]][:2] == [f"torch/ffn f16 64x64x256/{m}" for m in gpu_bench.MODES]
