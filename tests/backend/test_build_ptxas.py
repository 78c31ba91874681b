"""--check-ptx: parsing ptxas -v output, compiling real kernels with nvcc, the cache, and failures."""
from __future__ import annotations

import json
import shutil

import pytest
from build_fixtures import kernel_func, vadd_module, write_module_build

from tilec.backend.ptxas import PtxasInfo, check_kernels, parse_ptxas
from tilec.ir import CompileError
from tilec.ir.core import lookup_symbol

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")

# Verbatim from nvcc 13.0 -arch=sm_90 -cubin -Xptxas -v (two kernels, one with a stack and shared memory).
CUDA13_LOG = """ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'k0_vadd' for 'sm_90'
ptxas info    : Function properties for k0_vadd
    256 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 31 registers, used 1 barriers, 256 bytes cumulative stack size, 1024 bytes smem
ptxas info    : Compile time = 12.913 ms
ptxas info    : Compiling entry function 'k1_scale' for 'sm_90'
ptxas info    : Function properties for k1_scale
    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 8 registers, used 0 barriers, 368 bytes cmem[0]
"""

# The CUDA 11/12 layout, with spills.
CUDA12_LOG = """ptxas info    : Compiling entry function 'big' for 'sm_80'
ptxas info    : Function properties for big
    48 bytes stack frame, 40 bytes spill stores, 36 bytes spill loads
ptxas info    : Used 255 registers, 8192 bytes smem, 384 bytes cmem[0]
"""


def test_parse_ptxas_cuda13():
    infos = parse_ptxas(CUDA13_LOG)
    assert infos == {"k0_vadd": PtxasInfo(registers=31, smem=1024, stack=256),
                     "k1_scale": PtxasInfo(registers=8)}


def test_parse_ptxas_spills():
    info = parse_ptxas(CUDA12_LOG)["big"]
    assert (info.registers, info.smem, info.stack, info.spill_bytes) == (255, 8192, 48, 76)
    assert info.to_json()["spill_bytes"] == 76


@needs_nvcc
def test_check_ptx_records_resources_and_cubins(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    report = write_module_build(vadd_module(1000), tmp_path / "b", check_ptx=True)
    assert report["ptxas_checked"] is True
    for row in report["kernels"]:
        p = row["ptxas"]
        assert set(p) == {"registers", "smem", "stack", "spill_stores", "spill_loads", "spill_bytes"}
        assert 0 < p["registers"] <= 255 and p["spill_bytes"] == 0
        assert (tmp_path / "b" / "kernels" / f"{row['name']}.cubin").stat().st_size > 0
    assert report["totals"]["spill_bytes"] == 0 and report["totals"]["max_registers"] > 0
    cached = sorted((tmp_path / "cache" / "ptxas").glob("*.json"))
    assert len(cached) == 2
    # A second compile is served from the cache: even without nvcc on PATH.
    monkeypatch.setattr("tilec.backend.ptxas.subprocess.run", _no_nvcc_run)
    monkeypatch.setattr("tilec.backend.ptxas._nvcc_version", lambda nvcc: _VERSION[0])
    again = write_module_build(vadd_module(1000), tmp_path / "b2", check_ptx=True)
    assert [r["ptxas"] for r in again["kernels"]] == [r["ptxas"] for r in report["kernels"]]


_VERSION = []


def _no_nvcc_run(*args, **kwargs):
    raise AssertionError("nvcc ran although the result was cached")


@pytest.fixture(autouse=True)
def _remember_version():
    if shutil.which("nvcc") and not _VERSION:
        from tilec.backend.ptxas import _nvcc_version
        _VERSION.append(_nvcc_version(shutil.which("nvcc")))


@needs_nvcc
def test_check_ptx_failure_has_the_compiler_message_and_keeps_old_build(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    write_module_build(vadd_module(64), tmp_path / "b")
    old = (tmp_path / "b" / "plan.json").read_bytes()
    m = vadd_module(64)
    lookup_symbol(m, "k1_scale").attributes["source"] = "TL_ST(c, 0, undefined_thing);"
    with pytest.raises(CompileError, match=r"kernel 'k1_scale'[\s\S]*undefined_thing"):
        write_module_build(m, tmp_path / "b", check_ptx=True)
    assert (tmp_path / "b" / "plan.json").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "cache"]


def test_check_ptx_without_nvcc_is_a_clean_error(monkeypatch):
    monkeypatch.setattr("tilec.backend.ptxas.find_nvcc", lambda: None)
    with pytest.raises(CompileError, match="needs nvcc"):
        check_kernels({"k": "x"})


@needs_nvcc
def test_check_kernels_runs_in_parallel_and_keeps_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    from tilec.backend.emit import emit_kernel
    body = "int i = threadIdx.x; if (i < 32) TL_ST(c, i, {k}.0f * TL_LD(a, i));"
    sources = {f"k{j}": emit_kernel(kernel_func(f"k{j}", body.format(k=j), 32, ["a"], ["c"])) for j in range(3)}
    infos = check_kernels(sources, jobs=2)
    assert list(infos) == ["k0", "k1", "k2"] and all(i.registers > 0 for i in infos.values())
    assert json.loads(next((tmp_path / "cache" / "ptxas").glob("*.json")).read_text())["log"]


def _scaled_sources(n: int) -> dict:
    from tilec.backend.emit import emit_kernel
    body = "int i = threadIdx.x; if (i < 32) TL_ST(c, i, {k}.0f * TL_LD(a, i) + TL_LD(c, i));"
    return {f"k{j}": emit_kernel(kernel_func(f"k{j}", body.format(k=j), 32, ["a"], ["c"])) for j in range(n)}


@needs_nvcc
def test_batched_ptxas_matches_one_by_one_and_links_cubins(tmp_path, monkeypatch):
    from tilec.backend.ptxas import compile_kernel, find_nvcc
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    sources = _scaled_sources(5)
    out = tmp_path / "kernels"
    out.mkdir()
    infos = check_kernels(sources, cubin_dir=out, jobs=2)
    singles = {n: compile_kernel(n, s, find_nvcc(), _VERSION[0], None)[0] for n, s in sources.items()}
    assert infos == singles
    # two batches (jobs=2): the kernels of one batch share one cubin file, which holds every one of them
    inodes = {(out / f"{n}.cubin").stat().st_ino for n in sources}
    assert len(inodes) == 2
    blob = (out / "k4.cubin").read_bytes()
    assert b"k3" in blob and b"k4" in blob


@needs_nvcc
def test_a_broken_kernel_in_a_batch_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    sources = _scaled_sources(4)
    sources["k2"] = sources["k2"].replace("TL_ST(c, i,", "TL_ST(c, i, not_declared +")
    with pytest.raises(CompileError, match=r"kernel 'k2'[\s\S]*not_declared"):
        check_kernels(sources, jobs=1)
