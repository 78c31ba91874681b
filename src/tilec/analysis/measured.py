"""A calibration run's numbers: ``analysis/hw/<gpu>.measured.json`` overrides the spec's modelled constants.

``make gpu-calibrate`` (on a lent GPU) measures what the latency model (``analysis/latency.py``) assumes:
DRAM and L2 bandwidth, FFMA and tensor-core throughput, launch latency, block and grid barrier latency. It
writes them, with where and when they were measured, as

    {"arch": "h200", "device": "NVIDIA H200", "measured_at": "2026-12-07T16:00:00Z",
     "constants": {"dram_bytes_per_s": 4.3e12, "launch_overhead_us": 2.1, ...}}

and :func:`effective_spec` gives the model the spec with those constants in place. A file that is not such
an object, names another arch, or holds a constant the model does not know or a value that is not a positive
number is an error in the input (``CompileError``), never a silent fallback.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

from ..ir.diagnostics import CompileError
from .hardware import HW_DIR, GPUSpec

# The spec's constants a calibration may measure (and the latency model uses).
MEASURABLE = frozenset({
    "dram_bytes_per_s", "l2_bytes_per_clk", "fp32_flops", "fp16_tensor_flops", "bf16_tensor_flops",
    "tf32_tensor_flops", "smem_bytes_per_clk_per_sm", "issue_per_clk_per_sm", "sfu_per_clk_per_sm",
    "launch_overhead_us", "grid_barrier_us", "barrier_cycles", "saturating_warps_per_sm"})


def measured_path(arch: str, hw_dir: Path | None = None) -> Path:
    return Path(hw_dir or HW_DIR) / f"{arch}.measured.json"


def load_measured(arch: str, hw_dir: Path | None = None) -> dict | None:
    """The checked ``constants`` of ``<arch>.measured.json`` in ``hw_dir`` (default ``analysis/hw``), or None
    when there is no such file."""
    path = measured_path(arch, hw_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CompileError(f"{path}: not a readable JSON file: {e}") from None
    return check_measured(data, arch, path)


def check_measured(data, arch: str, path) -> dict:
    """The ``constants`` of a measured file's content ``data`` (read from ``path``), checked."""
    if not isinstance(data, dict) or not isinstance(data.get("constants"), dict):
        raise CompileError(f"{path}: expected an object with a 'constants' object")
    if data.get("arch") != arch:
        raise CompileError(f"{path}: measured on arch {data.get('arch')!r}, not {arch!r}")
    constants = data["constants"]
    unknown = sorted(set(constants) - MEASURABLE)
    if unknown:
        raise CompileError(f"{path}: unknown constant(s) {', '.join(unknown)} "
                           f"(measurable: {', '.join(sorted(MEASURABLE))})")
    for key, value in constants.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise CompileError(f"{path}: constant {key} = {value!r} is not a positive number")
    return dict(constants)


def effective_spec(spec: GPUSpec, hw_dir: Path | None = None) -> GPUSpec:
    """``spec`` with its measured constants (``<arch>.measured.json``) in place of the modelled ones."""
    constants = load_measured(spec.arch, hw_dir)
    if not constants:
        return spec
    types = {f.name: f.type for f in dataclasses.fields(GPUSpec)}
    return dataclasses.replace(spec, **{k: (int(v) if types[k] in ("int", int) else float(v))
                                        for k, v in constants.items()})
