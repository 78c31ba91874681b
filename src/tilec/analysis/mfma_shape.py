"""The AMD matrix-core (MFMA) engine's shape as a function of a block tile (``backend/lower/mfma_engine.py`` runs
it): wave grid, MFMA instruction and k tile, and the LDS of its two buffers. Analysis-level facts, as
``engine_shape`` is for the sm_80 engine, so Roller's estimate (``cost_model``) knows which rTiles the engine
takes on an AMD target, and prices the CUDA-core kernel the lowering gives the others
(``backend/lower/tiled_mma.engine_config``): the kernel that runs is the one the estimate assumed.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.types import itemsize
from .engine_shape import warp_grid
from .hardware import GPUSpec
from .mma_tile import MMA, match_problem

PAD = 8              # LDS row padding (elements): rows stay 16-byte aligned and shift by 4 banks
MAX_WAVES = 4        # 256 threads: a workgroup of 4 wavefronts, one per SIMD
MAX_WAVE_ACC = 64    # f32 accumulators per lane (a 64x64 wave tile): hipcc keeps them without spilling
INST_K = {32: 8, 16: 16}   # the instruction's k: 32x32x8, 16x16x16
DTYPES = ("f16", "bf16")


@dataclass(frozen=True)
class MfmaConfig:
    """One MFMA kernel's shape: block tile, k tile, wave grid and the instruction's S x S tile."""
    bm: int
    bn: int
    bk: int
    waves_m: int
    waves_n: int
    inst: int          # S: 32 (32x32x8) or 16 (16x16x16)
    stages: int = 2    # LDS buffers

    @property
    def waves(self) -> int:
        return self.waves_m * self.waves_n

    @property
    def wave_tile(self) -> tuple:
        return self.bm // self.waves_m, self.bn // self.waves_n

    @property
    def acc_per_lane(self) -> int:
        tm, tn = self.wave_tile
        return tm * tn // 64

    def lds_elems(self) -> tuple:
        """Elements of one LDS buffer's A and B tiles, padded rows: the larger of the two orientations
        ([m][k + PAD] or [k][m + PAD]), so the layout does not depend on how the operands are stored."""
        tile = lambda x: max(x * (self.bk + PAD), self.bk * (x + PAD))   # noqa: E731
        return tile(self.bm), tile(self.bn)

    def lds_bytes(self, dtype: str) -> int:
        """The LDS the kernel declares: both buffers of both tiles."""
        a, b = self.lds_elems()
        return self.stages * (a + b) * itemsize(dtype)

    def mfma_per_k_tile(self) -> int:
        """MFMA instructions one wavefront issues per k tile."""
        tm, tn = self.wave_tile
        return (tm // self.inst) * (tn // self.inst) * (self.bk // INST_K[self.inst])


def plan(bm: int, bn: int, k_extent: int, dtype: str, spec: GPUSpec, waves_hint: int = MAX_WAVES) -> MfmaConfig | None:
    """The engine's shape for a ``bm`` x ``bn`` block tile (multiples of 16), or None when no wave grid keeps the
    accumulators within :data:`MAX_WAVE_ACC` per lane or two LDS buffers do not fit.

    The instruction is 32x32x8 where the wave tiles can be multiples of 32 (a quarter of the LDS reads per
    FLOP of 16x16x16's), else 16x16x16; the waves are up to ``waves_hint`` (at most 4), the wave tile as square
    as the grid allows; the k tile is 32 (64-byte rows; 16 when K is at most 16)."""
    best = None
    for inst in (32, 16):
        grid = warp_grid(bm, bn, max(1, min(MAX_WAVES, waves_hint)), inst, 64, MAX_WAVE_ACC)
        if grid is not None:
            best = (*grid, inst)
            break
    if best is None:
        return None
    bk = 32 if k_extent > 16 else 16
    cfg = MfmaConfig(bm, bn, bk, best[0], best[1], best[2])
    if cfg.lds_bytes(dtype) > spec.smem_per_block_bytes:
        return None
    return cfg


def supports(spec: GPUSpec, mt: dict, extents: dict) -> bool:
    """Whether the engine runs the matched product ``mt`` (``tiled_mma.match``) on ``spec``: an AMD target with
    matrix cores for its f16 or bf16 operands. Any extents: rows that are not whole 16-byte chunks take
    16-bit loads (``mfma_engine.copy_lines``), so the tensor-core kernel Roller priced is the one that runs
    (there is no wmma kernel on AMD to fall back to). ``extents`` is taken for the signature
    ``engine_shape.supports`` has, as ``tiled_mma`` asks either engine alike."""
    return spec.is_amd and mt.get("dtype") in DTYPES and spec.tensor_core_flops(mt["dtype"]) > 0


def threads_hint(mt: dict, block: dict, thread: dict) -> int:
    """The thread count an rTile implies (block over thread tile, along m and n): the engine's wave hint."""
    bm, bn = block[mt["m"]], block[mt["n"]]
    return (bm // max(1, thread.get(mt["m"], 1))) * (bn // max(1, thread.get(mt["n"], 1)))


def mfma_shape(problem, rt, spec: GPUSpec) -> MfmaConfig | None:
    """The engine's shape for the tensor-core product ``problem`` on rTile ``rt`` as the lowering gives it
    (``tiled_mma.aligned`` and ``engine_config``), or None where it runs on CUDA cores instead: not an AMD
    target with matrix cores for the type, a block or k step that is not a multiple of the 16x16x16 mma
    tile, a batch axis blocked by more than one, or a block tile the engine has no wave grid for."""
    mt = match_problem(problem)
    if mt is None or not supports(spec, mt, problem.extents):
        return None
    block, thread, step = dict(rt.block), dict(rt.thread), dict(rt.step)
    bm, bn, bk = block.get(mt["m"], 0), block.get(mt["n"], 0), step.get(mt["k"], 0)
    if any(x <= 0 or x % s for x, s in zip((bm, bn, bk), MMA)) or any(block.get(b, 1) != 1 for b in mt["batch"]):
        return None
    waves = max(1, threads_hint(mt, block, thread) // spec.warp_size)
    return plan(bm, bn, problem.extents[mt["k"]], mt["dtype"], spec, waves)
