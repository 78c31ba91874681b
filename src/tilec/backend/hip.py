"""The HIP dialect of the one C-style renderer (tinygrad's CUDA and HIP renderers differ only in data), for AMD
targets (``"vendor": "amd"`` in ``analysis/hw/<gpu>.json``; docs/amd.md).

HIP keeps CUDA's thread indices, ``__shared__``, ``__syncthreads`` and atomics, so what differs is data: the
prelude (``hip_prelude.h``), the source suffix (``.hip``), shuffles without masks and with their width
(``__shfl_xor(v, lane, width)``: 64-lane wavefronts), bf16 as ``hip_bfloat16``, and ``__launch_bounds__``,
whose second argument is HIP's minimum *waves per SIMD* (``amdgpu_waves_per_eu``) rather than CUDA's blocks
per SM, so :meth:`HipLanguage.bounds` converts with the target's wave size and SIMDs per CU.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

from ..analysis.hardware import GPUSpec
from .cstyle import CUDA, CStyleLanguage


@dataclass(frozen=True)
class HipLanguage(CStyleLanguage):
    """CUDA's spelling with HIP's differences; ``wave_size`` and ``simds_per_cu`` come from the target."""

    wave_size: int = 64
    simds_per_cu: int = 4
    shfl_xor: str = "__shfl_xor({val}, {lane}, {width})"
    member_thread: str = "tl_thread_x()"
    kernarg_ptr: str = "tl_kernarg_ptr({i})"
    prelude: str = "hip_prelude.h"
    source_suffix: str = ".hip"
    type_map: dict = field(default_factory=lambda: {**CUDA.type_map, "bf16": "hip_bfloat16"})
    to_f32: dict = field(default_factory=lambda: {"f16": "__half2float({})", "bf16": "static_cast<float>({})"})
    from_f32: dict = field(default_factory=lambda: {"f16": "__float2half({})", "bf16": "hip_bfloat16({})"})

    def bounds(self, threads: int, min_blocks: int) -> str:
        """``__launch_bounds__(threads, waves per SIMD)`` for ``min_blocks`` resident blocks per CU."""
        waves = math.ceil(min_blocks * math.ceil(threads / self.wave_size) / self.simds_per_cu)
        return self.launch_bounds.format(threads=threads, min_blocks=max(1, waves))


@functools.lru_cache(maxsize=None)
def hip_language(wave_size: int = 64, simds_per_cu: int = 4) -> HipLanguage:
    return HipLanguage(wave_size=wave_size, simds_per_cu=simds_per_cu)


def language_for(spec: GPUSpec) -> CStyleLanguage:
    """The language kernels for ``spec`` are written in: HIP for an AMD GPU, else CUDA."""
    if spec.is_amd:
        return hip_language(spec.warp_size, spec.sm_partitions)
    return CUDA


def source_suffix(spec: GPUSpec) -> str:
    """``.hip`` or ``.cu``: the suffix of a build's ``kernels/<name>`` sources for ``spec``."""
    return language_for(spec).source_suffix
