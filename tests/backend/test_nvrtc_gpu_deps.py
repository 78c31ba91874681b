"""The NVRTC headers on a lent GPU machine: the two header wheels carried in wheels/ (nvidia-cuda-runtime,
nvidia-cuda-crt), installed with ``pip --target`` by scripts/gpu_run.sh, are what a fresh Python's
``tilec.backend.nvrtc_lib`` finds and compiles with; without the nvidia-cuda-nvrtc wheel the headers are still
found (for CuPy's own NVRTC) and ``--check-nvrtc`` says what to install."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tilec.backend import nvrtc_lib
from tilec.backend.nvrtc import check_kernels
from tilec.backend.nvrtc_lib import find_toolchain
from tilec.ir import CompileError

ROOT = Path(__file__).resolve().parents[2]
HEADER_WHEELS = ["nvidia-cuda-runtime", "nvidia-cuda-crt"]
# A fresh interpreter: where are the headers, which libnvrtc, and does a kernel with the prelude compile?
PROBE = """
import json
from build_fixtures import vadd_module
from tilec.backend.emit import emit_kernel
from tilec.backend.nvrtc import compile_kernel
from tilec.backend.nvrtc_lib import find_toolchain
from tilec.ir.core import lookup_symbol
t = find_toolchain()
src = emit_kernel(lookup_symbol(vadd_module(64), "k0_vadd"))
r = compile_kernel("k0_vadd", src, "sm_90", keep_cubin=True, use_cache=False)
print(json.dumps({"include_dirs": t.include_dirs, "versions": dict(t.wheel_versions), "ok": r.ok,
                  "elf": (r.cubin or b"")[:4] == b"\\x7fELF", "includes": "cuda_fp16.h" in src and "mma.h" in src}))
"""


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHON")}
    env.update(PIP_ROOT_USER_ACTION="ignore", **extra)
    return env


def test_carried_header_wheels_are_what_a_fresh_python_compiles_with(tmp_path):
    deps = tmp_path / "gpu_deps"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index",
                    "--no-deps", "--find-links", str(ROOT / "wheels"), "--target", str(deps), *HEADER_WHEELS],
                   check=True, env=_env(), timeout=120)
    path = os.pathsep.join([str(deps), str(ROOT / "src"), str(ROOT / "tests" / "backend")])
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                       env=_env(PYTHONPATH=path, TILEC_CACHE_DIR=str(tmp_path / "cache")))
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["include_dirs"] and all(d.startswith(str(deps)) for d in got["include_dirs"]), got
    assert got["versions"]["nvidia-cuda-crt"] == "13.0.88" and got["versions"]["nvidia-cuda-runtime"] == "13.0.96"
    assert got["includes"] and got["ok"] and got["elf"]


def test_gpu_run_installs_the_header_wheels_where_a_python_has_none(tmp_path):
    base = Path(sys.base_prefix) / "bin" / "python3"  # the interpreter the venv was made from: no wheels
    probe = "import tilec.backend.nvrtc_lib as n, importlib.metadata as m; m.version('nvidia-cuda-crt')"
    check = subprocess.run([str(base), "-c", probe], capture_output=True, text=True,
                           env=_env(PYTHONPATH=str(ROOT / "src")))
    if not base.is_file() or "PackageNotFoundError" not in check.stderr:
        pytest.skip(f"{base} cannot stand in for a Python without the header wheels: {check.stderr[-200:]}")
    deps = tmp_path / "deps"
    env = _env(PYTHON=str(base), TILEC_GPU_DEPS=str(deps), GPU_RUN_NEEDS="numpy")  # this Python has no onnx
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), "-c", "print('ran')"], capture_output=True,
                       text=True, timeout=180, env=env)
    assert r.returncode == 0 and r.stdout == "ran\n", r.stderr
    assert "installing nvidia-cuda-runtime nvidia-cuda-crt from wheels/" in r.stderr
    assert f"NVRTC headers from {deps}" in r.stderr
    assert (deps / "nvidia" / "cu13" / "include" / "crt" / "mma.h").is_file()
    again = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), "-c", "print('ran')"],
                           capture_output=True, text=True, timeout=60, env=env)
    assert again.returncode == 0 and "installing" not in again.stderr  # found: nothing installed twice
    bare = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), "-c", "print('ran')"], capture_output=True,
                          text=True, timeout=60, env={**env, "GPU_RUN_NEEDS": "numpy no_such_module"})
    assert bare.returncode == 1 and "lacks one of: numpy no_such_module" in bare.stderr and not bare.stdout


def test_without_the_nvrtc_wheel_the_headers_still_serve_cupys_nvrtc(monkeypatch):
    real = nvrtc_lib._files
    monkeypatch.setattr(nvrtc_lib, "_files", lambda d: [] if d == nvrtc_lib.NVRTC_WHEEL else real(d))
    monkeypatch.setattr(nvrtc_lib, "_pathfinder_library", lambda: None)
    find_toolchain.cache_clear()
    try:
        t = find_toolchain()
        assert t.library is None and t.include_options()
        assert nvrtc_lib.NVRTC_WHEEL not in dict(t.wheel_versions)
        with pytest.raises(CompileError, match=r'nvidia-cuda-nvrtc[\s\S]*pip install -e "\.\[cuda\]"'):
            check_kernels({"k": "x"})
    finally:
        find_toolchain.cache_clear()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc (Linux)")
def test_nvrtc_builtins_are_loaded_from_beside_libnvrtc_before_any_compile():
    """torch's nvidia-cuda-nvrtc 13.0 wheel sets no RPATH: libnvrtc finds its builtins only if they are already
    loaded (else NVRTC_ERROR_BUILTIN_OPERATION_FAILURE at the first compile, seen with 13.0.88)."""
    code = ("from pathlib import Path; from tilec.backend.nvrtc_lib import NvrtcLibrary, find_toolchain; "
            "lib = find_toolchain().library; NvrtcLibrary(lib); "
            "maps = Path('/proc/self/maps').read_text(); "
            "print(any('libnvrtc-builtins' in ln and ln.split()[-1].startswith(str(Path(lib).parent)) "
            "for ln in maps.splitlines()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=_env(PYTHONPATH=str(ROOT / "src")))
    assert r.returncode == 0 and r.stdout.strip() == "True", r.stdout + r.stderr
