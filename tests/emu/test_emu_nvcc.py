"""The prelude and every fixture kernel are valid CUDA: nvcc compiles them all for sm_90.

All fixtures go into one translation unit (the prelude is include-guarded, as it is pasted atop each file),
so nvcc starts once.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

KERNELS = Path(__file__).with_name("kernels")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_fixtures_compile_with_nvcc(tmp_path, source):
    names = sorted(p.stem for p in KERNELS.glob("*.cu"))
    unit = tmp_path / "all.cu"
    unit.write_text("\n".join(source(n) for n in names))
    proc = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "-o", str(tmp_path / "all.cubin"), str(unit)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
