"""The speed of light: the time no schedule can beat on a GPU, from the arch spec (issue #18).

For work of ``flops`` FLOPs that must move ``bytes`` through DRAM at least once, the bound is
``max(flops / peak(precision), bytes / DRAM bandwidth)``. The peak is the one the data's type allows on
that GPU: tensor cores for f16 / bf16 operands (``fp16_tensor_flops`` / ``bf16_tensor_flops``), FFMA for f32
(tilec keeps an f32 model exact f32, so TF32 is not assumed), except that a kernel whose lowering put its
products on tensor cores (``latency.tensor_core_type``: a tf32 GEMM of ``--precision tf32``, an f16 GEMM with
f32 epilogue operands) is bounded by that type's tensor peak, which its modelled time also uses. It is a bound
on the hardware, not a model of tilec's kernels: ``x SOL`` (measured or modelled time over it) says how far a
build is from it.

Per build (report.json totals): the FLOPs of every launch, each at its kernel's peak, against the plan's
lower-bound bytes (every input, weight and output once). Per kernel: its FLOPs against the bytes of its
parameters, each once.
"""
from __future__ import annotations

import math

from ..ir.types import itemsize
from .hardware import GPUSpec

FLOAT_TYPES = ("f16", "bf16", "f32", "f64")


def peak_flops(spec: GPUSpec, dtype: str) -> float:
    """FLOP/s a GPU reaches on ``dtype`` operands: tensor cores for f16/bf16 where it has them, else FFMA."""
    tensor = spec.tensor_core_flops(dtype) if dtype in ("f16", "bf16") else 0.0
    return tensor or spec.fp32_flops


def bound_seconds(spec: GPUSpec, flops: float, nbytes: float, dtype: str = "f32") -> float:
    """``max(flops / peak(dtype), nbytes / DRAM bandwidth)`` in seconds."""
    return max(flops / peak_flops(spec, dtype), nbytes / spec.dram_bytes_per_s)


def compute_dtype(kernel) -> str:
    """The operand type a ``kernel.func`` computes in: f32 if any floating input is wider than 16 bits, else
    f16 / bf16 (the narrowest type decides nothing: one f32 operand keeps the products in f32)."""
    types = [p.get("dtype") for p in kernel.attributes.get("params", ()) if p.get("role") == "in"]
    floats = [t for t in types if t in FLOAT_TYPES]
    if not floats or any(t in ("f32", "f64") for t in floats):
        return "f32"
    return "bf16" if "bf16" in floats else "f16"


def param_bytes(kernel) -> int:
    """Bytes of a ``kernel.func``'s tensor parameters, each once: what one launch must move at least."""
    return sum(math.prod(p["shape"]) * itemsize(p["dtype"]) for p in kernel.attributes.get("params", ())
               if "shape" in p and "dtype" in p)


def kernel_peak(spec: GPUSpec, kernel) -> float:
    """FLOP/s of ``kernel``'s products: its tensor-core type's peak where its lowering put them on tensor
    cores (and the spec has that peak), else :func:`peak_flops` of its operands' type."""
    from .latency import tensor_core_type
    tensor = spec.tensor_core_flops(tensor_core_type(kernel.attributes))
    return tensor or peak_flops(spec, compute_dtype(kernel))


def kernel_seconds(spec: GPUSpec, kernel) -> float:
    """One launch of ``kernel`` at the speed of light."""
    flops = float(kernel.attributes.get("flops", 0))
    return max(flops / kernel_peak(spec, kernel), param_bytes(kernel) / spec.dram_bytes_per_s)


def build_seconds(spec: GPUSpec, kernels: list, launches: dict, lower_bound_bytes: int) -> float:
    """A whole build: every launch's FLOPs at its kernel's peak, against the plan's lower-bound bytes."""
    compute = sum(float(k.attributes.get("flops", 0)) * launches.get(k.sym_name, 0)
                  / kernel_peak(spec, k) for k in kernels)
    return max(compute, lower_bound_bytes / spec.dram_bytes_per_s)
