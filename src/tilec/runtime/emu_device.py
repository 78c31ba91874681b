"""The ``emu`` device: kernels run in tilec's CUDA emulator (``tilec.backend.emu``), memory is numpy.

The emulator counts every global load and store, so runs on this device report measured bytes."""
from __future__ import annotations

import hashlib
import math
import time

from ..ir.diagnostics import CompileError
from .device import HostMemoryDevice, LaunchRecord

ORDERS = ("normal", "reverse", "shuffle")

# Emulator modules by source hash: compiling is the slow part, and runs in one process (tests, repeated
# timings) see the same kernels again. Loads only queue a source in its cache folder's batch; the first
# launch compiles everything queued in one g++ call (tilec.backend.emu.batch).
_MODULES: dict = {}
_BATCHES: dict = {}


class EmuDevice(HostMemoryDevice):
    """Runs launches with ``EmuModule.launch``; ``order`` is the block/thread schedule (normal, reverse or
    shuffle with ``seed``), which exposes kernels that depend on an execution order CUDA does not promise.

    ``resident_limit``: a persistent launch runs only as many blocks at once as the GPU would hold (the
    executor passes ``runtime/residency.ResidentLimit``: the arch spec, ptxas' registers and shared memory),
    on ``num_sms`` SMs (default: the arch's); a grid that needs more deadlocks, and the error names the
    kernel and the numbers. The executor never takes a fallback here: this mode is how CI finds such grids.

    ``l2_model`` (on by default) runs the emulator's L2 model on every launch (``backend/emu/l2.py``): the
    target's L2, blocks in waves of SMs x resident blocks per SM; each LaunchRecord carries its DRAM bytes."""

    name = "emu"
    counts_bytes = True

    def __init__(self, order: str = "normal", seed: int = 0, check_bounds: bool = True, cache_dir=None,
                 resident_limit: bool = False, num_sms: int | None = None, l2_model: bool = True):
        if order not in ORDERS:
            raise CompileError(f"unknown emulator order '{order}' (available: {', '.join(ORDERS)})")
        try:
            from ..backend import emu
        except ImportError as e:
            raise CompileError(f"the CUDA emulator is not available: {e}") from None
        self.emu = emu
        self.order, self.seed, self.check_bounds = order, seed, check_bounds
        if num_sms is not None and (not resident_limit or num_sms < 1):
            raise CompileError("an emulated SM count needs the resident-limit mode and is at least 1")
        self.resident_limit, self.num_sms = resident_limit, num_sms
        self.l2_model = l2_model
        if cache_dir is None:
            from ..backend.ptxas import cache_dir as default_cache
            cache_dir = default_cache() / "emu"
        self.cache_dir = str(cache_dir)

    def load(self, name, source, cubin=None):
        from ..analysis.hardware import get_arch
        warp = get_arch(self.arch).warp_size   # the target's warp (wavefront) width: lanes per emulated warp
        key = (hashlib.sha256(source.encode()).hexdigest(), warp)
        mod = _MODULES.get(key)
        if mod is None:
            batch = _BATCHES.get((self.cache_dir, warp))
            if batch is None:
                batch = _BATCHES[(self.cache_dir, warp)] = self.emu.Batch(self.cache_dir, warp_size=warp)
            try:
                mod = batch.add(source, f"{name}.cu")
            except self.emu.EmuError as e:
                raise CompileError(f"emulator could not build kernel '{name}': {e}") from None
            _MODULES[key] = mod
        if name not in mod.kernels:
            raise CompileError(f"kernel '{name}' is not in its source (found: {', '.join(mod.kernels)})")
        return mod

    def launch(self, kernel, name, grid, block, smem, args, timed=False, concurrent=False, resident=None):
        """``concurrent``: all blocks are live at once (a persistent kernel's vEUs wait on each other);
        ``resident`` (resident-limit mode): a ResidentLimit, at most that many of them."""
        start = time.perf_counter()
        limit = _resident_blocks(name, resident) if concurrent and resident is not None else None
        # The opt-in as the CuPy device takes it, so the emulator refuses what a GPU would: a block over the
        # per-block limits of the plan's target (Executor sets self.arch).
        opt_in = self.shared_opt_in(kernel.shared_size_bytes(name), smem)
        l2 = self._l2_config(kernel.shared_size_bytes(name) + smem, grid, block, limit) if self.l2_model else None
        try:
            st = kernel.launch(name, tuple(grid), tuple(block), args, smem_bytes=smem, order=self.order,
                               seed=self.seed, check_bounds=self.check_bounds, concurrent_blocks=concurrent,
                               smem_optin=opt_in, arch=self.arch, resident_blocks=limit, l2_model=l2)
        except self.emu.EmuBuildError as e:
            raise CompileError(f"emulator could not build kernel '{name}': {e}") from None
        except self.emu.EmuError as e:
            if limit is not None and limit < math.prod(grid):
                raise CompileError(f"persistent kernel '{name}' cannot be co-resident: its {math.prod(grid)} "
                                   f"blocks wait on each other, but the GPU holds {resident.describe()} "
                                   f"(emulator resident-limit mode): {e}") from None
            raise CompileError(f"kernel '{name}' failed in the emulator: {e}") from None
        return LaunchRecord(st.global_load_bytes, st.global_store_bytes, time.perf_counter() - start,
                            st.l2.dram_bytes if st.l2 is not None else None)

    def _l2_config(self, smem: int, grid, block, resident_limit: int | None):
        """The L2 model for one launch on the target: a wave is as many blocks as the GPU holds at once (SMs x
        resident blocks per SM of this block shape; registers as Rammer assumes them, ptxas' being unknown
        here), or a resident-limit launch's own limit."""
        from ..analysis.hardware import get_arch
        from ..analysis.rammer.cost import REGS_ASSUMED
        from ..backend.emu.l2 import L2Config
        from .residency import resident_per_sm
        spec = get_arch(self.arch)
        if resident_limit is not None:
            wave = resident_limit
        else:
            per_sm = resident_per_sm(spec, math.prod(block), int(smem), REGS_ASSUMED)
            wave = max(1, per_sm.blocks)
        return L2Config.for_arch(spec, max(1, min(wave, math.prod(grid))))


def _resident_blocks(name: str, resident) -> int:
    """Blocks a resident-limit launch may hold at once; an SM that holds none is an error before launching."""
    if resident.blocks < 1:
        raise CompileError(f"persistent kernel '{name}' cannot launch: not one block fits an SM "
                           f"({resident.describe()})")
    return resident.blocks
