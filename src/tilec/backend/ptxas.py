"""``--check-ptx``: compile every kernel with ``nvcc -arch=sm_XX -cubin -Xptxas -v`` (``sm_XX``: the build
target's ``sm_arch``) and read back what ptxas says about it (registers, shared memory, stack frame, spills).

The kernels of a build are compiled in a few batches (one translation unit per batch, each kernel's text one
after the other: the prelude has include guards), because nvcc's start-up and the half-precision headers cost
~0.5 s per call: 41 kernels take ~2 s batched against ~26 s one by one. ptxas still reports every entry
function separately, and each ``K.cubin`` is a hard link to its batch's cubin (which holds K). A batch that
fails (a compile error, or two kernels defining the same helper) is redone kernel by kernel, so the error names
the first failing kernel deterministically.

Results are cached by a hash of the sources, the nvcc version and the flags (under ``$TILEC_CACHE_DIR`` or
``~/.cache/tilec``), so recompiling an unchanged model costs nothing; at most two nvcc processes run at once.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import functools
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ..ir.diagnostics import CompileError

DEFAULT_SM = "sm_90"   # the default arch's (analysis/hw/h200.json); builds pass their target's sm_arch


def flags(sm_arch: str = DEFAULT_SM) -> tuple:
    """nvcc's flags for a cubin of ``sm_arch`` with ptxas' resource report."""
    return (f"-arch={sm_arch}", "-cubin", "-Xptxas", "-v")
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


# ptxas' notes that it repaired a wgmma kernel (sm_90a): a wait it injected because registers a wgmma writes
# were used before the kernel's own wait, or wgmmas it serialised. Both are tilec bugs that cost speed.
_WGMMA_REPAIR = re.compile(r"\(C7517\).*|.*wgmma.*serializ.*", re.IGNORECASE)


def check_wgmma_repairs(log: str, what: str) -> None:
    """CompileError naming ptxas' note where it had to repair a wgmma pipeline (docs/hopper.md, Arch strings)."""
    m = _WGMMA_REPAIR.search(log)
    if m:
        raise CompileError(f"ptxas repaired the wgmma pipeline of {what} (a missing wgmma wait or fence): "
                           f"{m.group(0).strip()}")


def cache_dir() -> Path:
    """``$TILEC_CACHE_DIR`` or ``~/.cache/tilec`` (``backend/cache.root``)."""
    from .cache import root
    return root()


def find_nvcc() -> str | None:
    return shutil.which("nvcc")


@functools.lru_cache(maxsize=None)
def nvcc_archs(nvcc: str) -> frozenset:
    """The ``sm_XX`` ``nvcc`` compiles for (``--list-gpu-code``; CUDA 13: sm_75 and up)."""
    r = subprocess.run([nvcc, "--list-gpu-code"], capture_output=True, text=True, timeout=60)
    return frozenset(line.strip() for line in r.stdout.splitlines() if line.strip().startswith("sm_"))


def nvcc_compiles_for(sm_arch: str) -> bool:
    """Whether ``--check-ptx`` can use nvcc for ``sm_arch`` (else ``backend/nvrtc.ptxas_check``: NVRTC's ptxas);
    an arch-specific ``sm_90a`` counts as its ``sm_90`` (``--list-gpu-code`` lists only the portable ones)."""
    from .arch_features import base_arch
    nvcc = find_nvcc()
    return nvcc is None or base_arch(sm_arch) in nvcc_archs(nvcc)   # no nvcc: check_kernels says so


def _nvcc_version(nvcc: str) -> str:
    r = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=60)
    return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else "?"


def _nvcc(nvcc: str, source: str, tmp: str, stem: str, what: str, sm_arch: str = DEFAULT_SM) -> str:
    """Compile ``source`` to ``tmp/stem.cubin``; returns nvcc's log (temp paths stripped). Raises
    CompileError naming ``what`` on failure or timeout."""
    cu, cubin = Path(tmp) / f"{stem}.cu", Path(tmp) / f"{stem}.cubin"
    cu.write_text(source)
    try:
        r = subprocess.run([nvcc, *flags(sm_arch), "-o", str(cubin), str(cu)], capture_output=True, text=True,
                           timeout=TIMEOUT_S, cwd=tmp)
    except subprocess.TimeoutExpired:
        raise CompileError(f"nvcc timed out after {TIMEOUT_S}s compiling {what}") from None
    log = (r.stdout + r.stderr).replace(tmp + os.sep, "")
    if r.returncode != 0:
        raise CompileError(f"nvcc failed on {what} (exit {r.returncode}):\n{log.strip()}")
    return log


def compile_kernel(name: str, source: str, nvcc: str, version: str, cache: Path | None,
                   cubin_out: Path | None = None, sm_arch: str = DEFAULT_SM) -> tuple:
    """Compile one kernel; returns ``(PtxasInfo, log)``. Raises CompileError with nvcc's message on failure.
    ``cubin_out``, when given, receives the cubin (runtimes may load it instead of compiling again)."""
    key = hashlib.sha256("\0".join([version, *flags(sm_arch), source]).encode()).hexdigest()[:32]
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
        cubin = Path(tmp) / f"{name}.cubin"
        log = _nvcc(nvcc, source, tmp, name, f"kernel '{name}'", sm_arch)
        check_wgmma_repairs(log, f"kernel '{name}'")
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


def _batch_key(version: str, names: list, sources: dict, sm_arch: str = DEFAULT_SM) -> str:
    digest = hashlib.sha256("\0".join([version, *flags(sm_arch)]).encode())
    for name in names:
        digest.update(hashlib.sha256(f"{name}\0{sources[name]}".encode()).digest())
    return "batch-" + digest.hexdigest()[:32]


def _link_cubins(cubin: Path, names: list, cubin_dir: Path | None) -> None:
    """Every kernel of a batch gets ``K.cubin``: a hard link to the batch's cubin (a copy where links fail)."""
    if cubin_dir is None:
        return
    first = cubin_dir / f"{names[0]}.cubin"
    shutil.copyfile(cubin, first)
    for name in names[1:]:
        target = cubin_dir / f"{name}.cubin"
        try:
            os.link(first, target)
        except OSError:
            shutil.copyfile(first, target)


def compile_batch(names: list, sources: dict, nvcc: str, version: str, cache: Path | None,
                  cubin_dir: Path | None = None, sm_arch: str = DEFAULT_SM) -> dict:
    """Compile ``names`` as one translation unit; ``{name: PtxasInfo}``. Raises CompileError on any failure
    (the caller then compiles kernel by kernel to name the culprit)."""
    key = _batch_key(version, names, sources, sm_arch)
    entry = cache / "ptxas" / f"{key}.json" if cache is not None else None
    if entry is not None and entry.is_file() and entry.with_suffix(".cubin").is_file():
        try:
            infos = {n: PtxasInfo(**i) for n, i in json.loads(entry.read_text())["infos"].items()}
            if set(infos) == set(names):
                _link_cubins(entry.with_suffix(".cubin"), names, cubin_dir)
                return infos
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache entry is recompiled
    with tempfile.TemporaryDirectory(prefix="tilec-ptxas-") as tmp:
        cubin = Path(tmp) / "batch.cubin"
        log = _nvcc(nvcc, "\n".join(sources[n] for n in names), tmp, "batch", "a batch of kernels", sm_arch)
        check_wgmma_repairs(log, "a batch of kernels")
        parsed = parse_ptxas(log)
        missing = [n for n in names if n not in parsed]
        if missing:
            raise CompileError(f"ptxas printed no resource usage for kernel '{missing[0]}'")
        infos = {n: parsed[n] for n in names}
        _link_cubins(cubin, names, cubin_dir)
        if entry is not None:
            _store(entry, {"infos": {n: asdict(i) for n, i in infos.items()}, "log": log}, cubin)
    return infos


def _chunks(names: list, jobs: int) -> list:
    """``names`` cut into at most ``jobs`` contiguous batches of near-equal size (deterministic)."""
    jobs = max(1, min(jobs, len(names)))
    size = -(-len(names) // jobs)
    return [names[i:i + size] for i in range(0, len(names), size)]


def check_kernels(sources: dict, cubin_dir: Path | None = None, jobs: int = JOBS,
                  use_cache: bool = True, sm_arch: str = DEFAULT_SM) -> dict:
    """``{kernel name: PtxasInfo}`` for ``{kernel name: .cu text}`` compiled for ``sm_arch`` (the build's
    target; ``sm_90a`` for the kernels that need it, ``arch_features``): ``jobs`` batches compiled at once, a
    failing batch redone kernel by kernel.

    The first failing kernel (in the given order) raises its CompileError, so the message is deterministic."""
    from .arch_features import group_by_arch
    nvcc = find_nvcc()
    if nvcc is None:
        raise CompileError("--check-ptx needs nvcc (the CUDA toolkit) on PATH")
    version = _nvcc_version(nvcc)
    cache = cache_dir() if use_cache else None
    names = list(sources)
    if not names:
        return {}

    def one(name, arch):
        out = cubin_dir / f"{name}.cubin" if cubin_dir is not None else None
        try:
            return compile_kernel(name, sources[name], nvcc, version, cache, out, arch)[0]
        except CompileError as e:
            return e

    def batch(arch, chunk):
        try:
            return compile_batch(chunk, sources, nvcc, version, cache, cubin_dir, arch)
        except CompileError:
            return {n: one(n, arch) for n in chunk}  # find (and report) the kernel that breaks the batch

    # Each kernel compiles for its own arch (arch_features.kernel_arch: sm_90a where it uses wgmma); a batch
    # holds one arch. Without such kernels this is one group, batched exactly as before.
    groups = group_by_arch(sm_arch, sources)
    work = [(arch, chunk) for arch, group in groups.items() for chunk in _chunks(group, jobs)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        merged: dict = {}
        for part in pool.map(lambda w: batch(*w), work):
            merged.update(part)
    results = [merged[n] for n in names]
    for r in results:
        if isinstance(r, CompileError):
            raise r
    return dict(zip(names, results))
