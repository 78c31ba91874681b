"""What one block of a kernel asks of the GPU, in one place: threads, static and dynamic shared memory,
registers, and the dynamic shared-memory opt-in its launch needs (DESIGN §7).

CUDA's per-block rules (CUDA C++ Programming Guide, "Shared Memory" and ``cudaFuncSetAttribute``):

- a kernel's *static* shared memory (its ``__shared__`` / ``TL_SHARED`` arrays) is at most
  ``smem_per_block_bytes`` (48 KB; ptxas refuses more);
- the launch passes the *dynamic* part (``extern __shared__``); without an opt-in, static + dynamic must fit
  those 48 KB. Above that the host sets ``cudaFuncAttributeMaxDynamicSharedMemorySize`` (CuPy:
  ``kernel.max_dynamic_shared_size_bytes``) to at least the dynamic bytes, and static + that attribute may
  reach ``smem_per_block_optin_bytes`` (227 KB on sm_90), never more;
- at most ``max_threads_per_block`` threads, and one block's registers (per thread, allocated per warp in
  ``reg_alloc_unit`` steps) must fit the SM's register file.

:func:`launch_resources` answers for a ``kernel.func`` at compile time and refuses (:class:`LaunchLimitError`,
exit 3: tilec chose the tile, so a block no GPU of the arch can hold is tilec's bug) what breaks a rule;
:func:`shared_opt_in` is the opt-in decision the CuPy launch and the emulator take from the same numbers,
and :func:`block_limit_problem` the per-block check the emulator applies to every launch.
All limits are the arch spec's (``analysis/hw/*.json``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis.hardware import DEFAULT_ARCH, GPUSpec, get_arch
from ..ir.attributes import SymbolRef
from ..ir.core import lookup_symbol
from ..ir.types import itemsize


class LaunchLimitError(Exception):
    """A kernel whose block no GPU of the target arch can run. Not a CompileError: the input is fine, the
    tile tilec chose is not, so the CLI reports it as an internal error (exit 3)."""


@dataclass(frozen=True)
class LaunchResources:
    """One kernel's per-block resources. ``registers`` is ptxas' count when ``--check-ptx`` ran
    (``registers_from == "ptxas"``), else the kernel-IR estimate (``"estimate"``, an upper bound that ptxas
    meets under ``__launch_bounds__`` by spilling, so it is reported, never refused). ``smem_optin`` is the
    value to give ``cudaFuncAttributeMaxDynamicSharedMemorySize`` before launching (0: none needed)."""

    kernel: str
    threads: int
    smem_static: int
    smem_dynamic: int
    registers: int
    registers_from: str
    smem_optin: int

    @property
    def smem_total(self) -> int:
        return self.smem_static + self.smem_dynamic

    def to_json(self) -> dict:
        return {"threads": self.threads, "smem_static": self.smem_static, "smem_dynamic": self.smem_dynamic,
                "smem_optin": self.smem_optin, "registers": self.registers, "registers_from": self.registers_from}


def shared_opt_in(static: int, dynamic: int, spec: GPUSpec) -> int:
    """The dynamic shared-memory opt-in a launch needs: ``dynamic`` when static + dynamic exceed the default
    per-block amount (48 KB), else 0 (the default attribute, 48 KB less the static part, suffices)."""
    return dynamic if static + dynamic > spec.smem_per_block_bytes else 0


def block_limit_problem(threads: int, static: int, dynamic: int, opt_in: int, spec: GPUSpec) -> str | None:
    """Why a launch of ``threads``-thread blocks with ``static`` + ``dynamic`` shared bytes, after an opt-in of
    ``opt_in`` dynamic bytes (0: none), would be refused by a GPU of ``spec``; None when it would run."""
    if not 1 <= threads <= spec.max_threads_per_block:
        return f"{threads} threads per block (the {spec.arch} limit is {spec.max_threads_per_block})"
    if static > spec.smem_per_block_bytes:
        return (f"{static} B of static shared memory (at most {spec.smem_per_block_bytes} B may be static; "
                "more must be dynamic)")
    if static + dynamic > spec.smem_per_block_optin_bytes:
        return (f"{static} B static + {dynamic} B dynamic shared memory (the {spec.arch} per-block maximum is "
                f"{spec.smem_per_block_optin_bytes} B)")
    if opt_in and static + opt_in > spec.smem_per_block_optin_bytes:
        return (f"an opt-in of {opt_in} B dynamic shared memory beside {static} B static (the {spec.arch} "
                f"per-block maximum is {spec.smem_per_block_optin_bytes} B)")
    allowed = opt_in if opt_in else spec.smem_per_block_bytes - static
    if dynamic > allowed:
        what = f"an opt-in of {opt_in} B" if opt_in else f"no opt-in ({spec.smem_per_block_bytes} B in all)"
        return f"{static} B static + {dynamic} B dynamic shared memory after {what}"
    return None


def register_problem(threads: int, registers: int, spec: GPUSpec) -> str | None:
    """Why one block of ``threads`` threads using ``registers`` each cannot be resident; None when it can."""
    from ..analysis.rammer.regs import blocks_for_regs
    if registers > spec.max_regs_per_thread or blocks_for_regs(spec, threads, registers) < 1:
        return (f"{registers} registers per thread x {threads} threads (the {spec.arch} SM holds "
                f"{spec.regs_per_sm} registers, at most {spec.max_regs_per_thread} per thread)")
    return None


def static_shared_bytes(func) -> int:
    """Bytes of the shared arrays ``func`` (a ``kernel.func``) declares, as ptxas counts them (ptxas may count
    less where an array's tail is never indexed, so this is an upper bound: safe for the limits):
    - kernel IR: every ``kernel.shared`` site;
    - a persistent rProgram: its one arena, the largest member's layout, and its buffer pointer table
      (``analysis/rammer/shared``);
    - a device loop / branch: each distinct stage kernel's arrays, which its ``__device__`` function keeps;
    - a body written as text (``source``): the ``smem_static`` its lowering records (0 when absent)."""
    a = func.attributes
    kind = a.get("kind")
    if kind == "persistent":
        from ..analysis.rammer.shared import args_table_bytes, arena_bytes
        return arena_bytes(_referenced(func, "rprog.operator")) + args_table_bytes(len(a["params"]) - 1)
    if kind in ("device_loop", "device_if"):
        return sum(static_shared_bytes(k) for k in _referenced(func, "utask.stage"))
    if "source" in a:
        return int(a.get("smem_static", 0))
    return sum(itemsize(op.attributes["dtype"]) * math.prod(op.attributes["dims"])
               for op in func.walk() if op.name == "kernel.shared")


def _referenced(func, op_name: str) -> list:
    """The distinct kernels that ``func``'s ``op_name`` ops name (``kernel = @k``), in order."""
    module, seen = func.parent_op, {}
    for op in func.body.ops:
        ref = op.attributes.get("kernel") if op.name == op_name else None
        if isinstance(ref, SymbolRef) and ref.name not in seen and module is not None:
            k = lookup_symbol(module, ref.name)
            if k is not None and k.name == "kernel.func":
                seen[ref.name] = k
    return list(seen.values())


def launch_resources(func, arch: str = DEFAULT_ARCH, ptxas=None) -> LaunchResources:
    """The launch resources of ``func`` on ``arch``; ``ptxas`` is its ``PtxasInfo`` when ``--check-ptx`` ran
    (its registers and static bytes are then ptxas' own). Raises :class:`LaunchLimitError`, naming the
    kernel, for a block no GPU of ``arch`` can run."""
    from ..analysis.rammer.cost import REGS_ASSUMED
    from ..analysis.rammer.regs import kernel_regs
    spec = get_arch(arch)
    a = func.attributes
    threads = math.prod(a["block"])
    static = static_shared_bytes(func) if ptxas is None else int(ptxas.smem)
    dynamic = int(a.get("smem", 0))
    regs, source = (int(ptxas.registers), "ptxas") if ptxas is not None else (kernel_regs(func, REGS_ASSUMED),
                                                                                "estimate")
    opt_in = shared_opt_in(static, dynamic, spec)
    problem = block_limit_problem(threads, static, dynamic, opt_in, spec)
    if problem is None and source == "ptxas":
        problem = register_problem(threads, regs, spec)
    if problem is not None:
        raise LaunchLimitError(f"kernel {func.sym_name}: no {spec.arch} block can run it: {problem}")
    return LaunchResources(func.sym_name, threads, static, dynamic, regs, source, opt_in)
