"""``--check-nvrtc``: compile every kernel of a build the way CuPy will on the GPU (NVRTC, CuPy's options,
the target's ``sm_XX`` from ``analysis/hw/*.json``), without a GPU; and :func:`compile_cubin`, which the cupy
runtime loads kernels with, so the GPU compiles exactly what this check accepted.

Kernels compile one per NVRTC program, two at a time (NVRTC runs in-process and ctypes releases the GIL, so
threads suffice). Unlike nvcc (``backend/ptxas.py``), NVRTC has no process start-up to amortise: the headers
cost ~0.1 s of a kernel's 0.3-4 s, so batching kernels would save little and cost per-kernel caching.

Results are cached by a hash of the NVRTC version, the wheels' versions, the options and the source (under
``$TILEC_CACHE_DIR`` or ``~/.cache/tilec``, in ``nvrtc/``): a rebuilt model or a kernel that several builds
share costs nothing the second time. Only successes are cached.

A kernel that NVRTC rejects raises :class:`NvrtcRejected`, not CompileError: the model was accepted and every
pass verified, so CUDA text that does not compile is a bug in tilec's code generation, and the CLI reports it
as one (exit 3), never as a fault of the model (exit 1). Missing NVRTC wheels are a CompileError telling the
user what to install.
"""
from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..analysis.hardware import DEFAULT_ARCH, get_arch
from ..ir.weights import atomic_write_bytes
from .arch_features import kernel_arch
from .nvrtc_lib import Toolchain, find_toolchain, library_for, nvrtc_options
from .ptxas import PtxasInfo, cache_dir, parse_ptxas

JOBS = 2
LOG_LIMIT = 8000  # characters of NVRTC's log quoted in an error


class NvrtcRejected(Exception):
    """NVRTC rejected a kernel that tilec generated: a bug in tilec (see the module docstring)."""


@dataclass
class NvrtcResult:
    """One kernel through NVRTC: ``ok``, NVRTC's log (warnings, or the errors), the cubin when kept, and the
    arch it was compiled for (``arch_features.kernel_arch``: ``sm_90a`` for a wgmma kernel on ``sm_90``)."""

    ok: bool
    log: str
    cubin: bytes | None = None
    sm_arch: str = ""


def _cache_key(version: str, toolchain: Toolchain, options: tuple, name: str, source: str) -> str:
    # The -I folders only say where the wheels are; their versions say what the headers hold.
    flags = [o for o in options if not o.startswith("-I")]
    parts = [version, *(f"{d}={v}" for d, v in toolchain.wheel_versions), *flags, name, source]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def compile_kernel(name: str, source: str, sm_arch: str, keep_cubin: bool = False,
                   use_cache: bool = True, extra_options: tuple = ()) -> NvrtcResult:
    """Compile one kernel (``name.cu``) with :func:`nvrtc_options` (and ``extra_options``) by the NVRTC that
    compiles for ``sm_arch`` (``nvrtc_lib.library_for``). ``keep_cubin`` returns (and caches) the cubin as
    well. CompileError where the NVRTC wheels are missing. A kernel that needs ``sm_90a`` (wgmma,
    ``arch_features``) compiles for it on an ``sm_90`` target."""
    sm_arch = kernel_arch(sm_arch, source)
    toolchain = find_toolchain()
    lib = library_for(toolchain, sm_arch)
    options = nvrtc_options(sm_arch, toolchain) + tuple(extra_options)
    entry = None
    if use_cache:
        entry = cache_dir() / "nvrtc" / f"{_cache_key(lib.version, toolchain, options, name, source)}.json"
        cached = _read_cache(entry, keep_cubin, sm_arch)
        if cached is not None:
            return cached
    ok, log, cubin = lib.compile(source, f"{name}.cu", options)
    result = NvrtcResult(ok, log, cubin if keep_cubin else None, sm_arch)
    if ok and entry is not None:
        _write_cache(entry, result)
    return result


def _read_cache(entry: Path, keep_cubin: bool, sm_arch: str) -> NvrtcResult | None:
    try:
        log = json.loads(entry.read_text())["log"]
        cubin = entry.with_suffix(".cubin").read_bytes() if keep_cubin else None
        return NvrtcResult(True, log, cubin, sm_arch)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # absent or damaged: compile again


def _write_cache(entry: Path, result: NvrtcResult) -> None:
    """A cache that cannot be written only costs time."""
    try:
        if result.cubin is not None:
            atomic_write_bytes(entry.with_suffix(".cubin"), result.cubin)
        atomic_write_bytes(entry, json.dumps({"log": result.log}).encode())
    except OSError:
        pass


def compile_cubin(name: str, source: str, sm_arch: str) -> bytes:
    """The cubin of one kernel for ``sm_arch`` (the cupy runtime's way to build a kernel); NvrtcRejected with
    NVRTC's log when it does not compile."""
    result = compile_kernel(name, source, sm_arch, keep_cubin=True)
    if not result.ok:
        raise NvrtcRejected(_rejection(name, result))
    return result.cubin


def _rejection(name: str, result: NvrtcResult) -> str:
    toolchain = find_toolchain()
    version = library_for(toolchain, result.sm_arch).version
    flags = " ".join(o for o in nvrtc_options(result.sm_arch, toolchain) if not o.startswith("-I"))
    log = result.log.strip()
    if len(log) > LOG_LIMIT:
        log = log[:LOG_LIMIT] + "\n... (log cut)"
    return f"NVRTC {version} ({flags}) rejected kernel '{name}' (kernels/{name}.cu):\n{log}"


def _compile_all(sources: dict, sm_arch: str, jobs: int, **options) -> dict:
    """``{name: NvrtcResult}`` for every kernel of ``sources``, ``jobs`` at a time (:func:`compile_kernel` with
    ``options``); the first rejected kernel in the given order raises NvrtcRejected, so the message is
    deterministic."""
    names = list(sources)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = dict(zip(names, pool.map(lambda n: compile_kernel(n, sources[n], sm_arch, **options), names)))
    for name in names:
        if not results[name].ok:
            raise NvrtcRejected(_rejection(name, results[name]))
    return results


def check_kernels(sources: dict, arch: str = DEFAULT_ARCH, jobs: int = JOBS, use_cache: bool = True) -> dict:
    """Compile every ``{kernel name: .cu text}`` for ``arch``'s ``sm_arch``; returns what report.json records
    (NVRTC's version, the arch, the options without include folders, ``{name: {"ok": True}}`` per kernel).
    The first rejected kernel in the given order raises NvrtcRejected."""
    sm_arch = get_arch(arch).sm_arch
    toolchain = find_toolchain()  # a missing wheel fails here, before any thread starts
    version = library_for(toolchain, sm_arch).version
    results = _compile_all(sources, sm_arch, jobs, use_cache=use_cache)
    options = [o for o in nvrtc_options(sm_arch, toolchain) if not o.startswith("-I")]
    kernels = {name: {"ok": True} for name in sources}
    for name, result in results.items():   # only kernels compiled for another arch (sm_90a) say which
        if result.sm_arch != sm_arch:
            kernels[name]["sm_arch"] = result.sm_arch
    return {"version": version, "sm_arch": sm_arch, "options": options, "kernels": kernels}


def ptxas_check(sources: dict, sm_arch: str, cubin_dir: Path | None = None, jobs: int = JOBS,
                use_cache: bool = True) -> dict:
    """``{kernel name: PtxasInfo}``, as ``ptxas.check_kernels`` gives, for an ``sm_arch`` this machine's nvcc
    no longer compiles for (CUDA 13 has no sm_70): NVRTC (CUDA 12's, ``nvrtc_lib.library_for``) runs its
    built-in ptxas with ``-v`` and the report is read from its log; the cubins go to ``cubin_dir``. A kernel
    NVRTC rejects raises NvrtcRejected (a tilec bug, exit 3), the first in the given order."""
    library_for(find_toolchain(), sm_arch)  # a missing wheel fails here, before any thread starts
    results = _compile_all(sources, sm_arch, jobs, keep_cubin=True, use_cache=use_cache,
                           extra_options=("--ptxas-options=-v",))
    infos = {}
    for name, result in results.items():
        infos[name] = parse_ptxas(result.log).get(name, PtxasInfo())
        if cubin_dir is not None:
            atomic_write_bytes(Path(cubin_dir) / f"{name}.cubin", result.cubin)
    return infos
