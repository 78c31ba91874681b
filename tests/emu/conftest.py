"""Fixtures for the emulator tests: kernel sources from kernels/*.cu behind the real prelude, and one
compiled module per source per session (the .so cache lives in a session temporary folder)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tilec.backend.emu import EmuModule

KERNELS = Path(__file__).with_name("kernels")
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "cuda_prelude.h"


def kernel_source(name: str) -> str:
    """The text the emitter would produce: the prelude pasted verbatim, then the kernels."""
    return PRELUDE.read_text() + "\n" + (KERNELS / f"{name}.cu").read_text()


@pytest.fixture(scope="session")
def source():
    """``source(name)`` → the full text of kernels/<name>.cu behind the prelude."""
    return kernel_source


@pytest.fixture(scope="session")
def emu_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("emu-cache"))


@pytest.fixture(scope="session")
def load(emu_cache):
    """``load(name)`` → the EmuModule of kernels/<name>.cu, compiled once per session."""
    modules: dict = {}

    def get(name: str) -> EmuModule:
        if name not in modules:
            modules[name] = EmuModule(kernel_source(name), cache_dir=emu_cache)
        return modules[name]

    return get


@pytest.fixture
def compiles_for_sm90a_without_spills(tmp_path):
    """``check(text)``: nvcc -arch=sm_90a builds ``text`` (a fixture behind the prelude) to a cubin, and ptxas
    reports no spill store for any of its kernels. Skips without nvcc and ptxas."""
    if shutil.which("ptxas") is None or shutil.which("nvcc") is None:
        pytest.skip("needs nvcc and ptxas")

    def check(text: str) -> None:
        src = tmp_path / "fixture.cu"
        src.write_text(text)
        r = subprocess.run(["nvcc", "-arch=sm_90a", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "fixture.cubin"),
                            str(src)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert " 0 bytes spill stores" in r.stderr
        assert r.stderr.count("0 bytes spill stores") == r.stderr.count("bytes spill stores") > 0

    return check
