"""Arch-specific compile targets: the ``sm_90a`` a kernel that issues ``wgmma`` or ``setmaxnreg`` needs.

ptxas accepts ``wgmma.mma_async`` and ``setmaxnreg`` only for the arch-specific target ``sm_90a`` (docs/hopper.md,
"Arch strings"), whose cubins run on sm_90 GPUs only. A build's target names the portable arch
(``analysis/hw/h100.json``: ``"sm_arch": "sm_90"``); a kernel that needs the features says so with
:data:`MARK`, a comment line at the top of its body that the wgmma engine writes (``lower/wgmma_engine``).
Every compile path (``ptxas.check_kernels``, ``nvrtc.compile_kernel``/``check_kernels``, the CuPy loader,
``tilec inspect``) asks :func:`kernel_arch` for the arch of each kernel, so a build whose kernels never use
the features compiles exactly as before, and the source alone says what a kernel needs: a cubin compiled
from it, on any machine, gets the same arch.
"""
from __future__ import annotations

from ..ir.diagnostics import CompileError

MARK = "// tilec: arch-specific kernel (wgmma, setmaxnreg): compiled for sm_90a"
# The portable arch -> its arch-specific variant where tilec emits the features (sm_100's tcgen05 is not).
FEATURE_ARCHS = {"sm_90": "sm_90a"}


def needs_arch_features(source: str) -> bool:
    """Whether the kernel text ``source`` carries :data:`MARK`."""
    return MARK in source


def kernel_arch(sm_arch: str, source: str) -> str:
    """The arch to compile ``source`` for on a target of ``sm_arch``: ``sm_90a`` for a marked kernel on
    ``sm_90`` (or already ``sm_90a``), else ``sm_arch`` unchanged. A marked kernel for any other target is a
    CompileError (the engine selects wgmma only for sm_90)."""
    if not needs_arch_features(source) or sm_arch in FEATURE_ARCHS.values():
        return sm_arch
    if sm_arch not in FEATURE_ARCHS:
        raise CompileError(f"a kernel that uses wgmma/setmaxnreg needs sm_90a; the target is {sm_arch}")
    return FEATURE_ARCHS[sm_arch]


def base_arch(sm_arch: str) -> str:
    """``sm_arch`` without its feature suffix (``sm_90a`` -> ``sm_90``, ``sm_100f`` -> ``sm_100``): what
    ``nvcc --list-gpu-code`` and ``nvrtcGetSupportedArchs`` list."""
    if sm_arch.startswith("sm_") and sm_arch[-1:] in ("a", "f") and sm_arch[3:-1].isdigit():
        return sm_arch[:-1]
    return sm_arch


def group_by_arch(sm_arch: str, sources: dict) -> dict:
    """``{compile arch: [kernel names]}`` for ``{name: source}``, names in their given order and archs in
    order of first appearance (a build without marked kernels is one group: the same batches as before)."""
    groups: dict = {}
    for name, text in sources.items():
        groups.setdefault(kernel_arch(sm_arch, text), []).append(name)
    return groups
