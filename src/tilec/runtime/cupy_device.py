"""The ``cupy`` device: kernels as ``cupy.RawModule`` functions on a GPU, buffers in device memory, timing
with CUDA events, everything on one non-blocking stream (so a plan can be captured as a CUDA graph).

Kernels load from the build's ``.cubin`` when ``--check-ptx`` left one, else compile with NVRTC (the pip
wheels', as ``--check-nvrtc`` does), else nvcc (:meth:`CupyDevice.load`).
CuPy has no bfloat16 dtype: bf16 buffers are passed as uint16 (same bytes) and viewed back on the host.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..ir.diagnostics import CompileError
from ..ir.types import np_dtype
from .device import POISON_BYTE, Device, LaunchRecord

NEEDS = "--backend cupy needs CuPy and a GPU"


def _device_dtype(dtype: str) -> np.dtype:
    return np.dtype(np.uint16) if dtype == "bf16" else np_dtype(dtype)


def _cupy_nvrtc_options() -> tuple:
    """Options for CuPy's own NVRTC: C++17 and the wheels' include folders where they are installed (CuPy
    adds -ftz, the arch and the default execution space itself: ``backend/nvrtc_lib.nvrtc_options``)."""
    from ..backend.nvrtc_lib import find_toolchain
    try:
        return ("--std=c++17", *find_toolchain().include_options())
    except CompileError:
        return ("--std=c++17",)  # no wheels: CuPy may still find a toolkit's headers


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
        if isinstance(array, self.cp.ndarray):   # already on the GPU (DLPack/CuPy input): a device-to-device copy
            with self.stream:
                data = self.cp.ascontiguousarray(array).reshape(-1).view(self.cp.uint8)
                raw[offset:offset + data.size] = data
            return
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        raw[offset:offset + data.size].set(data, stream=self.stream)

    def read(self, raw, offset, dtype, shape):
        dt = np_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        host = raw[offset:offset + n].get(stream=self.stream)
        self.stream.synchronize()
        return host.view(dt).reshape(shape)

    def read_device(self, raw, offset, dtype, shape):
        """An output as a CuPy array of its own (a device-to-device copy: the build's buffer is reused by the
        next run), for runs whose inputs came as GPU arrays; bf16 has no CuPy type and comes back to the host."""
        if dtype == "bf16":
            return self.read(raw, offset, dtype, shape)
        with self.stream:
            out = self.typed(raw, offset, dtype, shape).copy()
        self.stream.synchronize()
        return out

    def fill(self, raw, offset, nbytes, byte=POISON_BYTE):
        with self.stream:
            raw[offset:offset + nbytes].fill(byte)

    def typed(self, raw, offset, dtype, shape):
        dt = _device_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        return raw[offset:offset + n].view(dt).reshape(shape)

    def tensor_map(self, array, attr):
        """The driver-encoded ``CUtensorMap`` over the device array, as CuPy passes it by value."""
        from .tensor_map import cupy_arg, from_attr
        return cupy_arg(from_attr(attr, array.data.ptr).encode())

    def load(self, name, source, cubin=None):
        """Kernel ``name`` as a CuPy function, from the first way that works: the build's cubin
        (``--check-ptx``); tilec's NVRTC from the pip wheels with the options ``--check-nvrtc`` checks
        (``backend/nvrtc.py``: needs neither nvcc nor a CUDA toolkit's headers); CuPy's own NVRTC, given the
        wheels' include folders; nvcc, only where it is on PATH. A CompileError lists every failure."""
        cp, errors = self.cp, []
        attempts = []
        if cubin is not None:
            attempts.append(("cubin", lambda: cp.RawModule(path=str(cubin)).get_function(name)))
        attempts.append(("nvrtc", lambda: self._nvrtc_function(name, source)))
        attempts.append(("cupy-nvrtc", lambda: cp.RawModule(code=source, options=_cupy_nvrtc_options(),
                                                            backend="nvrtc").get_function(name)))
        if shutil.which("nvcc"):
            attempts.append(("nvcc", lambda: cp.RawModule(code=source, options=("-std=c++17",),
                                                          backend="nvcc").get_function(name)))
        else:
            errors.append("nvcc: not on PATH")
        for how, make in attempts:
            try:
                return make()  # RawModule compiles lazily: get_function is where its errors surface
            except Exception as e:  # noqa: BLE001 - try the next way of building the kernel
                errors.append(f"{how}: {type(e).__name__}: {str(e).strip()[:2000]}")
        raise CompileError(f"cannot load kernel '{name}' on the GPU:\n" + "\n".join(errors))

    def _nvrtc_function(self, name, source):
        """Compile with tilec's NVRTC for this GPU's ``sm_XX`` and load the cubin. RawModule takes a path and
        CuPy memoizes loaded kernels by path, so each cubin is written under its content's hash, in a folder
        that lives as long as this device."""
        from ..backend.nvrtc import compile_cubin
        cubin = compile_cubin(name, source, f"sm_{self.cp.cuda.Device().compute_capability}")
        if getattr(self, "_cubin_dir", None) is None:
            self._cubin_dir = tempfile.TemporaryDirectory(prefix="tilec-cubins-")
        path = Path(self._cubin_dir.name) / f"{hashlib.sha256(cubin).hexdigest()[:32]}.cubin"
        path.write_bytes(cubin)
        return self.cp.RawModule(path=str(path)).get_function(name)

    def launch(self, kernel, name, grid, block, smem, args, timed=False, concurrent=False):
        # concurrent (a persistent kernel): the executor launches it only after max_active_blocks says its
        # grid is co-resident (runtime/residency.py), else it runs the plan's fallback.
        self._opt_in(kernel, smem)
        timer = None
        if timed:
            start, stop = self.cp.cuda.Event(), self.cp.cuda.Event()
            start.record(self.stream)
        kernel(tuple(grid), tuple(block), tuple(args), shared_mem=smem, stream=self.stream)
        if timed:
            stop.record(self.stream)
            timer = (start, stop)
        return LaunchRecord(None, None, timer)

    def _opt_in(self, kernel, smem: int) -> None:
        """Set the loaded function's opt-in (:meth:`shared_opt_in`; the static part is what the function
        declares, as the driver reports it)."""
        opt_in = self.shared_opt_in(getattr(kernel, "shared_size_bytes", 0), smem)
        if opt_in:
            kernel.max_dynamic_shared_size_bytes = opt_in

    def max_active_blocks(self, kernel, block, smem):
        """Blocks of ``kernel`` (a loaded RawKernel) with ``block`` threads and ``smem`` dynamic shared bytes
        one SM holds at once, by the driver's occupancy calculator (ptxas' registers and static shared memory
        included): what a persistent launch checks first (``runtime/residency.py``)."""
        self._opt_in(kernel, smem)   # as the launch does: without the opt-in the answer could be 0
        threads = int(np.prod(block))
        # RawModule.get_function returns a RawKernel; its .kernel is the cupy.cuda.function.Function whose
        # .ptr is the CUfunction handle (cupy/_core/raw.pyx, cupy/cuda/function.pxd), what
        # driver.occupancyMaxActiveBlocksPerMultiprocessor(func, blockSize, dynamicSMemSize) takes
        # (cupy_backends/cuda/api/driver.pyx).
        ptr = kernel.kernel.ptr
        return self.cp.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(ptr, threads, int(smem))

    def multiprocessor_count(self):
        """SMs of the current device (what co-residency is multiplied by)."""
        if not hasattr(self, "_sms"):
            props = self.cp.cuda.runtime.getDeviceProperties(self.cp.cuda.Device().id)
            self._sms = int(props["multiProcessorCount"])
        return self._sms

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
