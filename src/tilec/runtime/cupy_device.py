"""The ``cupy`` device: kernels as ``cupy.RawModule`` functions on a GPU, buffers in device memory, timing
with CUDA events, everything on one non-blocking stream (so a plan can be captured as a CUDA graph).

Kernels load from the build's ``.cubin`` when ``--check-ptx`` left one, else compile with NVRTC, else nvcc.
CuPy has no bfloat16 dtype: bf16 buffers are passed as uint16 (same bytes) and viewed back on the host.
"""
from __future__ import annotations

import numpy as np

from ..ir.diagnostics import CompileError
from ..ir.types import np_dtype
from .device import POISON_BYTE, Device, LaunchRecord

NEEDS = "--backend cupy needs CuPy and a GPU"
SMEM_DEFAULT_LIMIT = 48 * 1024  # above this a kernel must opt in to more dynamic shared memory


def _device_dtype(dtype: str) -> np.dtype:
    return np.dtype(np.uint16) if dtype == "bf16" else np_dtype(dtype)


class CupyDevice(Device):
    """See the module docstring. Raises CompileError(NEEDS) where CuPy or a GPU is missing."""

    name = "cupy"
    counts_bytes = False

    def __init__(self):
        try:
            import cupy
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no device")
        except Exception as e:  # noqa: BLE001 - ImportError, CUDARuntimeError, driver errors all mean "no GPU"
            raise CompileError(f"{NEEDS} ({type(e).__name__}: {e})") from None
        self.cp = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def alloc(self, nbytes):
        return self.cp.empty(max(nbytes, 1), self.cp.uint8)  # the pool's blocks are 256-byte aligned

    def write(self, raw, offset, array):
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        raw[offset:offset + data.size].set(data, stream=self.stream)

    def read(self, raw, offset, dtype, shape):
        dt = np_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        host = raw[offset:offset + n].get(stream=self.stream)
        self.stream.synchronize()
        return host.view(dt).reshape(shape)

    def fill(self, raw, offset, nbytes, byte=POISON_BYTE):
        with self.stream:
            raw[offset:offset + nbytes].fill(byte)

    def typed(self, raw, offset, dtype, shape):
        dt = _device_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        return raw[offset:offset + n].view(dt).reshape(shape)

    def load(self, name, source, cubin=None):
        cp, errors = self.cp, []
        attempts = []
        if cubin is not None:
            attempts.append(("cubin", lambda: cp.RawModule(path=str(cubin))))
        attempts.append(("nvrtc", lambda: cp.RawModule(code=source, options=("--std=c++17",), backend="nvrtc")))
        attempts.append(("nvcc", lambda: cp.RawModule(code=source, options=("-std=c++17",), backend="nvcc")))
        for how, make in attempts:
            try:
                fn = make().get_function(name)  # compiles lazily: errors surface here
                return fn
            except Exception as e:  # noqa: BLE001 - try the next way of building the kernel
                errors.append(f"{how}: {type(e).__name__}: {str(e).strip()[:2000]}")
        raise CompileError(f"cannot load kernel '{name}' on the GPU:\n" + "\n".join(errors))

    def launch(self, kernel, name, grid, block, smem, args, timed=False, concurrent=False):
        # concurrent (a persistent kernel): on a GPU every block of its grid is resident by construction.
        if smem > SMEM_DEFAULT_LIMIT:
            kernel.max_dynamic_shared_size_bytes = smem
        timer = None
        if timed:
            start, stop = self.cp.cuda.Event(), self.cp.cuda.Event()
            start.record(self.stream)
        kernel(tuple(grid), tuple(block), tuple(args), shared_mem=smem, stream=self.stream)
        if timed:
            stop.record(self.stream)
            timer = (start, stop)
        return LaunchRecord(None, None, timer)

    def synchronize(self):
        self.stream.synchronize()

    def elapsed(self, timer):
        if timer is None:
            return 0.0
        start, stop = timer
        return self.cp.cuda.get_elapsed_time(start, stop) / 1e3

    def start_timer(self):
        ev = self.cp.cuda.Event()
        ev.record(self.stream)
        return ev

    def stop_timer(self, timer):
        ev = self.cp.cuda.Event()
        ev.record(self.stream)
        ev.synchronize()
        return self.cp.cuda.get_elapsed_time(timer, ev) / 1e3

    def capture(self, fn):
        """A CUDA graph of what ``fn()`` enqueues on the stream; ``graph.launch(stream)`` replays it."""
        self.stream.begin_capture()
        try:
            fn()
        finally:
            graph = self.stream.end_capture()
        return graph

    def replay(self, graph):
        graph.launch(self.stream)
