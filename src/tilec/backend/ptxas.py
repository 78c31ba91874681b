"""``--check-ptx``: compile every kernel with ``nvcc -arch=sm_90 -cubin -Xptxas -v`` and read back what ptxas
says about it (registers, shared memory, stack frame, spills).

Results are cached by a hash of the source, the nvcc version and the flags (under ``$TILEC_CACHE_DIR`` or
``~/.cache/tilec``), so recompiling an unchanged model costs nothing; at most two nvcc processes run at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ..ir.diagnostics import CompileError

ARCH = "sm_90"
FLAGS = (f"-arch={ARCH}", "-cubin", "-Xptxas", "-v")
JOBS = 2
TIMEOUT_S = 300

_FUNC = re.compile(r"Function properties for (\S+)")
_STACK = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")
_ENTRY = re.compile(r"Compiling entry function '([^']+)'")


@dataclass
class PtxasInfo:
    """What ptxas reported for one kernel (bytes, except ``registers``)."""

    registers: int = 0
    smem: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0

    @property
    def spill_bytes(self) -> int:
        return self.spill_stores + self.spill_loads

    def to_json(self) -> dict:
        return {**asdict(self), "spill_bytes": self.spill_bytes}


def parse_ptxas(log: str) -> dict:
    """``{function name: PtxasInfo}`` from ``-Xptxas -v`` output (CUDA 11-13 formats).

    ptxas prints per entry: ``Compiling entry function 'k'``, ``Function properties for k`` followed by the
    stack/spill line, then ``Used N registers, ... M bytes smem, ...`` (smem is left out when zero)."""
    infos: dict = {}
    current = None
    for line in log.splitlines():
        m = _ENTRY.search(line) or _FUNC.search(line)
        if m:
            current = infos.setdefault(m.group(1), PtxasInfo())
            continue
        if current is None:
            continue
        m = _STACK.search(line)
        if m:
            current.stack, current.spill_stores, current.spill_loads = map(int, m.groups())
        m = _REGS.search(line)
        if m:
            current.registers = int(m.group(1))
            s = _SMEM.search(line)
            current.smem = int(s.group(1)) if s else 0
    return infos


def cache_dir() -> Path:
    """``$TILEC_CACHE_DIR`` or ``~/.cache/tilec``."""
    return Path(os.environ.get("TILEC_CACHE_DIR") or Path.home() / ".cache" / "tilec")


def find_nvcc() -> str | None:
    return shutil.which("nvcc")


def _nvcc_version(nvcc: str) -> str:
    r = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "?"


def compile_kernel(name: str, source: str, nvcc: str, version: str, cache: Path | None,
                   cubin_out: Path | None = None) -> tuple:
    """Compile one kernel; returns ``(PtxasInfo, log)``. Raises CompileError with nvcc's message on failure.
    ``cubin_out``, when given, receives the cubin (runtimes may load it instead of compiling again)."""
    key = hashlib.sha256("\0".join([version, *FLAGS, source]).encode()).hexdigest()[:32]
    entry = cache / "ptxas" / f"{key}.json" if cache is not None else None
    cubin_cached = entry.with_suffix(".cubin") if entry is not None else None
    if entry is not None and entry.is_file() and (cubin_out is None or cubin_cached.is_file()):
        try:
            data = json.loads(entry.read_text())
            if cubin_out is not None:
                shutil.copyfile(cubin_cached, cubin_out)
            return PtxasInfo(**data["info"]), data["log"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is recompiled
    with tempfile.TemporaryDirectory(prefix="tilec-ptxas-") as tmp:
        cu, cubin = Path(tmp) / f"{name}.cu", Path(tmp) / f"{name}.cubin"
        cu.write_text(source)
        try:
            r = subprocess.run([nvcc, *FLAGS, "-o", str(cubin), str(cu)], capture_output=True, text=True,
                               timeout=TIMEOUT_S, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise CompileError(f"nvcc timed out after {TIMEOUT_S}s compiling kernel '{name}'") from None
        log = (r.stdout + r.stderr).replace(tmp + os.sep, "")
        if r.returncode != 0:
            raise CompileError(f"nvcc failed on kernel '{name}' (exit {r.returncode}):\n{log.strip()}")
        info = parse_ptxas(log).get(name)
        if info is None:
            raise CompileError(f"ptxas printed no resource usage for kernel '{name}':\n{log.strip()}")
        if cubin_out is not None:
            shutil.copyfile(cubin, cubin_out)
        if entry is not None:
            _store(entry, {"info": asdict(info), "log": log}, cubin)
    return info, log


def _store(entry: Path, data: dict, cubin: Path) -> None:
    """Write a cache entry; a cache that cannot be written only costs time."""
    from ..ir.weights import atomic_write_bytes
    try:
        atomic_write_bytes(entry.with_suffix(".cubin"), cubin.read_bytes())
        atomic_write_bytes(entry, json.dumps(data).encode())
    except OSError:
        pass


def check_kernels(sources: dict, cubin_dir: Path | None = None, jobs: int = JOBS,
                  use_cache: bool = True) -> dict:
    """``{kernel name: PtxasInfo}`` for ``{kernel name: .cu text}``, compiled ``jobs`` at a time.

    The first failing kernel (in the given order) raises its CompileError, so the message is deterministic."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise CompileError("--check-ptx needs nvcc (the CUDA toolkit) on PATH")
    version = _nvcc_version(nvcc)
    cache = cache_dir() if use_cache else None
    names = list(sources)

    def one(name):
        out = cubin_dir / f"{name}.cubin" if cubin_dir is not None else None
        try:
            return compile_kernel(name, sources[name], nvcc, version, cache, out)[0]
        except CompileError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(one, names))
    for r in results:
        if isinstance(r, CompileError):
            raise r
    return dict(zip(names, results))
