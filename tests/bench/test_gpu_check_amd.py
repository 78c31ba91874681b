"""``make gpu-check`` on an AMD GPU, without one: the device -> arch mapping from the properties CuPy's ROCm build
reports (``tilec.bench.gpu_mode``), the probe row on a stand-in ROCm CuPy, the rows' backend and arch from the
probe and the overrides (an unknown ISA: every row fails saying so, nothing runs), a ``hip`` row's compile for the
arch it was given, and the dry run in AMD mode (``--dry-run --arch mi250x``: the emulator with 64-lane wavefronts
runs the HIP build)."""
from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path

import pytest

from tilec.bench import gpu_mode, gpu_row
from tilec.bench.gpu_report import machine_line
from tilec.testing.scripts import load_file_module

ROOT = Path(__file__).resolve().parents[2]
MI250X = {"name": b"AMD Instinct MI250X/MI250", "gcnArchName": b"gfx90a:sramecc+:xnack-", "major": 9, "minor": 0}


@pytest.fixture(scope="module")
def gpu_check():
    return load_file_module(ROOT / "scripts" / "gpu_check.py", "gpu_check_script")


@pytest.mark.parametrize("isa, arch", [("gfx90a:sramecc+:xnack-", "mi250x"), ("gfx90a", "mi250x"),
                                       ("gfx942:sramecc+:xnack-", "mi300x"), ("gfx940", "mi300x"),
                                       (b"gfx941:xnack-", "mi300x")])
def test_isa_picks_the_arch_spec(isa, arch):
    assert gpu_mode.arch_from_props({**MI250X, "gcnArchName": isa}) == arch


@pytest.mark.parametrize("isa, said", [(b"gfx1100", "(gfx1100)"), (b"", "(no gcnArchName)")])
def test_an_unknown_isa_is_a_clear_error(isa, said):
    with pytest.raises(gpu_mode.UnknownGpu) as e:
        gpu_mode.arch_from_props({"name": b"AMD Radeon RX 7900 XTX", "gcnArchName": isa})
    msg = str(e.value)
    assert said in msg and "AMD Radeon RX 7900 XTX" in msg and "gfx90a -> mi250x" in msg and "--arch" in msg


def _fake_cupy(props: dict, is_hip: bool) -> types.ModuleType:
    runtime = types.SimpleNamespace(is_hip=is_hip, getDeviceProperties=lambda i: props, driverGetVersion=lambda: 1,
                                    runtimeGetVersion=lambda: 2)
    device = types.SimpleNamespace(attributes={"L2CacheSize": 8 << 20, "MultiProcessorCount": 110})
    return types.SimpleNamespace(__version__="13.0", cuda=types.SimpleNamespace(runtime=runtime,
                                                                                 Device=lambda i=0: device))


@pytest.mark.parametrize("isa, key, value", [(b"gfx90a:sramecc+:xnack-", "tilec_arch", "mi250x"),
                                             (b"gfx1030", "arch_error", "(gfx1030) has no tilec arch spec")])
def test_probe_on_a_rocm_cupy(monkeypatch, isa, key, value):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy({**MI250X, "gcnArchName": isa}, is_hip=True))
    row = {"status": "ok"}
    gpu_row.probe({"device": "cuda"}, row)
    assert row["vendor"] == "amd" and row["isa"] == isa.decode().split(":")[0] and value in row[key]
    assert "CUs" in machine_line(row) and "HIP runtime 2" in machine_line(row)


def test_probe_on_a_cuda_cupy_is_nvidia(monkeypatch):
    props = {"name": b"NVIDIA H200", "major": 9, "minor": 0}
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(props, is_hip=False))
    row = {"status": "ok"}
    gpu_row.probe({"device": "cuda"}, row)
    assert row["vendor"] == "nvidia" and "tilec_arch" not in row and "isa" not in row
    assert "(cc 9.0, 110 SMs" in machine_line(row)


AMD = {"status": "ok", "gpu": "AMD Instinct MI250X/MI250", "vendor": "amd", "tilec_arch": "mi250x"}
NVIDIA = {"status": "ok", "gpu": "NVIDIA H200", "vendor": "nvidia"}


def test_resolve_backend_and_arch():
    assert gpu_mode.resolve(NVIDIA, None, None) == {"backend": "cupy", "arch": None, "device": "NVIDIA H200",
                                                    "error": None}
    assert gpu_mode.resolve(AMD, None, None) == {"backend": "hip", "arch": "mi250x",
                                                 "device": "AMD Instinct MI250X/MI250", "error": None}
    assert gpu_mode.resolve(AMD, "mi300x", None)["arch"] == "mi300x"
    assert gpu_mode.resolve(NVIDIA, "h100", "cupy")["arch"] == "h100"
    unknown = {**AMD, "tilec_arch": None, "arch_error": "AMD GPU 'x' (gfx1100) has no tilec arch spec"}
    assert gpu_mode.resolve(unknown, None, None)["error"] == unknown["arch_error"]
    assert gpu_mode.resolve(unknown, "mi250x", None) == {"backend": "hip", "arch": "mi250x",
                                                         "device": "AMD Instinct MI250X/MI250", "error": None}
    assert gpu_mode.resolve(AMD, None, "cupy")["backend"] == "cupy"
    assert gpu_mode.header(False, gpu_mode.resolve(AMD, None, None)) == \
        "# GPU check (AMD Instinct MI250X/MI250, hip backend, arch mi250x)"
    assert gpu_mode.header(True, {"arch": None}) == "# GPU check (dry run, emu backend)"


def _run_with_probe(gpu_check, monkeypatch, tmp_path, probe: dict, argv: list) -> tuple:
    """gpu_check.main on a stand-in probe row; the model rows are captured, not run (each recorded ok)."""
    seen = []

    def fake_rows(rows, jobs, budget, work, root, on_row):
        seen.extend(rows)
        out = [{"id": r.id, **r.labels, "status": "ok", "seconds": 0.0} for r in rows]
        for r in out:
            on_row(r)
        return out

    monkeypatch.setattr(gpu_check, "run_row", lambda row, *a, **k: {"id": "probe", "model": "probe", **probe})
    monkeypatch.setattr(gpu_check, "run_rows", fake_rows)
    rc = gpu_check.main([str(tmp_path / "out"), "--zoo", "none", "--models", str(ROOT / "samples" / "mlp.onnx"),
                         *argv])
    return rc, seen, (tmp_path / "out" / "gpu_check.md").read_text()


def test_amd_gpu_rows_run_on_hip_for_the_isa_arch(gpu_check, monkeypatch, tmp_path):
    rc, seen, md = _run_with_probe(gpu_check, monkeypatch, tmp_path, {**AMD, "isa": "gfx90a", "sms": 110}, [])
    assert rc == 0 and len(seen) == 1
    assert seen[0].spec["backend"] == "hip" and seen[0].spec["arch"] == "mi250x" and seen[0].spec["device_arch_fixed"]
    assert md.startswith("# GPU check (AMD Instinct MI250X/MI250, hip backend, arch mi250x)")
    assert "(gfx90a, 110 CUs" in md


def test_nvidia_gpu_rows_are_unchanged(gpu_check, monkeypatch, tmp_path):
    rc, seen, md = _run_with_probe(gpu_check, monkeypatch, tmp_path, NVIDIA, [])
    assert rc == 0 and seen[0].spec["backend"] == "cupy"
    assert "arch" not in seen[0].spec and "device_arch_fixed" not in seen[0].spec  # each row asks the card
    assert md.startswith("# GPU check (NVIDIA H200, cupy backend)")


def test_unknown_amd_gpu_fails_every_row_without_running_it(gpu_check, monkeypatch, tmp_path):
    probe = {**AMD, "tilec_arch": None, "arch_error": "AMD GPU 'Radeon' (gfx1100) has no tilec arch spec"}
    rc, seen, md = _run_with_probe(gpu_check, monkeypatch, tmp_path, probe, [])
    assert rc == 1 and seen == []
    assert "| mlp | **failed**: AMD GPU 'Radeon' (gfx1100) has no tilec arch spec |" in md
    rc, seen, _ = _run_with_probe(gpu_check, monkeypatch, tmp_path, probe, ["--arch", "mi250x"])
    assert rc == 0 and seen[0].spec["arch"] == "mi250x" and seen[0].spec["backend"] == "hip"


def test_a_hip_row_compiles_for_its_arch_and_needs_a_rocm_cupy(tmp_path):
    from tilec.runtime.hip_device import cupy_is_rocm
    if cupy_is_rocm():
        pytest.skip("a ROCm CuPy is installed: this row would run")
    spec = {"kind": "tilec", "model": str(ROOT / "samples" / "mlp.onnx"), "build": str(tmp_path / "b"),
            "pipeline": "default", "backend": "hip", "arch": "mi250x", "device_arch_fixed": True, "runs": 1,
            "warmup": 0, "tol": 1e-3}
    row = gpu_row.measure("tilec/mlp", spec)
    assert row["status"] == "failed" and row["arch"] == "mi250x", row
    assert row["error"].startswith("run: CompileError: tilec: error: --backend hip needs CuPy built for ROCm")
    assert sorted(p.suffix for p in (tmp_path / "b" / "kernels").iterdir()) == [".hip"] * 3


@pytest.mark.skipif(not any(Path(d, "g++").is_file() for d in os.environ.get("PATH", "").split(":")),
                    reason="the dry run's emu backend needs g++")
def test_dry_run_in_amd_mode(gpu_check, tmp_path):
    out = tmp_path / "out"
    rc = gpu_check.main([str(out), "--dry-run", "--arch", "mi250x", "--zoo", "none", "--jobs", "1",
                         "--models", str(ROOT / "samples" / "mlp.onnx")])
    assert rc == 0
    result = json.loads((out / "gpu_check.json").read_text())
    assert (result["backend"], result["arch"]) == ("emu", "mi250x")
    (row,) = result["models"]
    assert row["status"] == "ok" and row["arch"] == "mi250x" and row["rel_err"] < 1e-5
    assert all(p.suffix == ".hip" for p in (out / "builds" / "mlp" / "kernels").iterdir())
    assert json.loads((out / "builds" / "mlp" / "report.json").read_text())["arch"] == "mi250x"
    assert (out / "gpu_check.md").read_text().startswith("# GPU check (dry run, emu backend, arch mi250x)")
