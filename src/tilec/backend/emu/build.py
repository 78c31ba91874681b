"""Compile a ``.cu`` text for the emulator with g++, caching the shared object by content.

The key is the sha256 of the compiler command, every emulator header and the full translation unit, so an
edit to any of them recompiles. Writes go to a temporary name and are renamed into place, so processes that
build the same kernel at once never see a half-written file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import EmuError

HEADER_DIR = Path(__file__).resolve().parent
HEADER = HEADER_DIR / "tilec_emu.h"
FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-fno-math-errno", "-pthread", "-w")
MAX_LOG = 6000   # characters of compiler output kept in an EmuError


def cache_dir(explicit: str | None = None) -> Path:
    """``explicit``, else ``$TILEC_CACHE_DIR/emu``, else ``~/.cache/tilec/emu``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("TILEC_CACHE_DIR")
    return Path(env) / "emu" if env else Path.home() / ".cache" / "tilec" / "emu"


def compiler() -> str:
    """The C++ compiler: ``$TILEC_CXX`` or g++."""
    return os.environ.get("TILEC_CXX", "g++")


def _headers_text() -> bytes:
    return b"".join(p.name.encode() + b"\0" + p.read_bytes() for p in sorted(HEADER_DIR.glob("*.h")))


def build(unit: str, directory: str | None = None) -> tuple:
    """``(path of the .so, whether it came from the cache)`` for the translation unit ``unit``."""
    cxx = compiler()
    command = (cxx, *FLAGS, "-include", str(HEADER))
    digest = hashlib.sha256()
    for part in ("\0".join(command).encode(), _headers_text(), unit.encode()):
        digest.update(hashlib.sha256(part).digest())
    key = digest.hexdigest()[:32]
    out_dir = cache_dir(directory)
    target = out_dir / f"{key}.so"
    if target.is_file():
        return target, True
    if shutil.which(cxx) is None:
        raise EmuError(f"the C++ compiler '{cxx}' was not found (set TILEC_CXX)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=f".{key}.") as tmp:
        src = Path(tmp) / f"{key}.cu"
        src.write_text(unit)
        obj = Path(tmp) / f"{key}.so"
        proc = subprocess.run([*command, "-x", "c++", str(src), "-o", str(obj)], capture_output=True, text=True)
        if proc.returncode != 0:
            log = (proc.stderr + proc.stdout).replace(str(src), "<kernel.cu>")
            if len(log) > MAX_LOG:
                log = log[:MAX_LOG] + "\n[... compiler output truncated]"
            raise EmuError(f"g++ failed to compile the kernel source for the emulator:\n{log}")
        os.replace(src, out_dir / f"{key}.cu")   # kept beside the .so for debugging
        os.replace(obj, target)
    return target, False
