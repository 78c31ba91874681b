"""The CUDA emulator: run the very same generated ``.cu`` text on the CPU (DESIGN §7 ``emu``).

``EmuModule(source)`` compiles the text with g++ and ``tilec_emu.h`` force-included (threads are fibers,
blocks spread over OS threads, ``__shared__``, barriers, warp intrinsics, atomics, half types, sm_90
thread-block clusters with distributed shared memory), then
``launch`` runs a kernel on numpy arrays and returns the global bytes it loaded and stored. The runtime is a
shared library built once per cache (``build.py``), and ``Batch`` compiles many sources in one g++ call.
"""
from .batch import Batch, EmuBuildError, LazyModule
from .errors import EmuError
from .module import EmuModule, LaunchStats

__all__ = ["Batch", "EmuBuildError", "EmuError", "EmuModule", "LaunchStats", "LazyModule"]
