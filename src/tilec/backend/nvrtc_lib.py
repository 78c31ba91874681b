"""NVRTC from NVIDIA's pip wheels: where libnvrtc and the CUDA headers are, the options CuPy compiles with,
and a ctypes binding of the few NVRTC calls tilec needs (create, compile, log, cubin).

The kernels include ``<cuda_fp16.h>``, ``<cuda_bf16.h>`` and ``<mma.h>`` (``cuda_prelude.h``). NVRTC knows no
include path of its own, so those come from the wheels: ``nvidia-cuda-runtime`` (the fp16/bf16 headers) and
``nvidia-cuda-crt`` (``crt/mma.h``, ``crt/host_defines.h``); ``nvidia-cuda-nvrtc`` holds the library. Files are
found through the installed distributions' records (``importlib.metadata``), never at fixed paths, so the
wheels work from a venv, a ``pip install --target`` folder on ``PYTHONPATH`` or a system site.

The headers are required; the library is not: without the ``nvidia-cuda-nvrtc`` wheel, libnvrtc is looked up
the way CuPy 14 loads it (``cuda.pathfinder``: other NVIDIA wheels, conda, ``CUDA_HOME``, the system), and where
none is found ``Toolchain.library`` is None, so ``--check-nvrtc`` fails with the install hint while the cupy
runtime still hands CuPy's own NVRTC the wheels' include folders (``runtime/cupy_device.py``). On a lent GPU
machine torch's ``nvidia-cuda-nvrtc`` wheel provides the library and ``scripts/gpu_run.sh`` installs the two
header wheels from ``wheels/`` (docs/gpu.md).

ctypes rather than the ``cuda-python`` bindings: five C calls do not justify another dependency, and ctypes
releases the GIL during each call, so kernels compile on several threads at once.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.metadata as metadata
from dataclasses import dataclass

from ..ir.diagnostics import CompileError

NVRTC_WHEEL = "nvidia-cuda-nvrtc"
# Each header wheel and a header that tells which folder of it is the include directory.
HEADER_WHEELS = (("nvidia-cuda-runtime", "cuda_fp16.h"), ("nvidia-cuda-crt", "crt/mma.h"))
INSTALL_HINT = 'pip install -e ".[cuda]"'
# CUDA 13 compiles nothing below sm_75 (Volta, V100's sm_70, was dropped); CUDA 12's NVRTC still does, so an
# arch the main NVRTC lists no more is compiled with this wheel's (the `sm70` extra; in `test`, so CI checks it).
LEGACY_NVRTC_WHEEL = "nvidia-cuda-nvrtc-cu12"
LEGACY_HINT = 'pip install -e ".[sm70]"'


@dataclass(frozen=True)
class Toolchain:
    """libnvrtc and the include directories, and the versions of the wheels they came from."""

    library: str | None  # None: no libnvrtc found (see the module docstring)
    include_dirs: tuple
    wheel_versions: tuple  # ((distribution, version), ...): part of every cache key
    legacy_library: str | None = None  # CUDA 12's libnvrtc (LEGACY_NVRTC_WHEEL) for archs CUDA 13 dropped

    def include_options(self) -> tuple:
        return tuple(f"-I{d}" for d in self.include_dirs)


def _files(dist: str) -> list:
    try:
        return list(metadata.files(dist) or ())
    except metadata.PackageNotFoundError:
        return []


def _is_nvrtc_library(name: str) -> bool:
    """``libnvrtc.so.13`` (Linux) or ``nvrtc64_130_0.dll`` (Windows), not the builtins library beside it."""
    return "builtins" not in name and (name.startswith("libnvrtc.so") or
                                       (name.startswith("nvrtc64_") and name.endswith(".dll")))


def _pathfinder_library() -> str | None:
    """libnvrtc where CuPy 14 finds it (``cuda.pathfinder``), or None where that package or the library is
    absent."""
    try:
        from cuda.pathfinder import load_nvidia_dynamic_lib
        return str(load_nvidia_dynamic_lib("nvrtc").abs_path)
    except Exception:  # noqa: BLE001 - not installed, or no libnvrtc anywhere it looks: None says so
        return None


@functools.lru_cache(maxsize=None)
def find_toolchain() -> Toolchain:
    """The NVRTC library and the headers of the installed wheels; a CompileError naming what is missing (and
    how to install it) where a header wheel or one of its files is absent. ``library`` is None where neither
    the nvrtc wheel nor ``cuda.pathfinder`` gives a libnvrtc (:func:`load_library` then says what to install)."""
    missing, include_dirs, versions = [], [], []
    libs = [f for f in _files(NVRTC_WHEEL) if _is_nvrtc_library(f.name)]
    library = str(sorted(libs, key=str)[0].locate()) if libs else _pathfinder_library()
    for dist, marker in HEADER_WHEELS:
        hits = [f for f in _files(dist) if str(f).replace("\\", "/").endswith("include/" + marker)]
        if not hits:
            missing.append(dist)
            continue
        path = hits[0].locate()
        for _ in marker.split("/"):
            path = path.parent
        if str(path) not in include_dirs:
            include_dirs.append(str(path))
    if missing:
        raise CompileError(f"NVRTC needs the pip wheels {', '.join(missing)} (not installed in this Python "
                           f"environment): run `{INSTALL_HINT}`")
    for dist in ((NVRTC_WHEEL,) if libs else ()) + tuple(d for d, _ in HEADER_WHEELS):
        versions.append((dist, metadata.version(dist)))
    legacy = [f for f in _files(LEGACY_NVRTC_WHEEL) if _is_nvrtc_library(f.name)]
    legacy_library = str(sorted(legacy, key=str)[0].locate()) if legacy else None
    return Toolchain(library, tuple(include_dirs), tuple(versions), legacy_library)


def library_for(toolchain: Toolchain, sm_arch: str) -> "NvrtcLibrary":
    """The NVRTC that compiles for ``sm_arch``: the main one where it lists the arch, else CUDA 12's (the
    legacy wheel) where that one does; a CompileError naming what to install where neither can. An
    arch-specific ``sm_90a`` is checked as ``sm_90`` (``nvrtcGetSupportedArchs`` lists no feature suffixes;
    NVRTC compiles ``-arch=sm_90a`` wherever it compiles sm_90)."""
    from .arch_features import base_arch
    main = load_library(toolchain.library)
    if base_arch(sm_arch) in main.supported_archs():
        return main
    if toolchain.legacy_library is None:
        raise CompileError(f"NVRTC {main.version} cannot compile for {sm_arch} (CUDA 13 dropped it); "
                           f"CUDA 12's NVRTC can: run `{LEGACY_HINT}` (the {LEGACY_NVRTC_WHEEL} wheel)")
    legacy = load_library(toolchain.legacy_library)
    if base_arch(sm_arch) not in legacy.supported_archs():
        raise CompileError(f"neither NVRTC {main.version} nor NVRTC {legacy.version} compiles for {sm_arch}")
    return legacy


def nvrtc_options(sm_arch: str, toolchain: Toolchain | None = None) -> tuple:
    """The options CuPy gives NVRTC for a ``RawModule`` (``cupy/_core/core.pyx::assemble_cupy_compiler_options``
    and ``cupy/cuda/compiler.py``: C++17, flush-to-zero, a cubin for the device's ``sm_XX``, functions
    device-side by default), and ``-I`` for the wheels' headers. CuPy's own include folders (its CCCL copy and
    ``cupy/_core/include``) are left out: no tilec kernel includes a header from them. Shared by
    ``--check-nvrtc`` and the cupy runtime, so the GPU compiles what CI checked."""
    toolchain = toolchain or find_toolchain()
    return ("--std=c++17", "-ftz=true", f"-arch={sm_arch}", "--device-as-default-execution-space",
            *toolchain.include_options())


def _preload_builtins(path: str) -> None:
    """Load ``libnvrtc-builtins.so.X.Y`` from beside ``path`` first. libnvrtc dlopens it by soname at its first
    compile; the CUDA 13.0 wheels (torch's nvidia-cuda-nvrtc 13.0.x) set no RPATH, so without LD_LIBRARY_PATH
    that fails (NVRTC_ERROR_BUILTIN_OPERATION_FAILURE), while a library already loaded under that soname is
    reused. Later wheels carry ``$ORIGIN`` and need none of this; the ``.alt`` variants are not the default."""
    from pathlib import Path
    for lib in sorted(Path(path).parent.glob("libnvrtc-builtins.so*")):
        ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)


class NvrtcLibrary:
    """The NVRTC C API through ctypes (one instance per library path: :func:`load_library`)."""

    def __init__(self, path: str):
        try:
            _preload_builtins(path)
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise CompileError(f"cannot load NVRTC from {path} ({e}): reinstall with `{INSTALL_HINT}`") from None
        p, c, i, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
        sigs = {"nvrtcVersion": [ctypes.POINTER(i), ctypes.POINTER(i)],
                "nvrtcCreateProgram": [ctypes.POINTER(p), c, c, i, ctypes.POINTER(c), ctypes.POINTER(c)],
                "nvrtcCompileProgram": [p, i, ctypes.POINTER(c)],
                "nvrtcGetProgramLogSize": [p, ctypes.POINTER(sz)], "nvrtcGetProgramLog": [p, c],
                "nvrtcGetCUBINSize": [p, ctypes.POINTER(sz)], "nvrtcGetCUBIN": [p, c],
                "nvrtcDestroyProgram": [ctypes.POINTER(p)],
                "nvrtcGetNumSupportedArchs": [ctypes.POINTER(i)], "nvrtcGetSupportedArchs": [ctypes.POINTER(i)]}
        for name, args in sigs.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, ctypes.c_int
        lib.nvrtcGetErrorString.argtypes, lib.nvrtcGetErrorString.restype = [ctypes.c_int], ctypes.c_char_p
        self.lib, self.path = lib, path
        major, minor = i(), i()
        self._check(lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)), "nvrtcVersion")
        self.version = f"{major.value}.{minor.value}"

    @functools.cached_property
    def _archs(self) -> frozenset:
        n = ctypes.c_int()
        self._check(self.lib.nvrtcGetNumSupportedArchs(ctypes.byref(n)), "nvrtcGetNumSupportedArchs")
        archs = (ctypes.c_int * n.value)()
        self._check(self.lib.nvrtcGetSupportedArchs(archs), "nvrtcGetSupportedArchs")
        return frozenset(f"sm_{a}" for a in archs)

    def supported_archs(self) -> frozenset:
        """The ``sm_XX`` this NVRTC compiles for (``nvrtcGetSupportedArchs``)."""
        return self._archs

    def _check(self, status: int, call: str) -> None:
        if status != 0:
            raise RuntimeError(f"{call}: {self.lib.nvrtcGetErrorString(status).decode()}")

    def compile(self, source: str, filename: str, options: tuple) -> tuple:
        """Compile ``source``; ``(ok, log, cubin bytes or None)``. ``ok`` is False when NVRTC rejects the
        source (the log says why); a failure of NVRTC itself raises RuntimeError."""
        lib, prog = self.lib, ctypes.c_void_p()
        self._check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), filename.encode(), 0, None, None),
                    "nvrtcCreateProgram")
        try:
            opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
            status = lib.nvrtcCompileProgram(prog, len(options), opts)
            log = self._read(prog, lib.nvrtcGetProgramLogSize, lib.nvrtcGetProgramLog, "log")
            text = log.decode(errors="replace").rstrip("\0")
            if status == 6:  # NVRTC_ERROR_COMPILATION: the source is at fault, the log has the errors
                return False, text, None
            if status == 7:  # NVRTC_ERROR_BUILTIN_OPERATION_FAILURE: the installation, not the kernel
                raise CompileError(f"NVRTC {self.version} ({self.path}) cannot run: {text.strip()} "
                                   f"(reinstall with `{INSTALL_HINT}`)")
            if status == 5:  # NVRTC_ERROR_INVALID_OPTION: e.g. an -arch this NVRTC dropped (CUDA 13: sm_70)
                flags = " ".join(o for o in options if not o.startswith("-I"))
                raise CompileError(f"NVRTC {self.version} does not accept the options {flags}: {text.strip()}")
            self._check(status, "nvrtcCompileProgram")
            cubin = self._read(prog, lib.nvrtcGetCUBINSize, lib.nvrtcGetCUBIN, "cubin")
            return True, text, cubin
        finally:
            lib.nvrtcDestroyProgram(ctypes.byref(prog))

    def _read(self, prog, size_fn, read_fn, what: str) -> bytes:
        size = ctypes.c_size_t()
        self._check(size_fn(prog, ctypes.byref(size)), f"nvrtc size of {what}")
        buf = ctypes.create_string_buffer(size.value)
        if size.value:
            self._check(read_fn(prog, buf), f"nvrtc read {what}")
        return buf.raw


@functools.lru_cache(maxsize=None)
def load_library(path: str | None) -> NvrtcLibrary:
    """The NVRTC at ``path``; a CompileError with the install hint where ``path`` is None (none found)."""
    if path is None:
        raise CompileError(f"NVRTC needs the pip wheel {NVRTC_WHEEL} (no libnvrtc found in this Python "
                           f"environment): run `{INSTALL_HINT}`")
    return NvrtcLibrary(path)
