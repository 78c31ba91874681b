"""The ``hip`` device: an AMD build's ``.hip`` kernels (``tilec compile --arch mi250x``; docs/amd.md) as
``cupy.RawModule`` functions on a ROCm GPU, through CuPy built for ROCm (``pip install -e ".[rocm]"``), which
compiles them with hiprtc. Buffers, copies, launches and timing are the cupy device's: CuPy's API is the same
on ROCm. Untested without an AMD GPU beyond refusing cleanly where CuPy is not a ROCm build or sees no GPU.
"""
from __future__ import annotations

from ..ir.diagnostics import CompileError
from .cupy_device import CupyDevice

NEEDS = "--backend hip needs CuPy built for ROCm (pip install -e '.[rocm]') and an AMD GPU"


def cupy_is_rocm() -> bool:
    """Whether the installed CuPy is a ROCm build (False where CuPy is missing)."""
    try:
        import cupy
    except Exception:  # noqa: BLE001 - not installed, or a broken install: not ROCm either way
        return False
    return bool(getattr(cupy.cuda.runtime, "is_hip", False))


class HipDevice(CupyDevice):
    """See the module docstring. Raises CompileError(NEEDS) where CuPy is not a ROCm build or sees no GPU."""

    name = "hip"

    def __init__(self):
        if not cupy_is_rocm():
            raise CompileError(NEEDS + " (the installed CuPy is " +
                               ("a CUDA build)" if _cupy_installed() else "missing)"))
        try:
            super().__init__()
        except CompileError as e:
            raise CompileError(f"{NEEDS} ({e})") from None

    def load(self, name, source, cubin=None):
        """Kernel ``name`` compiled by CuPy's hiprtc for the GPU present."""
        try:
            return self.cp.RawModule(code=source, options=("-std=c++17",)).get_function(name)
        except Exception as e:  # noqa: BLE001 - hiprtc's errors come as several CuPy exception types
            raise CompileError(f"cannot load kernel '{name}' on the AMD GPU: {type(e).__name__}: "
                               f"{str(e).strip()[:2000]}") from None


def _cupy_installed() -> bool:
    try:
        import cupy  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True
