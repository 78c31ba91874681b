"""The small device interface the executor drives (emu, CuPy, and fakes in tests).

A device knows memory as raw byte allocations (``alloc``) addressed by (allocation, offset): the executor
places every buffer of a plan in one, copies bytes in and out, fills outputs with poison, and asks for a
typed argument only at launch. That keeps dtypes the device cannot represent (bf16 on CuPy) out of the way.
:class:`HostMemoryDevice` implements the memory half with numpy; the emulator and test fakes add kernels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..analysis.hardware import DEFAULT_ARCH, get_arch
from ..ir.types import np_dtype

POISON_BYTE = 0xFF  # every float type reads all-ones bytes as NaN; ints read -1 (or their max)
ALIGN = 256


@dataclass
class LaunchRecord:
    """What one launch reported: bytes the device counted (None when it cannot count) and a timer that
    :meth:`Device.elapsed` turns into seconds once the device has synchronised."""

    load_bytes: int | None
    store_bytes: int | None
    timer: object = None
    dram_bytes: int | None = None   # the emulator's L2 model: misses + write-backs, bytes (None: not modelled)


class Device:
    """The interface (see the module docstring). ``name`` is the backend name; ``counts_bytes`` says whether
    LaunchRecord byte counts are measured; ``arch`` is the target the plan was built for (the executor sets
    it from plan.json), whose per-block limits a launch is held to."""

    name = "device"
    counts_bytes = False
    arch = DEFAULT_ARCH   # plans record theirs

    def shared_opt_in(self, static: int, dynamic: int) -> int:
        """The dynamic shared-memory opt-in a launch of a kernel declaring ``static`` bytes and passing
        ``dynamic`` needs on this device's target (0: none): ``backend/launch_resources.shared_opt_in``, the
        one rule the CuPy launch and the emulator both follow."""
        from ..backend.launch_resources import shared_opt_in
        return shared_opt_in(int(static), int(dynamic), get_arch(self.arch))

    def alloc(self, nbytes: int):
        raise NotImplementedError

    def write(self, raw, offset: int, array: np.ndarray) -> None:
        raise NotImplementedError

    def read(self, raw, offset: int, dtype: str, shape) -> np.ndarray:
        """Copy to the host (waits for the device: a host sync)."""
        raise NotImplementedError

    def fill(self, raw, offset: int, nbytes: int, byte: int = POISON_BYTE) -> None:
        raise NotImplementedError

    def typed(self, raw, offset: int, dtype: str, shape):
        """The argument a launch passes for this buffer."""
        raise NotImplementedError

    def tensor_map(self, array, attr: dict):
        """The by-value argument of a TMA tensor map over ``array`` (a :meth:`typed` argument) described by
        ``attr`` (a launch step's ``tensor_maps`` entry: ``runtime/tensor_map.from_attr``)."""
        from ..ir.diagnostics import CompileError
        raise CompileError(f"the {self.name} device cannot pass TMA tensor maps (an sm_90 wgmma kernel)")

    def load(self, name: str, source: str, cubin=None):
        """A launchable handle for kernel ``name`` of ``source`` (``cubin``: a prebuilt binary, if any)."""
        raise NotImplementedError

    def launch(self, kernel, name: str, grid, block, smem: int, args: list, timed: bool = False) -> LaunchRecord:
        raise NotImplementedError

    def synchronize(self) -> None:
        pass

    def elapsed(self, timer) -> float:
        return float(timer or 0.0)

    def start_timer(self):
        """A whole-plan timer (CUDA events on a GPU); pass it to :meth:`stop_timer`."""
        return time.perf_counter()

    def stop_timer(self, timer) -> float:
        self.synchronize()
        return time.perf_counter() - timer


class HostMemoryDevice(Device):
    """Device memory that is host memory (numpy): for the emulator and for tests."""

    def alloc(self, nbytes: int) -> np.ndarray:
        # Over-allocate and start at an ALIGN boundary, like cudaMalloc: vector loads need 16-byte alignment.
        base = np.empty(max(nbytes, 1) + ALIGN, np.uint8)
        skip = (-base.ctypes.data) % ALIGN
        return base[skip:skip + max(nbytes, 1)]

    def write(self, raw, offset, array):
        data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
        raw[offset:offset + data.size] = data

    def read(self, raw, offset, dtype, shape):
        return self.typed(raw, offset, dtype, shape).copy()

    def fill(self, raw, offset, nbytes, byte=POISON_BYTE):
        raw[offset:offset + nbytes] = byte

    def typed(self, raw, offset, dtype, shape):
        dt = np_dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        return raw[offset:offset + n].view(dt).reshape(shape)

    def tensor_map(self, array, attr):
        """The emulator's ``TlTensorMap`` bytes over the host array's memory."""
        from .tensor_map import from_attr
        return from_attr(attr, array.ctypes.data).emu_bytes()
