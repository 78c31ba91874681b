"""--check-nvrtc and the cupy runtime's NVRTC path: the wheels' toolchain, CuPy's options, the cache, a
rejected kernel (an internal error, exit 3), missing wheels (a clean error, exit 1) and the order in which
``CupyDevice.load`` tries its ways of building a kernel (with a stand-in for CuPy: no GPU here)."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from build_fixtures import vadd_module
from click.testing import CliRunner

from tilec.backend import nvrtc, nvrtc_lib
from tilec.backend.nvrtc import NvrtcRejected, check_kernels, compile_cubin
from tilec.backend.nvrtc_lib import find_toolchain, nvrtc_options
from tilec.cli.main import cli
from tilec.ir import CompileError
from tilec.ir.core import lookup_symbol

ROOT = Path(__file__).resolve().parents[2]
ELF_MAGIC = b"\x7fELF"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))


def _build(module, out: Path, **kw) -> dict:
    from tilec.backend.build import write_build
    from tilec.backend.build import atomic_build_dir
    got = {}

    def fill(tmp):
        got["report"] = write_build(module, tmp, model="hand.onnx", pipeline="hand", stages=[],
                                    start=time.perf_counter(), **kw)
    atomic_build_dir(out, fill)
    return got["report"]


def test_toolchain_comes_from_the_wheels_and_options_are_cupys():
    tc = find_toolchain()
    assert Path(tc.library).is_file() and "nvrtc" in Path(tc.library).name
    assert any((Path(d) / "cuda_fp16.h").is_file() for d in tc.include_dirs)
    assert any((Path(d) / "crt" / "mma.h").is_file() for d in tc.include_dirs)
    assert {d for d, _ in tc.wheel_versions} == {"nvidia-cuda-nvrtc", "nvidia-cuda-runtime", "nvidia-cuda-crt"}
    opts = nvrtc_options("sm_80", tc)
    assert opts[:4] == ("--std=c++17", "-ftz=true", "-arch=sm_80", "--device-as-default-execution-space")
    assert opts[4:] == tuple(f"-I{d}" for d in tc.include_dirs)


def test_check_nvrtc_records_every_kernel_and_caches(tmp_path, monkeypatch):
    report = _build(vadd_module(1000), tmp_path / "b", check_nvrtc=True)
    assert report["nvrtc_checked"] is True
    assert report["nvrtc"]["sm_arch"] == "sm_90" and "-arch=sm_90" in report["nvrtc"]["options"]
    assert not any(o.startswith("-I") for o in report["nvrtc"]["options"])  # no machine paths in reports
    assert [r["nvrtc"] for r in report["kernels"]] == [{"ok": True}, {"ok": True}]
    assert json.loads((tmp_path / "b" / "report.json").read_text())["nvrtc_checked"] is True
    assert len(list((tmp_path / "cache" / "nvrtc").glob("*.json"))) == 2
    # Unchanged kernels are served from the cache: NVRTC is not called again.
    monkeypatch.setattr(nvrtc_lib.NvrtcLibrary, "compile", _no_compile)
    again = _build(vadd_module(1000), tmp_path / "b2", check_nvrtc=True)
    assert [r["nvrtc"] for r in again["kernels"]] == [{"ok": True}, {"ok": True}]


def _no_compile(*args, **kwargs):
    raise AssertionError("NVRTC ran although the result was cached")


def test_without_the_flag_nothing_is_checked(tmp_path, monkeypatch):
    monkeypatch.setattr(nvrtc_lib.NvrtcLibrary, "compile", _no_compile)
    report = _build(vadd_module(64), tmp_path / "b")
    assert report["nvrtc_checked"] is False and "nvrtc" not in report
    assert all("nvrtc" not in r for r in report["kernels"])


def test_arch_comes_from_the_spec_data(monkeypatch):
    body = "int i = threadIdx.x; if (i < 32) TL_ST(c, i, 2.0f * TL_LD(a, i));"
    from build_fixtures import kernel_func

    from tilec.backend.emit import emit_kernel
    src = {"k": emit_kernel(kernel_func("k", body, 32, ["a"], ["c"]))}
    assert check_kernels(src, arch="a100")["sm_arch"] == "sm_80"
    assert check_kernels(src, arch="h100")["sm_arch"] == "sm_90"
    # CUDA 13 dropped Volta: CUDA 12's NVRTC (the sm70 extra) compiles for it...
    report = check_kernels(src, arch="v100")
    assert report["sm_arch"] == "sm_70" and report["version"].startswith("12.")
    # ... and without that wheel the refusal is a clean error naming what to install, not a crash.
    bare = nvrtc_lib.find_toolchain()
    monkeypatch.setattr(nvrtc, "find_toolchain", lambda: dataclasses.replace(bare, legacy_library=None))
    with pytest.raises(CompileError, match=r"cannot compile for sm_70 .*pip install -e \"\.\[sm70\]\""):
        check_kernels(src, arch="v100", use_cache=False)


def test_rejected_kernel_names_it_quotes_nvrtc_and_keeps_the_old_build(tmp_path):
    _build(vadd_module(64), tmp_path / "b")
    old = (tmp_path / "b" / "plan.json").read_bytes()
    m = vadd_module(64)
    lookup_symbol(m, "k1_scale").attributes["source"] = "TL_ST(c, 0, undefined_thing);"
    with pytest.raises(NvrtcRejected, match=r"rejected kernel 'k1_scale'[\s\S]*undefined_thing"):
        _build(m, tmp_path / "b", check_nvrtc=True)
    assert (tmp_path / "b" / "plan.json").read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "cache"]
    assert not list((tmp_path / "cache" / "nvrtc").glob("*.json")) or all(
        "undefined_thing" not in p.read_text() for p in (tmp_path / "cache" / "nvrtc").glob("*.json"))


def _plant_bad_kernel(monkeypatch):
    """Every emitted kernel gets a line NVRTC rejects, as a code-generation bug would."""
    from tilec.backend import emit
    real = emit.emit_kernel
    monkeypatch.setattr(emit, "emit_kernel",
                        lambda k, lang=None: real(k, lang) + "\n__device__ int tl_bug() { return no_such; }\n")


def test_cli_rejection_is_an_internal_error_without_traceback(tmp_path, monkeypatch):
    _plant_bad_kernel(monkeypatch)
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "mlp.onnx"), "-o", str(out), "--check-nvrtc"])
    assert r.exit_code == 3, r.output
    assert "rejected kernel 'k0_" in r.output and "no_such" in r.output
    assert "this is a bug in tilec" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_missing_wheels_are_a_clean_error(tmp_path, monkeypatch):
    real = nvrtc_lib._files
    monkeypatch.setattr(nvrtc_lib, "_files", lambda d: [] if d == "nvidia-cuda-crt" else real(d))
    find_toolchain.cache_clear()
    try:
        with pytest.raises(CompileError, match=r'nvidia-cuda-crt[\s\S]*pip install -e "\.\[cuda\]"'):
            check_kernels({"k": "x"})
        out = tmp_path / "b"
        r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "mlp.onnx"), "-o", str(out),
                                     "--check-nvrtc"])
        assert r.exit_code == 1 and 'pip install -e ".[cuda]"' in r.output and "Traceback" not in r.output
        assert not out.exists()
    finally:
        find_toolchain.cache_clear()


def test_compile_cubin_gives_a_cubin_and_caches_it(tmp_path, monkeypatch):
    from tilec.backend.emit import emit_kernel
    m = vadd_module(64)
    src = emit_kernel(lookup_symbol(m, "k0_vadd"))
    cubin = compile_cubin("k0_vadd", src, "sm_90")
    assert cubin.startswith(ELF_MAGIC)
    monkeypatch.setattr(nvrtc_lib.NvrtcLibrary, "compile", _no_compile)
    assert compile_cubin("k0_vadd", src, "sm_90") == cubin


class _FakeRawModule:
    """CuPy's RawModule as far as ``CupyDevice.load`` uses it; records each construction."""

    made: list = []
    fail_code = False

    def __init__(self, *, code=None, path=None, options=(), backend="nvrtc"):
        how = ("path", Path(path).read_bytes()[:4]) if path else (backend, options)
        _FakeRawModule.made.append(how)
        self.fails = code is not None and _FakeRawModule.fail_code

    def get_function(self, name):
        if self.fails:
            raise RuntimeError("cupy cannot compile")
        return ("function", name)


class _FakeCupy:
    RawModule = _FakeRawModule

    class cuda:  # noqa: N801 - mirrors cupy.cuda
        class Device:
            compute_capability = "90"


def _fake_device():
    from tilec.runtime.cupy_device import CupyDevice
    dev = CupyDevice.__new__(CupyDevice)  # no GPU here: skip __init__'s device query
    dev.cp = _FakeCupy
    _FakeRawModule.made = []
    return dev


def test_cupy_load_compiles_with_tilecs_nvrtc_first(monkeypatch):
    from tilec.backend.emit import emit_kernel
    dev = _fake_device()
    src = emit_kernel(lookup_symbol(vadd_module(64), "k0_vadd"))
    assert dev.load("k0_vadd", src) == ("function", "k0_vadd")
    assert _FakeRawModule.made == [("path", ELF_MAGIC)]  # a real NVRTC cubin; CuPy compiled nothing


def test_cupy_load_falls_back_and_lists_every_failure(monkeypatch):
    dev = _fake_device()
    _FakeRawModule.fail_code = True
    monkeypatch.setattr("tilec.runtime.cupy_device.shutil.which", lambda name: None)
    try:
        with pytest.raises(CompileError) as e:
            dev.load("k", "__global__ void k() { no_such; }")
    finally:
        _FakeRawModule.fail_code = False
    msg = str(e.value)
    assert "nvrtc: NvrtcRejected" in msg and "no_such" in msg
    assert "cupy-nvrtc: RuntimeError" in msg and "nvcc: not on PATH" in msg
    # CuPy's own NVRTC was given the wheels' include folders.
    (backend, options), = _FakeRawModule.made
    assert backend == "nvrtc" and options[0] == "--std=c++17"
    assert options[1:] == find_toolchain().include_options()
