"""One way to time every system: CUDA events on the stream the work runs on, warm-up, then the median of N
runs hot (back to back) and N runs cold (L2 flushed before each run, outside the timed interval).

A ``Clock`` marks points on a stream and measures between two marks; a ``Flush`` writes at least twice the L2
size of junk on the same stream, so by the time the next run's start event fires the L2 holds none of its data
(the approach of Triton's ``do_bench`` and nvbench's L2 flush, sized from the device attribute). The dry run
uses ``WallClock`` and a host-memory flush: the emulator is synchronous, and the code path is the same.
"""
from __future__ import annotations

import statistics
import time


class WallClock:
    """Host wall time (for synchronous work: the emulator, onnxruntime on the CPU, torch on the CPU)."""

    name = "wall clock"

    def mark(self):
        return time.perf_counter()

    def ms(self, start, stop) -> float:
        return (stop - start) * 1e3


class CupyClock:
    """CUDA events recorded on a CuPy stream."""

    name = "CUDA events"

    def __init__(self, stream):
        import cupy
        self.cp, self.stream = cupy, stream

    def mark(self):
        ev = self.cp.cuda.Event()
        ev.record(self.stream)
        return ev

    def ms(self, start, stop) -> float:
        stop.synchronize()
        return float(self.cp.cuda.get_elapsed_time(start, stop))


class TorchClock:
    """CUDA events recorded on torch's current stream."""

    name = "CUDA events"

    def __init__(self):
        import torch
        self.torch = torch

    def mark(self):
        ev = self.torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def ms(self, start, stop) -> float:
        stop.synchronize()
        return float(start.elapsed_time(stop))


class Flush:
    """``Flush(nbytes, fill)``: ``fill(value)`` overwrites a buffer of ``nbytes`` (>= 2x L2) on the timed stream;
    the value changes every call so no write is elided."""

    def __init__(self, nbytes: int, fill):
        self.nbytes, self._fill, self._n = nbytes, fill, 0

    def __call__(self) -> None:
        self._n = (self._n + 1) % 251
        self._fill(self._n)


def flush_bytes(l2_bytes: int) -> int:
    """Junk to write between cold runs: twice the L2 (which is not strictly LRU), at least 64 MiB."""
    return max(2 * int(l2_bytes), 64 << 20)


def cupy_flush(stream, l2_bytes: int) -> Flush:
    import cupy
    n = flush_bytes(l2_bytes)
    with stream:
        buf = cupy.empty(n, dtype=cupy.uint8)

    def fill(v):
        with stream:
            buf.fill(v)
    return Flush(n, fill)


def torch_flush(l2_bytes: int) -> Flush:
    import torch
    n = flush_bytes(l2_bytes)
    buf = torch.empty(n, dtype=torch.uint8, device="cuda")
    return Flush(n, lambda v: buf.fill_(v))


def host_flush(l2_bytes: int) -> Flush:
    """The dry run's flush: the same number of bytes written in host memory."""
    import numpy as np
    n = flush_bytes(l2_bytes)
    buf = np.empty(n, dtype=np.uint8)
    return Flush(n, buf.fill)


def hot_cold(fn, clock, flush: Flush, runs: int, warmup: int) -> dict:
    """Median ms of ``fn`` over ``runs`` back-to-back runs (hot) and ``runs`` runs each after ``flush`` (cold),
    after ``warmup`` untimed runs; with the spread (min, max) so a noisy row shows."""
    for _ in range(warmup):
        fn()
    out = {"runs": runs, "warmup": warmup, "clock": clock.name, "flush_bytes": flush.nbytes}
    for label, before in (("hot", None), ("cold", flush)):
        times = []
        for _ in range(runs):
            if before is not None:
                before()
            a = clock.mark()
            fn()
            b = clock.mark()
            times.append(clock.ms(a, b))
        out[f"{label}_ms"] = statistics.median(times) if times else None
        out[f"{label}_range_ms"] = [min(times), max(times)] if times else None
    return out
