"""Compile a ``.cu`` text for the emulator with g++, caching every product by content.

Three products share one cache folder (``$TILEC_CACHE_DIR/emu``), all keyed by the compiler command and the
emulator's sources (every ``*.h`` and ``*.cc`` here), so an edit to any of them rebuilds:

- ``rt-<key>.so``: the runtime library (``emu_runtime.cc``: launches, worker threads, fibers, the scheduler),
  compiled once, not once per kernel;
- ``inc-<key>/``: a copy of the headers with ``tilec_emu.h.gch`` precompiled beside them when the compiler
  can (without it, ``-include`` parses the copy: slower, same result);
- ``<unit key>.so``: one per translation unit, which links ``rt-<key>.so`` (found through ``$ORIGIN``).

Every product is written under a temporary name and renamed into place, so processes that build the same
thing at once never see a half-written file, and the loser of a race just uses the winner's.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...analysis.hardware import available_archs, get_arch
from .errors import EmuError

HEADER_DIR = Path(__file__).resolve().parent
HEADER = "tilec_emu.h"
RUNTIME = "emu_runtime.cc"
# The per-block shared memory the emulator's arena holds: the largest any GPU spec opts in to (the specs are the
# data; emu_state.h's kSmemCap is this define).
SMEM_CAP = max(get_arch(a).smem_per_block_optin_bytes for a in available_archs())
FLAGS = ("-O2", "-std=c++17", "-fPIC", "-fvisibility=hidden", "-fno-math-errno", "-pthread", "-w",
         f"-DTL_EMU_SMEM_CAP={SMEM_CAP}")
# Warp widths the emulator builds for (emu_state.h's kWarp, -DTL_EMU_WARP): a target's spec.warp_size, 32 on
# NVIDIA GPUs and 64 on AMD's (wavefronts). Each width has its own runtime library and header copy.
WARP_SIZES = (32, 64)
DEFAULT_WARP = 32


def flags(warp: int = DEFAULT_WARP) -> tuple:
    """The compiler flags of every product for warps of ``warp`` lanes."""
    if warp not in WARP_SIZES:
        raise EmuError(f"the emulator runs warps of {' or '.join(map(str, WARP_SIZES))} lanes, not {warp}")
    return (*FLAGS, f"-DTL_EMU_WARP={warp}")
MAX_LOG = 6000   # characters of compiler output kept in an EmuError


def cache_dir(explicit: str | None = None) -> Path:
    """``explicit``, else the cache's ``emu/`` folder (``backend/cache.root``)."""
    if explicit:
        return Path(explicit)
    from ..cache import root
    return root() / "emu"


def compiler() -> str:
    """The C++ compiler: ``$TILEC_CXX`` or g++."""
    return os.environ.get("TILEC_CXX", "g++")


def _sources() -> list:
    return sorted([*HEADER_DIR.glob("*.h"), HEADER_DIR / RUNTIME])


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:32]


def toolchain_key(cxx: str, warp: int = DEFAULT_WARP) -> str:
    """The key of the runtime library and the header copy: compiler, flags (the warp width's) and the
    emulator's sources."""
    text = b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in _sources())
    return _key("\0".join((cxx, *flags(warp))).encode(), text)


def _run(command: list, what: str, src: Path | None = None) -> None:
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        log = proc.stderr + proc.stdout
        if src is not None:
            log = log.replace(str(src), "<kernel.cu>")
        if len(log) > MAX_LOG:
            log = log[:MAX_LOG] + "\n[... compiler output truncated]"
        raise EmuError(f"g++ failed to compile {what} for the emulator:\n{log}")


def runtime(out_dir: Path, cxx: str, key: str, warp: int = DEFAULT_WARP) -> Path:
    """``rt-<key>.so`` in ``out_dir``, compiled now if it is not there yet."""
    target = out_dir / f"rt-{key}.so"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".rt-{key}.") as tmp:
        obj = Path(tmp) / target.name
        _run([cxx, *flags(warp), "-shared", f"-Wl,-soname,{target.name}", str(HEADER_DIR / RUNTIME), "-o", str(obj)],
             "the emulator runtime")
        os.replace(obj, target)
    return target


def include_dir(out_dir: Path, cxx: str, key: str, warp: int = DEFAULT_WARP) -> Path:
    """``inc-<key>/``: the headers, and ``tilec_emu.h.gch`` when precompiling works with this compiler."""
    target = out_dir / f"inc-{key}"
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=f".inc-{key}."))
    try:
        for p in HEADER_DIR.glob("*.h"):
            shutil.copyfile(p, tmp / p.name)
        # Same flags as the kernels (a .gch only serves identical ones); a failure only costs speed.
        proc = subprocess.run([cxx, *flags(warp), "-x", "c++-header", str(tmp / HEADER), "-o",
                               str(tmp / f"{HEADER}.gch")], capture_output=True, text=True)
        if proc.returncode != 0:
            (tmp / f"{HEADER}.gch").unlink(missing_ok=True)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():   # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def build(unit: str, directory: str | None = None, warp: int = DEFAULT_WARP) -> tuple:
    """``(path of the .so, whether it came from the cache)`` for the translation unit ``unit``, with warps of
    ``warp`` lanes (the target's ``spec.warp_size``)."""
    cxx = compiler()
    out_dir = cache_dir(directory)
    tkey = toolchain_key(cxx, warp)
    key = _key(tkey.encode(), unit.encode())
    target = out_dir / f"{key}.so"
    if shutil.which(cxx) is None:
        if target.is_file() and (out_dir / f"rt-{tkey}.so").is_file():
            return target, True
        raise EmuError(f"the C++ compiler '{cxx}' was not found (set TILEC_CXX)")
    out_dir.mkdir(parents=True, exist_ok=True)
    rt = runtime(out_dir, cxx, tkey, warp)   # also when the kernel is cached: it cannot load without it
    if target.is_file():
        return target, True
    inc = include_dir(out_dir, cxx, tkey, warp)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{key}.") as tmp:
        src = Path(tmp) / f"{key}.cu"
        src.write_text(unit)
        obj = Path(tmp) / f"{key}.so"
        _run([cxx, *flags(warp), "-shared", "-include", str(inc / HEADER), "-x", "c++", str(src), "-x", "none", str(rt),
              "-Wl,-rpath,$ORIGIN", "-o", str(obj)], "the kernel source", src)
        os.replace(src, out_dir / f"{key}.cu")   # kept beside the .so for debugging
        os.replace(obj, target)
    from ..cache import prune
    # Bounded ($TILEC_CACHE_MAX_BYTES): the oldest units go first; the runtime and headers stay.
    prune(out_dir, keep=lambda p: p.parent != out_dir or p.name.startswith("rt-") or p == target)
    return target, False
