"""Can a persistent grid be co-resident? The runtime's answer, before every persistent launch (issue #15).

A persistent plan step (``"concurrent": True``: Rammer's rProgram, Grinder's device loop / if) has blocks
that wait on each other, so a grid larger than the device holds at once would hang. Two ways to ask:

- a device with an occupancy API (CuPy: ``cuOccupancyMaxActiveBlocksPerMultiprocessor`` on the loaded
  function) answers ``max_active_blocks(kernel, block, smem)`` and ``multiprocessor_count()``;
  :class:`ResidencyGuard` asks once per kernel and, when ``per SM x SMs < grid``, has the executor run the
  step's ``fallback`` (``backend/fallback.py``) with one :class:`ResidencyWarning`. Like CUDA's cooperative
  launch, which refuses a grid above that product, only with a way out instead of an error.
- the emulator has no occupancy API: :func:`resident_per_sm` computes the same limit from the arch spec
  (``analysis/hw/*.json``), ptxas' registers and shared memory (``report.json``) or, without them, the
  ``__launch_bounds__`` minimum the kernel was built with (the plan step's ``resident``), and its
  resident-limit mode runs only that many blocks at once (``runtime/emu_device.py``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

from ..ir.diagnostics import CompileError


class ResidencyWarning(UserWarning):
    """A persistent kernel's grid cannot be co-resident on this device: its fallback runs instead."""


_PYTHON_FORMAT = warnings.formatwarning


def format_warning(message, category, filename, lineno, line=None) -> str:
    """``warnings.formatwarning`` for the ``tilec`` command: a ResidencyWarning as one diagnostic line
    (``tilec: warning: ...``) instead of Python's file:line and source echo; others as Python prints them."""
    if issubclass(category, ResidencyWarning):
        return f"tilec: warning: {str(message).removeprefix('tilec: ')}\n"
    return _PYTHON_FORMAT(message, category, filename, lineno, line)


@dataclass(frozen=True)
class ResidentLimit:
    """How many blocks of one launch an SM holds, why, and on how many SMs."""

    per_sm: int
    limiter: str      # the binding limit: "threads", "blocks", "registers", "shared memory" or "occupancy API"
    num_sms: int
    regs: int | None = None        # registers per thread used for the register limit
    regs_from: str = ""            # "ptxas", "__launch_bounds__(T, B)" or ""
    smem: int | None = None        # shared bytes per block (static + dynamic) used for the smem limit

    @property
    def blocks(self) -> int:
        return self.per_sm * self.num_sms

    def describe(self) -> str:
        what = f"{self.per_sm} per SM ({self.limiter}"
        if self.regs is not None:
            what += f"; {self.regs} registers/thread from {self.regs_from}"
        if self.smem is not None:
            what += f"; {self.smem} B shared/block"
        return f"{what}) x {self.num_sms} SMs = {self.blocks}"


def grid_blocks(step: dict) -> int:
    return math.prod(step["grid"])


def block_threads(step: dict) -> int:
    return math.prod(step["block"])


def resident_per_sm(spec, threads: int, smem: int, regs: int | None = None, regs_from: str = "",
                    launch_bounds: int = 0, num_sms: int | None = None) -> ResidentLimit:
    """Blocks of ``threads`` threads and ``smem`` shared bytes (static + dynamic) an SM of ``spec`` holds at
    once, each thread with ``regs`` registers (ptxas'); with ``regs`` unknown, the register file holds at
    least ``launch_bounds`` blocks (ptxas caps registers so that it does). ``num_sms`` overrides the spec's
    SM count (an emulated smaller GPU). The hardware's rules: threads and blocks per SM, registers allocated
    per warp in ``reg_alloc_unit`` steps over ``sm_partitions`` schedulers (``analysis/rammer/regs``), and
    shared memory per SM less ``smem_reserved_per_block_bytes`` per block."""
    from ..analysis.rammer.cost import resident_limits
    from ..analysis.rammer.regs import reg_budget
    if regs is None and launch_bounds:
        regs, regs_from = reg_budget(spec, threads, launch_bounds), f"__launch_bounds__({threads}, {launch_bounds})"
    # static + dynamic bytes: a block may have up to the opt-in maximum
    limits = resident_limits(spec, threads, smem, None if regs is None else max(1, regs),
                             smem_cap=spec.smem_per_block_optin_bytes)
    limiter = min(limits, key=lambda k: (limits[k], k))
    return ResidentLimit(max(0, limits[limiter]), limiter, spec.num_sms if num_sms is None else num_sms,
                         regs, regs_from, smem)


def step_limit(step: dict, ptxas: dict | None = None, num_sms: int | None = None) -> ResidentLimit:
    """The resident limit of persistent plan ``step`` on its target arch (the step's ``resident``), with
    ptxas' registers and shared bytes (a ``report.json`` row's ``ptxas``) where the build ran ptxas."""
    from ..analysis.hardware import get_arch
    facts = step.get("resident")
    if facts is None:
        raise CompileError(f"persistent kernel '{step['kernel']}' has no residency facts in plan.json "
                           "(a build from an older tilec: compile it again)")
    spec = get_arch(facts["arch"])
    if ptxas:
        return resident_per_sm(spec, block_threads(step), int(ptxas["smem"]) + int(step.get("smem", 0)),
                               int(ptxas["registers"]), "ptxas", num_sms=num_sms)
    return resident_per_sm(spec, block_threads(step), int(facts["smem_static"]) + int(step.get("smem", 0)),
                           launch_bounds=int(facts["blocks_per_sm"]), num_sms=num_sms)


class ResidencyGuard:
    """Answers "may this persistent step launch as planned?" for one executor's device, once per kernel;
    the first "no" for a kernel warns (:class:`ResidencyWarning`) and is kept in ``fallbacks`` (RUN.json)."""

    def __init__(self, device):
        self.device = device
        self.fallbacks: dict = {}   # kernel -> why its fallback ran
        self._verdicts: dict = {}

    def co_resident(self, step: dict, kernel) -> bool:
        """True when the device holds all of ``step``'s grid at once, or cannot be asked (the emulator: its
        resident-limit mode detects the deadlock instead). False, with one warning per kernel, when it does
        not, or when asking fails (an unknown answer must not risk a hang)."""
        name = step["kernel"]
        if name in self._verdicts:
            return self._verdicts[name]
        ask = getattr(self.device, "max_active_blocks", None)
        if ask is None:
            self._verdicts[name] = True
            return True
        grid = grid_blocks(step)
        try:
            per_sm = int(ask(kernel, step["block"], int(step.get("smem", 0))))
            sms = int(self.device.multiprocessor_count())
            ok, numbers = per_sm * sms >= grid, f"{per_sm} per SM (occupancy API) x {sms} SMs = {per_sm * sms}"
        except Exception as e:  # noqa: BLE001 - any failure to ask is "unknown": take the safe path
            ok, numbers = False, f"unknown: the occupancy query failed ({type(e).__name__}: {e})"
        self._verdicts[name] = ok
        if not ok:
            why = (f"persistent kernel '{name}' needs all {grid} blocks of its grid resident at once; the device "
                   f"holds {numbers}")
            if step.get("fallback") is None:
                raise CompileError(f"{why}, and the plan has no fallback for it: running it would hang")
            launches = sum(1 for _ in _launches(step["fallback"]))
            self.fallbacks[name] = f"{why}; ran its non-persistent fallback ({launches} kernels) instead"
            warnings.warn(f"tilec: {self.fallbacks[name]}", ResidencyWarning, stacklevel=2)
        return ok


def _launches(steps: list):
    from ..backend.plan import walk_steps
    return (s for s in walk_steps(steps) if s["kind"] == "launch")
