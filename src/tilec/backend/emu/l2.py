"""The emulator's L2 model, Python side: what a launch asks of it and what it counts (issue #18).

The runtime (``emu_l2.h``) logs the 32-byte granules every block loads and stores, then replays the blocks in
hardware order, in waves of ``wave_blocks``, through a set-associative LRU write-back cache of the arch's
L2 (``l2_bytes``, ``transaction_bytes``, ``l2_ways`` in ``analysis/hw/<gpu>.json``). A launch's DRAM bytes are
its misses (sectors fetched) plus its write-backs (dirty sectors), each a sector; its L2 bytes are the bytes
its threads moved through TL_LD / TL_ST, the emulator's global byte count. The model is armed per launch
through the runtime's ``tl_emu_rt_l2_arm`` on the launching thread (see ``EmuModule.launch``'s ``l2``).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass

from .errors import EmuError

GRANULE = 32   # bytes per log entry (tl_emu::kGranuleShift): a sector must be a multiple of it


class L2Request(ctypes.Structure):
    """``tl_emu::L2Request``, field for field."""

    _fields_ = [(n, ctypes.c_uint64) for n in (
        "size_bytes", "line_bytes", "sector_bytes", "ways", "wave_blocks",
        "waves", "sectors_loaded", "sectors_stored", "hits", "misses", "writebacks")]


@dataclass(frozen=True)
class L2Config:
    """One launch's cache and wave: ``wave_blocks`` = SMs x resident blocks per SM of that kernel."""

    size_bytes: int
    line_bytes: int
    sector_bytes: int
    ways: int
    wave_blocks: int

    @classmethod
    def for_arch(cls, spec, wave_blocks: int) -> "L2Config":
        """The L2 of ``spec`` (a ``GPUSpec``)."""
        return cls(spec.l2_bytes, spec.line_bytes, spec.sector_bytes, spec.l2_ways, wave_blocks)

    def check(self) -> None:
        """An ``EmuError`` unless the organisation is one the model can simulate."""
        sectors = self.line_bytes // self.sector_bytes if self.sector_bytes > 0 else 0
        if (self.sector_bytes < GRANULE or self.sector_bytes % GRANULE or self.line_bytes % self.sector_bytes
                or not 1 <= sectors <= 32 or self.ways < 1 or self.wave_blocks < 1
                or self.size_bytes < self.line_bytes * self.ways
                or self.size_bytes % (self.line_bytes * self.ways)):
            raise EmuError(f"L2 model: unusable cache organisation {self} (sectors are multiples of {GRANULE} B, "
                           "at most 32 per line, and the size a whole number of sets of `ways` lines)")

    def request(self) -> L2Request:
        self.check()
        return L2Request(self.size_bytes, self.line_bytes, self.sector_bytes, self.ways, self.wave_blocks)


@dataclass(frozen=True)
class L2Counts:
    """What the model counted for one launch (sectors of ``sector_bytes``)."""

    sector_bytes: int
    waves: int
    sectors_loaded: int   # sector lookups by loads, once per wave per sector
    sectors_stored: int
    hits: int             # loads found in the cache
    misses: int           # loads fetched from DRAM
    writebacks: int       # dirty sectors written to DRAM (evicted, or at the end of the launch)

    @classmethod
    def from_request(cls, r: L2Request) -> "L2Counts":
        return cls(int(r.sector_bytes), int(r.waves), int(r.sectors_loaded), int(r.sectors_stored), int(r.hits),
                   int(r.misses), int(r.writebacks))

    @property
    def dram_read_bytes(self) -> int:
        return self.misses * self.sector_bytes

    @property
    def dram_write_bytes(self) -> int:
        return self.writebacks * self.sector_bytes

    @property
    def dram_bytes(self) -> int:
        return self.dram_read_bytes + self.dram_write_bytes


def arm(lib, config: L2Config | None) -> L2Request | None:
    """Arm the model for the next launch on this thread through ``lib`` (a kernel module, which links the
    runtime); the returned request holds the counts once that launch succeeded. None disarms."""
    fn = lib.tl_emu_rt_l2_arm
    fn.restype, fn.argtypes = None, [ctypes.c_void_p]
    req = config.request() if config is not None else None
    fn(ctypes.byref(req) if req is not None else None)
    return req
