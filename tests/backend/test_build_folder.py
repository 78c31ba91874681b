"""The build folder: its files, the report's keys, and atomicity (a failed compile leaves the old build)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from build_fixtures import vadd_module, write_module_build

from tilec.backend import build as build_mod
from tilec.ir import CompileError, read_ir

REPORT_TOTALS = {"ops", "kernels", "launches", "host_ops", "global_bytes_modelled", "lower_bound_bytes",
                 "arena_bytes", "compile_seconds", "speed_of_light_us", "modelled_us"}
KERNEL_ROW = {"name", "kind", "origin", "flops", "bytes_modelled", "grid", "block", "smem_dynamic", "smem_static",
              "smem_optin", "registers", "registers_from", "launches", "cu", "speed_of_light_us", "modelled_us",
              "latency"}


def test_build_folder_files_and_report(tmp_path):
    m = vadd_module(1000, host_op=True)
    report = write_module_build(m, tmp_path / "b")
    b = tmp_path / "b"
    assert sorted(p.name for p in b.iterdir()) == ["kernels", "model.tir", "plan.json", "report.json", "weights.npz"]
    assert sorted(p.name for p in (b / "kernels").iterdir()) == ["k0_vadd.cu", "k1_scale.cu"]
    cu = (b / "kernels" / "k0_vadd.cu").read_text()
    assert "TL_LD" in cu and 'extern "C" __global__' in cu and "k0_vadd(" in cu
    assert json.loads((b / "report.json").read_text()) == report
    assert set(report["totals"]) == REPORT_TOTALS
    t = report["totals"]
    assert (t["ops"], t["kernels"], t["launches"], t["host_ops"]) == (4, 2, 2, 1)
    assert t["global_bytes_modelled"] == 12000 + 8000 and t["lower_bound_bytes"] == 12000
    assert [set(r) for r in report["kernels"]] == [KERNEL_ROW, KERNEL_ROW]
    assert report["kernels"][0]["name"] == "k0_vadd" and report["host_ops"] == ["graph.relu"]
    plan = json.loads((b / "plan.json").read_text())
    assert {"version", "inputs", "outputs", "buffers", "arena_bytes", "steps", "host_ops"} <= set(plan)
    # model.tir parses back (verified) and finds its weights in weights.npz
    back = read_ir(str(b / "model.tir"))
    from tilec.ir.weights import module_weights
    np.testing.assert_array_equal(module_weights(back)["w"], module_weights(m)["w"])
    assert back.attributes["tilec.weights"] == "weights.npz"
    assert "tilec.weights" not in m.attributes  # the compiled module itself is left as it was


def test_build_is_deterministic(tmp_path):
    write_module_build(vadd_module(100), tmp_path / "a")
    write_module_build(vadd_module(100), tmp_path / "b")
    for name in ("plan.json", "model.tir", "kernels/k0_vadd.cu", "weights.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_failed_build_leaves_previous_build_and_no_temp_dirs(tmp_path, monkeypatch):
    build = tmp_path / "b"
    write_module_build(vadd_module(100), build)
    before = {p.relative_to(build): p.read_bytes() for p in build.rglob("*") if p.is_file()}
    calls = []

    def emit_then_fail(op, lang=None):
        calls.append(op.sym_name)
        if len(calls) == 2:
            raise CompileError("boom in the second kernel")
        return "// partial\n"
    monkeypatch.setattr("tilec.backend.emit.emit_kernel", emit_then_fail)
    with pytest.raises(CompileError, match="boom"):
        write_module_build(vadd_module(100, host_op=True), build)
    after = {p.relative_to(build): p.read_bytes() for p in build.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_build_over_a_file_is_an_error(tmp_path):
    (tmp_path / "b").write_text("not a folder")
    with pytest.raises(CompileError, match="not a folder"):
        write_module_build(vadd_module(10), tmp_path / "b")


def test_count_ops_counts_launches_and_graph_ops():
    assert build_mod.count_ops(vadd_module(10, host_op=True)) == 4  # const, 2 launches, relu
