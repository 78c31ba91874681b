"""Fixtures for the emulator tests: kernel sources from kernels/*.cu behind the real prelude, and one
compiled module per source per session (the .so cache lives in a session temporary folder)."""
from __future__ import annotations

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
