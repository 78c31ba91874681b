"""Compile the kernels of a build together: one translation unit and one g++ call for everything loaded
before the first launch, instead of one per kernel.

With the runtime in its own library and the header precompiled, what is left of a kernel's compile is
mostly the compiler's start-up and the header load, paid once per g++ call; a batch pays it once. A
``Batch`` collects sources (``add`` gives a ``LazyModule`` whose kernel names are known at once), and the
first launch of any of them compiles all pending ones as one ``EmuModule``. The batch's ``.so`` is cached by
its content like any unit, so running the same build again finds it.

A batch is only an optimisation, so anything that could make it differ from separate compiles falls back to
them: a source with preprocessor directives of its own beyond the include-guarded prelude (a macro would
leak into the sources after it), kernel or dynamic-shared-array names that clash, or a batch that does not
compile, which is then compiled source by source, so a compile error names the kernel it belongs to.

Every ``TL_SHARED`` site of a translation unit gets its own offset in one per-block arena of ``MAX_SMEM``
bytes (``emu_api.h``), so a batch is split into groups whose summed ``TL_SHARED`` bytes fit it; otherwise a
build of many kernels, each well under the limit, would fail as if one kernel needed them all.
"""
from __future__ import annotations

import re
import threading

from . import signature
from .build import DEFAULT_WARP
from .errors import EmuError
from .module import MAX_SMEM, EmuModule

# The include-guarded prelude atop every source: CUDA's, or HIP's for an AMD target (docs/amd.md).
_PRELUDE = re.compile(r"#ifndef\s+(TILEC_(?:CUDA|HIP)_PRELUDE_H)\b.*?#endif\s*//\s*\1\b", re.S)
_DIRECTIVE = re.compile(r"^\s*#\s*(?!pragma\b)\w+", re.M)
_SHARED = re.compile(r"\bTL_SHARED\(\s*([^,()]+?)\s*,\s*\w+\s*,\s*([^;()]*?)\s*\)\s*;")
_SIZES = {"float": 4, "int": 4, "unsigned": 4, "unsigned int": 4, "int32_t": 4, "uint32_t": 4, "half": 2,
          "__half": 2, "__nv_bfloat16": 2, "half2": 4, "__half2": 4, "double": 8, "long long": 8, "int64_t": 8,
          "uint64_t": 8, "float2": 8, "float4": 16, "int4": 16, "bool": 1, "char": 1, "unsigned char": 1,
          "signed char": 1, "int8_t": 1, "uint8_t": 1, "short": 2, "int16_t": 2, "uint16_t": 2}


def shared_bytes(source: str) -> int:
    """``TL_SHARED`` arena bytes ``source`` registers (each site rounded up to 16, as ``shared_register``
    does); ``MAX_SMEM`` when a site's type or extents are not plain enough to size, so it goes alone."""
    sites = _shared_sites(source)
    return MAX_SMEM if sites is None else sum((n + 15) & ~15 for n in sites)


def declared_shared_bytes(source: str) -> int | None:
    """Bytes of the ``TL_SHARED`` arrays ``source`` declares, unpadded (what ptxas counts as the kernel's
    static shared memory); None when a site cannot be sized."""
    sites = _shared_sites(source)
    return None if sites is None else sum(sites)


def _shared_sites(source: str) -> list | None:
    """Bytes of each ``TL_SHARED`` site of ``source``, or None when one's type or extents are not plain."""
    out = []
    for type_, dims in _SHARED.findall(signature.strip_comments(source)):
        extents = re.fullmatch(r"(?:\[\s*\d+\s*\])+", dims)
        if type_ not in _SIZES or not extents:
            return None
        n = _SIZES[type_]
        for d in re.findall(r"\d+", dims):
            n *= int(d)
        out.append(n)
    return out


def shared_groups(sources: list) -> list:
    """``sources`` (objects with ``.source``) cut, in order, into runs whose ``shared_bytes`` sum fits
    ``MAX_SMEM``: one translation unit each."""
    groups, room = [], 0
    for p in sources:
        need = shared_bytes(p.source)
        if not groups or need > room:
            groups.append([])
            room = MAX_SMEM
        groups[-1].append(p)
        room -= need
    return groups


def batchable(source: str) -> bool:
    """Whether ``source`` can share a translation unit: no directive but ``#pragma`` outside the prelude."""
    return not _DIRECTIVE.search(signature.strip_comments(_PRELUDE.sub(" ", source)))


class EmuBuildError(EmuError):
    """A source of a batch that did not compile (raised when one of its kernels is first used)."""


class LazyModule:
    """One source of a ``Batch``: its kernel names now, its compiled module on first launch."""

    def __init__(self, batch: Batch, source: str, label: str):
        self.source, self.label, self._batch = source, label, batch
        self.kernels: list = list(signature.parse_kernels(source))   # bad signatures fail at load time
        # Static shared bytes of each kernel (this source's TL_SHARED arrays; 0 when unsizable), known
        # without compiling, as the driver's CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES is on a GPU. Read on every
        # launch, so sized once here.
        self.static_smem = declared_shared_bytes(source) or 0
        self._module: EmuModule | None = None
        self._error: EmuError | None = None

    def module(self) -> EmuModule:
        """The compiled module (compiling this batch's pending sources first)."""
        if self._module is None and self._error is None:
            self._batch.compile()
        if self._error is not None:
            raise EmuBuildError(str(self._error))
        return self._module

    def launch(self, name, grid, block, args, **kwargs):
        """``EmuModule.launch`` on the compiled module."""
        return self.module().launch(name, grid, block, args, **kwargs)

    def shared_size_bytes(self, name: str) -> int:
        """Static shared bytes of kernel ``name`` (see ``static_smem``)."""
        return self.static_smem


class Batch:
    """Sources waiting to be compiled together into ``cache_dir``, for warps of ``warp_size`` lanes."""

    def __init__(self, cache_dir: str | None = None, warp_size: int = DEFAULT_WARP):
        self.cache_dir = cache_dir
        self.warp_size = warp_size
        self._pending: list = []
        self._lock = threading.Lock()

    def add(self, source: str, label: str = "kernel") -> LazyModule:
        """A ``LazyModule`` for ``source``; ``label`` (a file-like name) is what compiler messages cite."""
        lazy = LazyModule(self, source, label)
        with self._lock:
            self._pending.append(lazy)
        return lazy

    def compile(self) -> None:
        """Compile every pending source: together when possible, else one by one."""
        with self._lock:
            pending, self._pending = self._pending, []
            for group in shared_groups([p for p in pending if batchable(p.source)]):
                if len(group) > 1:
                    self._together(group)
            pending = [p for p in pending if p._module is None]
            for p in pending:
                try:
                    p._module = EmuModule(p.source, cache_dir=self.cache_dir, warp_size=self.warp_size)
                except EmuError as e:
                    p._error = e

    def _together(self, sources: list) -> bool:
        names = [k for p in sources for k in p.kernels]
        if len(set(names)) != len(names):
            return False
        text = "".join(f'#line 1 "{_label(p.label)}"\n{p.source}\n' for p in sources)
        try:
            module = EmuModule(text, cache_dir=self.cache_dir, warp_size=self.warp_size)
        except EmuError:
            return False
        for p in sources:
            p._module = module
            module.static_smem.update(dict.fromkeys(p.kernels, p.static_smem))
        return True


def _label(label: str) -> str:
    """A file name safe inside a ``#line`` directive (model names can hold anything)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", label)[:80] or "kernel"
