"""``--check-hip``: compile every kernel of an AMD build with ``hipcc --offload-arch=<isa>`` and read back the
AMDGPU backend's resource report (``-Rpass-analysis=kernel-resource-usage``): SGPRs, VGPRs, AGPRs, scratch,
occupancy, spills and LDS per kernel, the AMD counterpart of ``ptxas -v`` (docs/amd.md).

As ``ptxas.py`` does, the kernels go in a few batches (one translation unit each: the HIP prelude has include
guards), since a hipcc call costs seconds; a failing batch is redone kernel by kernel so the error names the
first failing kernel. Only device code is compiled (``--cuda-device-only``), with ``HIP_PLATFORM=amd``:
Debian's hipcc otherwise picks nvcc when one is on PATH. Results are cached by a hash of the sources, the
compiler's version and the flags (``$TILEC_CACHE_DIR/hipcc``).
"""
from __future__ import annotations

import functools
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

JOBS = 2
TIMEOUT_S = 600

_NAME = re.compile(r"remark: Function Name: (\S+)")
_FIELD = re.compile(r"remark:\s+([A-Za-z][A-Za-z ]*?)(?: \[[^\]]*\])?: (\d+)")
# hipcc's remark label -> HipInfo field.
_FIELDS = {"SGPRs": "sgprs", "VGPRs": "vgprs", "AGPRs": "agprs", "ScratchSize": "scratch_bytes",
           "Occupancy": "occupancy", "SGPRs Spill": "sgpr_spills", "VGPRs Spill": "vgpr_spills",
           "LDS Size": "lds_bytes"}
_BAD_TARGET = re.compile(r"invalid target ID '([^']+)'|unknown target CPU '([^']+)'|"
                         r"[Uu]nsupported (?:CUDA|HIP|offload) (?:gpu )?arch[a-z]*[: ]+'?([A-Za-z0-9_]+)")


@dataclass
class HipInfo:
    """What the AMDGPU backend reported for one kernel: registers per lane (``vgprs``, ``agprs``), per wave
    (``sgprs``), scratch bytes per lane, occupancy in waves per SIMD, spilled registers and LDS bytes."""

    sgprs: int = 0
    vgprs: int = 0
    agprs: int = 0
    scratch_bytes: int = 0
    occupancy: int = 0
    sgpr_spills: int = 0
    vgpr_spills: int = 0
    lds_bytes: int = 0

    @property
    def spills(self) -> int:
        return self.sgpr_spills + self.vgpr_spills

    def to_json(self) -> dict:
        return {**asdict(self), "spills": self.spills}


def parse_remarks(log: str) -> dict:
    """``{function name: HipInfo}`` from ``-Rpass-analysis=kernel-resource-usage`` output: a ``Function Name``
    remark, then one remark per resource."""
    infos: dict = {}
    current = None
    for line in log.splitlines():
        m = _NAME.search(line)
        if m:
            current = infos.setdefault(m.group(1), HipInfo())
            continue
        m = _FIELD.search(line)
        if m and current is not None and m.group(1) in _FIELDS:
            setattr(current, _FIELDS[m.group(1)], int(m.group(2)))
    return infos


def find_hipcc() -> str | None:
    """``$TILEC_HIPCC``, else ``hipcc`` on PATH, else ROCm's ``/opt/rocm/bin/hipcc``."""
    env = os.environ.get("TILEC_HIPCC")
    if env:
        return env if Path(env).is_file() else None
    found = shutil.which("hipcc")
    if found:
        return found
    return "/opt/rocm/bin/hipcc" if Path("/opt/rocm/bin/hipcc").is_file() else None


def flags(isa: str) -> tuple:
    return (f"--offload-arch={isa}", "--cuda-device-only", "-O3", "-c", "-Rpass-analysis=kernel-resource-usage")


def _env() -> dict:
    return {**os.environ, "HIP_PLATFORM": "amd"}


@functools.lru_cache(maxsize=None)
def hipcc_version(hipcc: str) -> str:
    try:
        r = subprocess.run([hipcc, "--version"], capture_output=True, text=True, timeout=60, env=_env())
    except (OSError, subprocess.SubprocessError) as e:
        raise CompileError(f"--check-hip: cannot run {hipcc}: {e}") from None
    return " ".join((r.stdout + r.stderr).split())


def _hipcc(hipcc: str, source: str, isa: str, what: str) -> str:
    """Compile ``source``; returns the remarks. A rejected target or source is a CompileError."""
    with tempfile.TemporaryDirectory(prefix="tilec-hipcc-") as tmp:
        src = Path(tmp) / "k.hip"
        src.write_text(source)
        try:
            r = subprocess.run([hipcc, *flags(isa), "-o", str(Path(tmp) / "k.o"), str(src)], capture_output=True,
                               text=True, timeout=TIMEOUT_S, env=_env(), cwd=tmp)
        except subprocess.TimeoutExpired:
            raise CompileError(f"hipcc took over {TIMEOUT_S} s on {what}") from None
    log = r.stdout + r.stderr
    if r.returncode != 0:
        bad = _BAD_TARGET.search(log)
        if bad:
            version = re.search(r"HIP version: (\S+)", hipcc_version(hipcc))
            raise CompileError(f"--check-hip: hipcc {version.group(1) if version else ''} cannot compile for {isa} "
                               f"(its clang does not know the target; a newer ROCm's hipcc does)")
        errors = "\n".join(ln for ln in log.splitlines() if "remark" not in ln)
        raise CompileError(f"hipcc rejected {what} for {isa}:\n{errors.strip()}")
    return log


def _cached(cache: Path | None, key: str, compute):
    entry = cache / "hipcc" / f"{key}.json" if cache is not None else None
    if entry is not None and entry.is_file():
        try:
            return {n: HipInfo(**i) for n, i in json.loads(entry.read_text()).items()}
        except (OSError, ValueError, TypeError):
            pass   # a damaged entry is recompiled
    infos = compute()
    if entry is not None:
        from ..ir.weights import atomic_write_bytes
        try:
            atomic_write_bytes(entry, json.dumps({n: asdict(i) for n, i in infos.items()}).encode())
        except OSError:
            pass   # a cache that cannot be written only costs time
    return infos


def compile_batch(names: list, sources: dict, isa: str, hipcc: str, cache: Path | None) -> dict:
    """``{name: HipInfo}`` for ``names`` compiled as one translation unit (CompileError on any failure)."""
    digest = hashlib.sha256("\0".join([hipcc_version(hipcc), *flags(isa)]).encode())
    for n in names:
        digest.update(hashlib.sha256(f"{n}\0{sources[n]}".encode()).digest())

    def compute():
        what = f"kernel '{names[0]}'" if len(names) == 1 else "a batch of kernels"
        parsed = parse_remarks(_hipcc(hipcc, "\n".join(sources[n] for n in names), isa, what))
        missing = [n for n in names if n not in parsed]
        if missing:
            raise CompileError(f"hipcc printed no resource usage for kernel '{missing[0]}'")
        return {n: parsed[n] for n in names}
    return _cached(cache, digest.hexdigest()[:32], compute)


def check_kernels(sources: dict, isa: str, jobs: int = JOBS, use_cache: bool = True) -> dict:
    """``{kernel name: HipInfo}`` for ``{kernel name: .hip text}`` compiled for ``isa`` (``gfx90a``): ``jobs``
    batches at once, a failing batch redone kernel by kernel, the first failing kernel (in order) raised."""
    hipcc = find_hipcc()
    if hipcc is None:
        raise CompileError("--check-hip needs hipcc (Debian: apt-get install hipcc rocm-device-libs; or ROCm)")
    names = list(sources)
    if not names:
        return {}
    from .cache import root
    cache = root() if use_cache else None
    size = -(-len(names) // max(1, min(jobs, len(names))))
    chunks = [names[i:i + size] for i in range(0, len(names), size)]

    def batch(chunk):
        try:
            return compile_batch(chunk, sources, isa, hipcc, cache)
        except CompileError as e:
            if len(chunk) == 1 or "cannot compile for" in str(e):
                return {chunk[0]: e}
            return {n: _one(n) for n in chunk}

    def _one(name):
        try:
            return compile_batch([name], sources, isa, hipcc, cache)[name]
        except CompileError as e:
            return e

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        merged: dict = {}
        for part in pool.map(batch, chunks):
            merged.update(part)
    for n in names:
        if isinstance(merged.get(n), CompileError):
            raise merged[n]
    return {n: merged[n] for n in names}
