"""The speed of light (``analysis/speed_of_light.py``): max(FLOPs / peak of the operand type, bytes / DRAM
bandwidth), checked against numbers worked out by hand from the arch spec, and recorded in report.json."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.analysis import speed_of_light as sol
from tilec.analysis.hardware import get_arch
from tilec.driver import compile_model

H200 = get_arch("h200")


def test_bound_picks_the_binding_resource_and_the_precisions_peak():
    # 1 GFLOP and 1 MB: compute-bound at the FFMA peak in f32, at the tensor-core peak in f16.
    assert sol.bound_seconds(H200, 1e9, 1e6, "f32") == pytest.approx(1e9 / H200.fp32_flops)
    assert sol.bound_seconds(H200, 1e9, 1e6, "f16") == pytest.approx(max(1e9 / H200.fp16_tensor_flops,
                                                                        1e6 / H200.dram_bytes_per_s))
    # No FLOPs: the bytes decide.
    assert sol.bound_seconds(H200, 0, 4.8e9, "f32") == pytest.approx(4.8e9 / H200.dram_bytes_per_s)
    # V100 has no bf16 tensor cores: bf16 falls back to the FFMA peak.
    v100 = get_arch("v100")
    assert sol.peak_flops(v100, "bf16") == v100.fp32_flops and sol.peak_flops(v100, "f16") == v100.fp16_tensor_flops


def _gemm(tmp_path, m, k, n, dtype=TensorProto.FLOAT, np_dtype=np.float32):
    w = numpy_helper.from_array(np.ones((k, n), np_dtype), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", dtype, [m, k])],
                          [helper.make_tensor_value_info("y", dtype, [m, n])], [w])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.mark.parametrize("dtype,np_dtype,name", [(TensorProto.FLOAT, np.float32, "f32"),
                                                 (TensorProto.FLOAT16, np.float16, "f16")])
def test_report_records_the_bound_worked_by_hand(tmp_path, dtype, np_dtype, name):
    m, k, n = 512, 1024, 1024
    compile_model(_gemm(tmp_path, m, k, n, dtype, np_dtype), str(tmp_path / "b"), pipeline="welder")
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    size = np.dtype(np_dtype).itemsize
    flops, nbytes = 2 * m * k * n, (m * k + k * n + m * n) * size
    want = max(flops / sol.peak_flops(H200, name), nbytes / H200.dram_bytes_per_s) * 1e6
    assert report["totals"]["speed_of_light_us"] == pytest.approx(want, rel=1e-3)
    assert sum(r["flops"] * r["launches"] for r in report["kernels"]) == flops
    assert all(r["speed_of_light_us"] > 0 for r in report["kernels"])
