"""Cell texts and header lines shared by ``make gpu-check`` and ``make gpu-bench`` tables."""
from __future__ import annotations

import re

TIMING_NOTE = ("Timing: CUDA events on the stream the work runs on (tilec: the executor's stream, replayed as a "
               "CUDA graph where the plan has no host ops; onnxruntime: its CUDA provider on a stream we pass as "
               "`user_compute_stream`, I/O bound on the device, events around `run_with_iobinding`; torch: the "
               "current stream), after warm-up; *hot* is the median of N back-to-back runs, *cold* the median of N "
               "runs each after writing 2x the L2 size of junk on that stream (outside the timed interval). "
               "Dry run: the emulator / CPU, wall clock, the same code path.")


def status(r: dict) -> str:
    """``ok``, or the status in bold with why (timeout, crashed, failed, wrong, skipped)."""
    if r.get("status") == "ok":
        return "ok"
    return f"**{r.get('status', '?')}**: {r.get('error') or ''}"


def ms(r: dict, key: str) -> str:
    v = r.get(key)
    return "-" if v is None else f"{v:.4f}" if v < 1 else f"{v:.3f}"


def num(v, fmt: str = ".1e") -> str:
    return "-" if v is None else format(v, fmt)


def gpu_slug(name: str) -> str:
    """``NVIDIA H200`` -> ``nvidia-h200`` (for file names)."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def machine_line(p: dict) -> str:
    """One line on what the run measured on, from the ``probe`` row."""
    if p.get("status") != "ok":
        return f"Machine: probe {status(p)}"
    v = p.get("versions", {})
    gpu = p.get("gpu", "?")
    if gpu != "dry-run" and p.get("vendor") == "amd":
        gpu += f" ({p.get('isa') or '?'}, {p.get('sms')} CUs, L2 {(p.get('l2_bytes') or 0) / 2**20:.0f} MiB, driver " \
               f"{p.get('driver')}, HIP runtime {p.get('runtime')})"
    elif gpu != "dry-run":
        gpu += f" (cc {p.get('cc')}, {p.get('sms')} SMs, L2 {(p.get('l2_bytes') or 0) / 2**20:.0f} MiB, driver " \
               f"{p.get('driver')}, CUDA runtime {p.get('runtime')})"
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    return f"Machine: {gpu}; Python {p.get('python')}; {libs}; onnxruntime providers {p.get('ort_providers')}."
