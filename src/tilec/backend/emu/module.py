"""``EmuModule``: a ``.cu`` text compiled for the CPU, whose kernels launch on numpy arrays."""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np

from . import build, l2, signature
from .errors import EmuError

ORDERS = {"normal": 0, "reverse": 1, "shuffle": 2}
ERR_LEN = 4096
MAX_SMEM = build.SMEM_CAP   # tl_emu::kSmemCap: the largest per-block shared memory of the GPU specs


@dataclass
class LaunchStats:
    """What one launch did: global bytes moved through TL_LD*/TL_ST* (and __ldg), and its shape."""

    global_load_bytes: int
    global_store_bytes: int
    blocks: int
    threads_per_block: int
    l2: l2.L2Counts | None = None   # the L2 model's counts, when the launch asked for them


def _dims(value, what: str, kernel: str) -> tuple:
    dims = (value,) if isinstance(value, (int, np.integer)) else tuple(value)
    if not 1 <= len(dims) <= 3 or not all(isinstance(d, (int, np.integer)) and d >= 1 for d in dims):
        raise EmuError(f"kernel {kernel}: {what} must be 1 to 3 positive integers, got {value!r}")
    return tuple(int(d) for d in dims) + (1,) * (3 - len(dims))


def _resident(kernel: str, grid3: tuple, concurrent: bool, limit) -> int:
    """The runtime's ``concurrent`` argument: 0 (blocks run independently) or how many blocks may be
    resident at once (the whole grid unless ``limit`` is lower)."""
    if not concurrent:
        return 0
    blocks = grid3[0] * grid3[1] * grid3[2]
    if limit is None:
        return min(blocks, 2**31 - 1)
    if not isinstance(limit, (int, np.integer)) or limit < 1:
        raise EmuError(f"kernel {kernel}: resident_blocks must be a positive integer, got {limit!r}")
    return int(min(blocks, limit, 2**31 - 1))


def default_workers() -> int:
    """OS threads per launch: ``$TILEC_EMU_THREADS`` or the number of cores."""
    env = os.environ.get("TILEC_EMU_THREADS")
    return max(1, int(env)) if env else (os.cpu_count() or 1)


class EmuModule:
    """The kernels of one CUDA (or HIP) source, compiled with g++ and the emulator header (cached by content).
    ``warp_size`` is the target's warp width (``spec.warp_size``: 32 on NVIDIA, 64 on AMD): lanes per warp of
    every shuffle, vote and ``warpSize``."""

    def __init__(self, source: str, cache_dir: str | None = None, warp_size: int = build.DEFAULT_WARP):
        self.source = source
        self.warp_size = warp_size
        self._params = signature.parse_kernels(source)
        self.clusters: dict = signature.kernel_clusters(source)   # {kernel: blocks per cluster}
        self.kernels: list = list(self._params)
        from .batch import declared_shared_bytes
        # {kernel: static shared bytes}; a source of several kernels charges each with all of its arrays
        # (Batch overrides this per source when it compiles sources together).
        self.static_smem: dict = dict.fromkeys(self.kernels, declared_shared_bytes(source) or 0)
        unit = source + signature.appendix(self._params, signature.dynamic_shared(source))
        self.path, self.from_cache = build.build(unit, cache_dir, warp_size)
        self._lib = ctypes.CDLL(str(self.path))
        self._launch = self._lib.tl_emu_launch
        self._launch.restype = ctypes.c_int
        self._launch.argtypes = [
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p,
            ctypes.c_ulonglong, ctypes.c_int, ctypes.c_ulonglong, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
            ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        self.workers = default_workers()

    def launch(self, name, grid, block, args, smem_bytes=0, order="normal", seed=0, check_bounds=True,
               concurrent_blocks=False, smem_optin=0, arch=None, resident_blocks=None,
               l2_model: l2.L2Config | None = None) -> LaunchStats:
        """Run kernel ``name`` over ``grid`` × ``block``. Arrays in ``args`` are passed by pointer (outputs are
        written in place); numpy or Python scalars by value. ``order`` (normal | reverse | shuffle, seeded)
        is the order threads resume in each barrier phase. ``concurrent_blocks`` runs all blocks as fibers
        of one OS thread, so blocks may wait on each other (``tl_wait_geq``); a stall is a deadlock error.
        A kernel declared ``__cluster_dims__(X, 1, 1)`` runs in clusters of X consecutive blocks along x
        (``grid[0]`` must be a multiple of X); this works with ``concurrent_blocks`` too.
        ``smem_optin`` is the dynamic shared memory the launch opted in to (CUDA's
        ``cudaFuncAttributeMaxDynamicSharedMemorySize``; 0: none); a block over the per-block limits of
        ``arch`` (default: tilec's default GPU) fails as the GPU would refuse it (:meth:`check_block_limits`).
        ``resident_blocks`` (with ``concurrent_blocks``: resident-limit mode) lets at most that many blocks be
        live at once, the next starting, in grid order, when one exits, as on a GPU whose SMs hold that many;
        blocks waiting on a block that cannot start deadlock, and that is reported as an error. ``l2_model``
        runs the L2 model (``l2.py``) over this launch's global accesses; its counts are ``LaunchStats.l2``."""
        if name not in self._params:
            raise EmuError(f"no kernel named '{name}' (kernels: {', '.join(self.kernels) or 'none'})")
        if order not in ORDERS:
            raise EmuError(f"kernel {name}: order must be one of {', '.join(ORDERS)}, got {order!r}")
        grid3, block3 = _dims(grid, "grid", name), _dims(block, "block", name)
        resident = _resident(name, grid3, concurrent_blocks, resident_blocks)
        if not 0 <= int(smem_bytes) <= MAX_SMEM:
            raise EmuError(f"kernel {name}: smem_bytes must be in [0, {MAX_SMEM}], got {smem_bytes}")
        self.check_block_limits(name, block3, int(smem_bytes), int(smem_optin), arch)
        params = self._params[name]
        if len(args) != len(params):
            raise EmuError(f"kernel {name} takes {len(params)} arguments, got {len(args)}")
        keep, ranges = [], []
        slots = (ctypes.c_void_p * max(1, len(params)))()
        for i, (p, a) in enumerate(zip(params, args)):
            value = self._pointer(name, p, a, ranges) if p.pointer else self._scalar(name, p, a)
            keep.append(value)
            slots[i] = ctypes.addressof(value)
        range_arr = (ctypes.c_ulonglong * max(1, len(ranges) * 2))(*[x for r in ranges for x in r])
        tramp = ctypes.cast(getattr(self._lib, f"tl_emu_tramp_{name}"), ctypes.c_void_p)
        out = (ctypes.c_ulonglong * 2)()
        err = ctypes.create_string_buffer(ERR_LEN)
        request = l2.arm(self._lib, l2_model) if l2_model is not None else None
        rc = self._launch(tramp, slots, name.encode(), (ctypes.c_uint * 3)(*grid3), (ctypes.c_uint * 3)(*block3),
                          int(smem_bytes), ORDERS[order], int(seed) & (2**64 - 1), int(bool(check_bounds)),
                          len(ranges), range_arr, resident, self.clusters.get(name, 1),
                          self.workers, out, err, ERR_LEN)
        if rc != 0:
            raise EmuError(err.value.decode(errors="replace") or f"kernel {name}: launch failed")
        return LaunchStats(int(out[0]), int(out[1]), grid3[0] * grid3[1] * grid3[2],
                           block3[0] * block3[1] * block3[2],
                           l2.L2Counts.from_request(request) if request is not None else None)

    def shared_size_bytes(self, name: str) -> int:
        """Static shared bytes of kernel ``name``: its ``TL_SHARED`` arrays as declared."""
        return self.static_smem.get(name, 0)

    def check_block_limits(self, name: str, block3: tuple, dynamic: int, opt_in: int, arch=None) -> None:
        """Refuse a block the GPU would: too many threads, or static + dynamic shared memory over the default
        48 KB without an opt-in, over the opt-in, or over the arch's per-block maximum
        (``backend/launch_resources.block_limit_problem``, the rule the compiler checks every build by)."""
        from ...analysis.hardware import DEFAULT_ARCH, get_arch
        from ..launch_resources import block_limit_problem
        threads = block3[0] * block3[1] * block3[2]
        problem = block_limit_problem(threads, self.shared_size_bytes(name), dynamic, opt_in,
                                      get_arch(arch or DEFAULT_ARCH))
        if problem is not None:
            raise EmuError(f"kernel {name}: launch refused: {problem}")

    @staticmethod
    def _pointer(kernel: str, p, a, ranges: list):
        if not isinstance(a, np.ndarray):
            raise EmuError(f"kernel {kernel}: argument '{p.name}' ({p.ctype}) needs a numpy array, got "
                           f"{type(a).__name__}")
        if not a.flags.c_contiguous:
            raise EmuError(f"kernel {kernel}: array for '{p.name}' must be C-contiguous")
        if p.writable and not a.flags.writeable:
            raise EmuError(f"kernel {kernel}: array for '{p.name}' ({p.ctype}) is read-only")
        size = signature.ELEMENT_SIZES.get(p.base)
        if size is not None and size != a.itemsize and not (size > a.itemsize and a.nbytes % size == 0
                                                            and p.base in ("float4", "int4", "float2", "int2")):
            raise EmuError(f"kernel {kernel}: '{p.name}' is {p.ctype} ({size}-byte elements) but the array "
                           f"has dtype {a.dtype}")
        ranges.append((a.ctypes.data, a.ctypes.data + a.nbytes))
        return ctypes.c_void_p(a.ctypes.data)

    @staticmethod
    def _scalar(kernel: str, p, a):
        if p.base in signature.STRUCTS:
            return EmuModule._struct(kernel, p, a)
        if isinstance(a, np.ndarray) and a.ndim > 0:
            raise EmuError(f"kernel {kernel}: argument '{p.name}' ({p.ctype}) is a scalar, got an array")
        dtype = np.dtype(signature.SCALARS[p.base])
        try:
            value = np.array(a).astype(dtype, casting="same_kind" if dtype.kind == "f" else "unsafe")
        except (TypeError, ValueError) as e:
            raise EmuError(f"kernel {kernel}: argument '{p.name}' ({p.ctype}): {e}") from None
        if dtype.kind in "iu" and int(np.array(a)) != int(value):
            raise EmuError(f"kernel {kernel}: argument '{p.name}' = {a!r} does not fit {p.ctype}")
        buf = ctypes.create_string_buffer(max(8, dtype.itemsize))
        ctypes.memmove(buf, value.tobytes(), dtype.itemsize)
        return buf

    @staticmethod
    def _struct(kernel: str, p, a):
        """A by-value struct argument (``signature.STRUCTS``) from its bytes."""
        size = signature.STRUCTS[p.base]
        data = bytes(a) if isinstance(a, (bytes, bytearray)) else (a.tobytes() if isinstance(a, np.ndarray) else None)
        if data is None or len(data) != size:
            raise EmuError(f"kernel {kernel}: argument '{p.name}' ({p.ctype}) needs its {size} bytes, got "
                           f"{type(a).__name__}" + (f" of {len(data)} bytes" if data is not None else ""))
        buf = ctypes.create_string_buffer(size)
        ctypes.memmove(buf, data, size)
        return buf
