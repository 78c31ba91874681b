"""The per-kernel latency model (DESIGN §10, issue #18): modelled seconds of one launch on the arch spec.

    t = max(DRAM, L2, shared memory, compute per unit, instruction issue) + launch + barriers

Parallelism is explicit. A launch of ``B`` blocks on ``S`` SMs that each hold ``R`` of its blocks at once
(occupancy: ``rammer.cost.resident_limits``, threads / blocks / registers / shared memory per SM) puts
``ceil(B / S)`` blocks on the busiest SM, in ``ceil(ceil(B / S) / R)`` waves (the last one a tail); fewer
blocks than SMs leave SMs idle, so chip-wide resources (DRAM, L2) are shared by ``min(B, S)`` SMs only. An SM
with few warps in flight cannot hide global-memory latency: DRAM and L2 rates are scaled by
``min(1, warps / saturating_warps_per_sm)``; an SM's compute units and issue slots belong to its
``sm_partitions`` schedulers, so fewer warps than schedulers leave some idle; a block narrower than a warp
issues for a whole one (its idle lanes scale compute, issue and the latency hiding).
Terms (seconds), all from ``analysis/hw/<gpu>.json`` (a calibration's ``<gpu>.measured.json`` overrides them):
- DRAM: DRAM bytes / (``dram_bytes_per_s`` x SMs at work / S x efficiency); the bytes are the emulator's L2
  model's (``run.json``) when a run measured them, else a compile-time guess: the kernel's parameters once when
  they fit the L2, else its modelled global bytes;
- L2: global bytes (every load and store reaches the L2) / (``l2_bytes_per_clk`` x clock, scaled the same);
- shared memory: shared-array accesses (kernel IR, ``kernel_work``), 4 bytes each, per SM at
  ``smem_bytes_per_clk_per_sm``;
- compute per unit: FLOPs on tensor cores at the spec's peak of their type where the kernel's lowering says
  it runs on them (the ``tensor_core`` attribute, :func:`tensor_core_type`: every engine GEMM, conv,
  attention and MLP kernel, mma.sync / wgmma / wmma / MFMA alike), else on FFMA; SFU calls at
  ``sfu_per_clk_per_sm``, per SM;
- issue: warp instructions (one per FMA pair of FLOPs, SFU call, shared access, 4 global bytes and shuffle
  step, over 32 lanes) at ``issue_per_clk_per_sm``;
- launch: ``launch_overhead_us``; barriers: per wave, the block's ``__syncthreads`` x ``barrier_cycles``, and a
  persistent kernel's grid barriers (a device loop's stages + 1 per iteration) x ``grid_barrier_us``.
A persistent rProgram's time is at least Rammer's packed makespan (``rprog.program``'s ``packed_seconds``,
its launch overhead replaced by the spec's); a device loop's FLOPs and bytes already count every iteration
(Grinder's ``_whole``). The estimate is a model, not a measurement: ``make gpu-calibrate`` measures it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .hardware import GPUSpec
from .kernel_work import BlockWork, block_work
from .rammer.cost import launch_seconds

SMEM_ACCESS_BYTES = 4      # one shared-array element access per thread (f32 / i32 words; a warp: 128 B)
GLOBAL_BYTES_PER_INSTR = 4  # a global load / store instruction moves a word per lane
PERSISTENT_KINDS = ("persistent", "device_loop", "device_if")


@dataclass(frozen=True)
class KernelLoad:
    """What one launch of a kernel asks of the GPU: the model's inputs, recorded in report.json rows so a
    run's measured bytes can replace the guessed ones (:func:`remodel`)."""

    blocks: int
    threads: int
    smem: int                 # shared bytes per block (static + dynamic)
    regs: int                 # registers per thread (ptxas' or the estimate)
    flops: float
    dtype: str                # the type its FLOPs compute in (tensor_core_type, else speed_of_light.compute_dtype)
    tensor: bool              # FLOPs run on tensor cores
    l2_bytes: float           # global bytes, each load and store (the L2's traffic)
    dram_bytes: float
    work: BlockWork = field(default_factory=BlockWork)
    grid_barriers: float = 0.0
    makespan_s: float = 0.0   # a persistent rProgram's packed makespan, launch excluded
    bytes_from: str = "compile-time"   # or "emulator L2 model"
    inflight_bytes: float = 0.0   # per block, an asynchronous (TMA) pipeline's loads in flight whatever its warps


@dataclass(frozen=True)
class Estimate:
    """One launch's modelled time and where it comes from."""

    seconds: float
    bound: str                # the largest term
    terms: dict               # term -> seconds
    launch: float
    barriers: float
    sms: int                  # SMs at work
    per_sm: int               # resident blocks per SM
    waves: int

    def to_json(self) -> dict:
        return {"bound": self.bound, "waves": self.waves, "sms": self.sms, "blocks_per_sm": self.per_sm,
                "terms_us": {k: round(v * 1e6, 4) for k, v in self.terms.items()},
                "launch_us": round(self.launch * 1e6, 4), "barriers_us": round(self.barriers * 1e6, 4)}


def resident_per_sm(spec: GPUSpec, load: KernelLoad) -> int:
    from .rammer.cost import resident_limits
    limits = resident_limits(spec, load.threads, load.smem, load.regs or None,
                             smem_cap=spec.smem_per_block_optin_bytes)
    return max(1, min(limits.values()))


def unit_peak(spec: GPUSpec, load: KernelLoad) -> tuple:
    """(unit name, FLOP/s of the whole chip) the kernel's FLOPs run at: the spec's tensor-core peak of the
    load's type (an f32 one is tf32: older report.json rows say f32) where the spec has one, else FFMA's."""
    if load.tensor:
        dtype = load.dtype if load.dtype in TENSOR_CORE_TYPES else "tf32"
        peak = spec.tensor_core_flops(dtype)
        if peak:
            return f"tensor_{dtype}", peak
    return "ffma", spec.fp32_flops


def estimate(spec: GPUSpec, load: KernelLoad) -> Estimate:
    """The modelled time of one launch of ``load`` on ``spec``."""
    S, B = spec.num_sms, max(1, load.blocks)
    R = resident_per_sm(spec, load)
    sms, b_max = min(S, B), math.ceil(B / S)
    waves = math.ceil(b_max / R)
    warps = min(R, b_max) * math.ceil(load.threads / spec.warp_size)
    # A block narrower than a warp (or not a multiple of one) leaves lanes of its last warp idle: its
    # instructions issue for a whole warp, its FLOPs use that share of the units, and its loads keep that
    # share of a full warp's bytes in flight.
    util = load.threads / (math.ceil(load.threads / spec.warp_size) * spec.warp_size)
    # Global-memory latency hidden: by warps in flight, each with a warp-wide word load outstanding, or by a
    # TMA pipeline's stages (``inflight_bytes``, counted in those warps' bytes: the wgmma engine's producer
    # keeps tens of KB in flight with one thread).
    hiding = warps * util + load.inflight_bytes * min(R, b_max) / (spec.warp_size * GLOBAL_BYTES_PER_INSTR)
    eff = min(1.0, hiding / max(1, spec.saturating_warps_per_sm))
    lanes = min(1.0, warps / max(1, spec.sm_partitions)) * util      # schedulers (and their units) with a warp
    clock = spec.clock_ghz * 1e9
    share = b_max / B   # the busiest SM's part of the launch's work
    w = load.work
    unit, peak = unit_peak(spec, load)
    terms = {"dram": load.dram_bytes / (spec.dram_bytes_per_s * sms / S * eff)}
    if spec.l2_bytes_per_s:
        terms["l2"] = load.l2_bytes / (spec.l2_bytes_per_s * sms / S * eff)
    terms["smem"] = w.smem_accesses * b_max * SMEM_ACCESS_BYTES / (spec.smem_bytes_per_clk_per_sm * clock)
    terms[unit] = load.flops * share / (peak / S * lanes)
    if spec.sfu_per_clk_per_sm:
        terms["sfu"] = w.sfu_ops * b_max / (spec.sfu_per_clk_per_sm * clock * lanes)
    lane_ops = ((0.0 if load.tensor else load.flops / 2) + load.l2_bytes / GLOBAL_BYTES_PER_INSTR) / B \
        + w.sfu_ops + w.smem_accesses + w.shuffles
    terms["issue"] = lane_ops / spec.warp_size * b_max / (spec.issue_per_clk_per_sm * clock * lanes)
    if load.makespan_s:
        terms["makespan"] = load.makespan_s
    # On a tie the unit names the bound, not issue (pure FFMA fills every issue slot: the two are equal).
    bound = max(terms, key=lambda k: (terms[k], k != "issue", k))
    barriers = waves * w.barriers * spec.barrier_cycles / clock + load.grid_barriers * spec.grid_barrier_us * 1e-6
    launch = spec.launch_overhead_us * 1e-6
    return Estimate(terms[bound] + launch + barriers, bound, terms, launch, barriers, sms, R, waves)


def dram_guess(spec: GPUSpec, unique_bytes: float, l2_bytes: float) -> float:
    """DRAM bytes of one launch without a run: each parameter once (``unique_bytes``) when they all fit the
    L2 (it keeps what the launch re-reads), else every modelled global byte (``l2_bytes``)."""
    return float(min(unique_bytes, l2_bytes)) if unique_bytes <= spec.l2_bytes else float(l2_bytes)


def compile_dram_bytes(spec: GPUSpec, kernel, l2_bytes: float) -> float:
    """:func:`dram_guess` of a lowered ``kernel.func``: its parameters' bytes, each once."""
    from .speed_of_light import param_bytes
    return dram_guess(spec, param_bytes(kernel), l2_bytes)


_EFFECTIVE: dict = {}   # id(spec) -> (spec, its effective spec): choices ask thousands of times per compile


def _effective(spec: GPUSpec) -> GPUSpec:
    """``measured.effective_spec(spec)``, read once per spec object (a process that writes a measured file
    mid-compile keeps the constants it started with)."""
    hit = _EFFECTIVE.get(id(spec))
    if hit is None or hit[0] is not spec:
        from .measured import effective_spec
        hit = _EFFECTIVE[id(spec)] = (spec, effective_spec(spec))
    return hit[1]


def candidate_estimate(spec: GPUSpec, *, blocks: int, threads: int, smem: int, regs: int, flops: float,
                       global_bytes: float, unique_bytes: float, barriers: float = 0.0,
                       smem_accesses: float = 0.0, tensor: bool = False, dtype: str = "f32",
                       inflight_bytes: float = 0.0) -> Estimate:
    """The modelled time of a launch config that is not lowered yet (a Roller rTile, a Welder group tile,
    issue #18): the same :func:`estimate` a built kernel's report.json row gets, with the compile-time DRAM
    guess (:func:`dram_guess`), ``barriers`` and ``smem_accesses`` per block. Choices made with it rank
    candidates by time (waves, idle SMs, occupancy, units) instead of by bytes; a calibration's constants
    (``analysis/measured``) move them as they move the report."""
    spec = _effective(spec)
    load = KernelLoad(blocks=max(1, blocks), threads=max(1, threads), smem=smem, regs=regs, flops=float(flops),
                      dtype=dtype, tensor=tensor, l2_bytes=float(global_bytes),
                      dram_bytes=dram_guess(spec, unique_bytes, global_bytes),
                      work=BlockWork(barriers=barriers, smem_accesses=smem_accesses), inflight_bytes=inflight_bytes)
    return estimate(spec, load)


def kernel_load(spec: GPUSpec, kernel, row: dict) -> KernelLoad:
    """The :class:`KernelLoad` of ``kernel`` (a ``kernel.func``) from its IR and its report.json ``row``
    (``smem_static``, ``smem_dynamic``, ``registers``)."""
    from .speed_of_light import compute_dtype
    a = kernel.attributes
    kind = a.get("kind", "")
    l2 = float(a.get("bytes_modelled", 0))
    work = block_work(kernel) if kind not in PERSISTENT_KINDS else BlockWork(known=False)
    grid_barriers, makespan = 0.0, 0.0
    body = kernel.regions[0].blocks[0].ops if kernel.regions else []
    if kind in ("device_loop", "device_if"):
        stages = sum(op.name == "utask.stage" for op in body)
        trip = (a.get("control") or {}).get("trip_static") or 1
        grid_barriers = float(trip * (stages + 1) if kind == "device_loop" else stages)
    for op in body:
        if op.name == "rprog.program":
            makespan = max(0.0, float(op.attributes.get("packed_seconds", 0.0)) - launch_seconds(spec))
    return KernelLoad(blocks=math.prod(a["grid"]), threads=math.prod(a["block"]),
                      smem=int(row.get("smem_static", 0)) + int(row.get("smem_dynamic", 0)),
                      regs=int(row.get("registers") or 0), flops=float(a.get("flops", 0)),
                      dtype=tensor_core_type(a) or compute_dtype(kernel), tensor=bool(tensor_core_type(a)), l2_bytes=l2,
                      dram_bytes=compile_dram_bytes(spec, kernel, l2), work=work, grid_barriers=grid_barriers,
                      makespan_s=makespan, inflight_bytes=tma_inflight_bytes(a.get("config") or {}))


TENSOR_CORE_TYPES = ("f16", "bf16", "tf32")


def tensor_core_type(attrs: dict) -> str:
    """The type a ``kernel.func``'s products run in on tensor cores (f16, bf16 or tf32: ``GPUSpec.
    tensor_core_flops``'s keys), from the ``tensor_core`` attribute the lowering of every tensor-core kernel
    sets (the engines' GEMMs and convs, wgmma / mma.sync attention, the wgmma MLP); "" for a kernel on CUDA
    cores. The lowering knows which instruction it emitted; the kernel's kind or its params' types do not
    (an attention kernel is on tensor cores or not by its engine; an f16 GEMM may take f32 epilogue
    operands)."""
    return str(attrs.get("tensor_core") or "")


def tma_inflight_bytes(config: dict) -> float:
    """Bytes a wgmma engine block keeps in flight (``config["engine"] == "wgmma"``): all its stages but the one
    being computed, (BM + BN) 128-byte rows each (analysis/wgmma_shape.py); 0 for any other kernel."""
    if config.get("engine") == "wgmma" and "inflight_bytes" in config:   # a fused kernel says its own (fusion/mlp)
        return float(config["inflight_bytes"])
    if config.get("engine") != "wgmma" or "tile" not in config or "stages" not in config:
        return 0.0
    bm, bn = config["tile"]
    return float((int(config["stages"]) - 1) * (bm + bn) * 128)


def load_from_json(data: dict) -> KernelLoad:
    """A :class:`KernelLoad` back from its report.json form (``row["latency"]["load"]``)."""
    return KernelLoad(**{**data, "work": BlockWork(**data["work"])})


def load_to_json(load: KernelLoad) -> dict:
    out = asdict(load)
    if not load.inflight_bytes:   # only TMA pipelines have it: other rows keep their fields
        del out["inflight_bytes"]
    return out


WIDE_OUTPUT_PER_SM = 1024   # issue #18: an output of >= SMs x 1024 elements should fill the SMs
# Spreading a launch must save this share of its modelled time to count (the spread estimate is a lower
# bound: it keeps the bytes, while more blocks re-read more, and pays no extra block overhead).
MATERIAL_SAVING = 0.05


def output_elements(kernel) -> int:
    """Elements of a ``kernel.func``'s largest output parameter."""
    return max((math.prod(p["shape"]) for p in kernel.attributes.get("params", ())
                if p.get("role") == "out" and "shape" in p), default=0)


def parallelism_check(spec: GPUSpec, kernel, load: KernelLoad, est: Estimate) -> dict | None:
    """None when the launch has a warp or more per block, more than one block for an output of more than
    a warp of elements, and, for an output of at least ``num_sms`` x ``WIDE_OUTPUT_PER_SM`` elements, a
    block per SM or more (issue #18). Otherwise the model's answer, for
    report.json: the same launch with its threads in whole warps and spread over ``num_sms`` blocks (fewer
    when the output has fewer warps' worth of elements), with the same work
    and bytes (a lower bound: more blocks re-read more), and whether the choice stands (``justified``:
    spreading would save less than ``MATERIAL_SAVING`` of the time, e.g. a launch bound by its overhead, or
    a persistent rProgram whose grid is Rammer's packing)."""
    small_blocks = load.threads < spec.warp_size
    out = output_elements(kernel)
    few_blocks = load.blocks < spec.num_sms and (out >= spec.num_sms * WIDE_OUTPUT_PER_SM
                                                 or (load.blocks == 1 and out > spec.warp_size))
    if not (small_blocks or few_blocks):
        return None
    # Sub-warp blocks regroup into whole warps (the same threads); few blocks spread to the SMs, but to no
    # more blocks than the output has warps' worth of elements (a 64-element output spreads to 2 blocks).
    total = load.blocks * load.threads
    threads = max(load.threads, min(spec.warp_size, total))   # 6 threads in all stay 6 (in one block)
    blocks = max(1, -(-total // threads)) if small_blocks else load.blocks
    if few_blocks:
        blocks = max(blocks, min(spec.num_sms, -(-out // threads)))
    scale = total / (blocks * threads)   # per-block work shrinks as blocks grow
    work = BlockWork(**{**asdict(load.work), "smem_accesses": load.work.smem_accesses * scale,
                        "sfu_ops": load.work.sfu_ops * scale, "shuffles": load.work.shuffles * scale})
    spread = estimate(spec, KernelLoad(**{**asdict(load), "work": work, "blocks": blocks, "threads": threads}))
    why = ("fewer threads per block than a warp" if small_blocks else "") + \
        (" and " if small_blocks and few_blocks else "") + \
        (f"{load.blocks} blocks for {spec.num_sms} SMs" if few_blocks else "")
    justified = spread.seconds >= est.seconds * (1 - MATERIAL_SAVING)
    return {"what": why, "justified": justified, "modelled_us": round(est.seconds * 1e6, 4),
            "spread_us": round(spread.seconds * 1e6, 4), "spread_blocks": blocks, "spread_threads": threads,
            "reason": (f"the model: {blocks} blocks of {threads} threads with the same work would take "
                       f"{spread.seconds * 1e6:.4g} us against {est.seconds * 1e6:.4g} us "
                       + (f"(less than {MATERIAL_SAVING:.0%} faster: bound by {spread.bound})" if justified
                          else "(faster: not justified)"))}


def kernel_seconds(spec: GPUSpec, kernel, row: dict) -> float:
    """The modelled seconds of one launch of a lowered ``kernel`` (``row`` as :func:`kernel_load` reads it),
    with a calibration's constants where there is one: what its report.json row will say."""
    return estimate(_effective(spec), kernel_load(spec, kernel, row)).seconds


def row_latency(spec: GPUSpec, kernel, row: dict) -> tuple:
    """(modelled microseconds of one launch, the row's ``latency`` entry) for report.json; a calibration's
    constants (``analysis/measured``) replace the spec's where there is one."""
    from .measured import effective_spec
    load = kernel_load(spec, kernel, row)
    spec = effective_spec(spec)
    est = estimate(spec, load)
    entry = {**est.to_json(), "load": load_to_json(load)}
    check = parallelism_check(spec, kernel, load, est)
    if check is not None:
        entry["parallelism"] = check
    return round(est.seconds * 1e6, 4), entry


def remodel(spec: GPUSpec, report: dict, run: dict) -> dict:
    """Modelled microseconds per kernel (and ``"total"``) of a build's ``report`` with the bytes a ``run``
    (run.json of the emulator, with its L2 model) measured per launch; kernels the run did not launch keep
    the compile-time bytes."""
    from .measured import effective_spec
    spec = effective_spec(spec)
    measured = {r["name"]: r for r in run.get("kernels", ()) if r.get("dram_bytes") is not None and r["launches"]}
    out, total = {}, 0.0
    for row in report["kernels"]:
        load = load_from_json(row["latency"]["load"])
        m = measured.get(row["name"])
        if m is not None:
            n = m["launches"]
            load = KernelLoad(**{**asdict(load), "work": load.work, "l2_bytes": m["l2_bytes"] / n,
                                 "dram_bytes": m["dram_bytes"] / n, "bytes_from": "emulator L2 model"})
        us = estimate(spec, load).seconds * 1e6
        out[row["name"]] = round(us, 4)
        total += us * row["launches"]
    out["total"] = round(total, 4)
    return out
