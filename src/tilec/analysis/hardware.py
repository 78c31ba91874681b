"""Hardware specs as data: one JSON file per GPU in ``analysis/hw/`` (SMs, shared memory, registers,
bandwidths, peaks, transaction sizes). The target is a fact of the module (``tilec.target``, set by ``tilec
compile --arch``; :func:`module_arch`): every pass, the lowering and the build read it, and a pass's
``arch=NAME`` option overrides it for that pass. Nothing else hard-codes these numbers."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..ir.diagnostics import CompileError

HW_DIR = Path(__file__).with_name("hw")
DEFAULT_ARCH = "h200"
TARGET_ATTR = "tilec.target"   # the module attribute naming its target GPU (``tilec compile --arch``)


@dataclass(frozen=True)
class GPUSpec:
    """One GPU's numbers (bytes, bytes/s, FLOP/s, counts)."""

    arch: str
    name: str
    sm_arch: str
    num_sms: int
    clock_ghz: float
    warp_size: int
    max_threads_per_block: int
    max_threads_per_sm: int
    max_blocks_per_sm: int
    max_regs_per_thread: int
    regs_per_sm: int
    smem_per_sm_bytes: int
    smem_per_block_bytes: int
    smem_per_block_optin_bytes: int
    smem_banks: int
    smem_bank_bytes: int
    l2_bytes: int
    dram_bytes_per_s: float
    smem_bytes_per_clk_per_sm: int
    fp32_flops: float
    fp16_tensor_flops: float
    bf16_tensor_flops: float
    transaction_bytes: dict
    mma_shapes: list
    barrier_cycles: int = 0
    smem_reserved_per_block_bytes: int = 0   # shared memory the driver keeps per resident block (sm_80+: 1 KB)
    sm_partitions: int = 4                   # warp schedulers per SM, each with its share of the register file
    reg_alloc_unit: int = 8                  # registers per thread are allocated in multiples of this
    max_cluster_blocks: int = 1              # portable thread-block cluster size (sm_90: 8); 1 = no clusters
    sources: str = ""
    dram_bytes_per_s_measured: float = 0.0
    tf32_tensor_flops: float = 0.0           # dense TF32 tensor-core peak (0 where the GPU has none, e.g. V100)
    # The latency model's constants (analysis/latency.py; sources in each file's latency_sources).
    l2_ways: int = 16                        # L2 associativity (the emulator's L2 model)
    l2_bytes_per_clk: int = 0                # L2 read bandwidth per clock, whole chip
    issue_per_clk_per_sm: int = 4            # warp instructions issued per clock per SM
    sfu_per_clk_per_sm: int = 16             # special-function results (exp, rsqrt, ...) per clock per SM
    launch_overhead_us: float = 0.0          # one kernel launch in a stream, drain and ramp included
    block_overhead_us: float = 0.0           # one thread block: scheduling, index math, first loads' latency
    grid_barrier_us: float = 0.0             # one grid-wide flag barrier of a persistent kernel
    atomic_cycles: int = 0                   # SM clocks per same-address atomic at L2 (they serialise there)
    saturating_warps_per_sm: int = 32        # warps in flight an SM needs to hide latency (Little's law)
    latency_sources: str = ""
    # AMD targets (docs/amd.md): the vendor picks the renderer (CUDA or HIP); sm_arch is then the ISA (gfx90a).
    vendor: str = "nvidia"
    matrix_flops: dict = field(default_factory=dict)     # AMD matrix-core (MFMA) peaks by dtype; no engine uses them yet
    register_files: dict = field(default_factory=dict)   # AMD VGPR/AGPR/SGPR file sizes (documentation for --check-hip)
    unrolled_body_regs: int = 0   # registers an unrolled reduce body may take (backend/lower/unroll.py); 0 = no bound

    @property
    def smem_bytes_per_s(self) -> float:
        """Aggregate shared-memory bandwidth (all SMs)."""
        return self.smem_bytes_per_clk_per_sm * self.clock_ghz * 1e9 * self.num_sms

    def tensor_core_flops(self, dtype: str) -> float:
        """Tensor-core peak for ``dtype`` (0 where the GPU has none for it, e.g. bf16 on V100)."""
        return {"f16": self.fp16_tensor_flops, "bf16": self.bf16_tensor_flops,
                "tf32": self.tf32_tensor_flops}.get(dtype, 0.0)

    @property
    def l2_bytes_per_s(self) -> float:
        """Aggregate L2 bandwidth."""
        return self.l2_bytes_per_clk * self.clock_ghz * 1e9

    @property
    def is_amd(self) -> bool:
        """An AMD GPU: HIP sources (``.hip``), hipcc's check, wavefronts of ``warp_size`` (64)."""
        return self.vendor == "amd"

    @property
    def sector_bytes(self) -> int:
        return self.transaction_bytes["sector"]

    @property
    def line_bytes(self) -> int:
        return self.transaction_bytes["line"]


def available_archs() -> list[str]:
    # <gpu>.measured.json beside a spec holds a calibration run's numbers (analysis/measured.py), not a GPU.
    return sorted(p.stem for p in HW_DIR.glob("*.json") if "." not in p.stem)


@functools.lru_cache(maxsize=None)
def get_arch(name: str = DEFAULT_ARCH) -> GPUSpec:
    """The spec for ``name`` (case-insensitive, ``h100-sxm`` style suffixes allowed)."""
    key = name.lower().split("-")[0]
    path = HW_DIR / f"{key}.json"
    if "." in key or not path.exists():   # <gpu>.measured.json is a calibration, not a spec
        raise CompileError(f"unknown arch '{name}' (available: {', '.join(available_archs())})")
    data = json.loads(path.read_text())
    known = {f.name for f in fields(GPUSpec)}
    return GPUSpec(**{k: v for k, v in data.items() if k in known})


def module_arch(op) -> str:
    """The target arch of the module holding ``op`` (its ``tilec.target`` attribute; DEFAULT_ARCH if unset)."""
    while getattr(op, "parent_op", None) is not None:
        op = op.parent_op
    return str(op.attributes.get(TARGET_ATTR, DEFAULT_ARCH)) if op is not None else DEFAULT_ARCH


def target_spec(op, override: str = "") -> GPUSpec:
    """The spec a pass uses: its ``arch`` option when given (``override``), else the module's target."""
    return get_arch(override or module_arch(op))


def set_target(module, arch: str) -> GPUSpec:
    """Make ``arch`` the module's target (checked against the specs); returns its spec."""
    spec = get_arch(arch)
    module.attributes[TARGET_ATTR] = spec.arch
    return spec
