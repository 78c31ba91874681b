"""Which device, backend and arch spec ``make gpu-check`` runs with (docs/gpu.md, "AMD GPUs").

The probe row (``tilec.bench.gpu_row.probe``) says what device 0 is: an NVIDIA GPU under CuPy's CUDA build, or an
AMD GPU under CuPy's ROCm build (``cupy.cuda.runtime.is_hip``), whose ``gcnArchName`` (``gfx90a:sramecc+:xnack-``)
names the ISA. ``resolve`` turns that and the ``--arch`` / ``--backend`` overrides into the rows' backend and
arch: on NVIDIA nothing changes (``cupy``, the arch from the card's name in each row); on AMD the ``hip`` backend
and the arch spec whose ``sm_arch`` is the ISA (``analysis/hw/mi250x.json``: gfx90a). An AMD GPU tilec has no
spec for is an error each row reports (``--arch`` overrides it), never a traceback.
"""
from __future__ import annotations

# The MI300 series' pre-production ISA names (LLVM's AMDGPU usage docs: gfx940, gfx941 and gfx942 are all
# CDNA 3, merged into gfx942 by ROCm 6): the same chip as the spec's gfx942.
ISA_ALIASES = {"gfx940": "gfx942", "gfx941": "gfx942"}


class UnknownGpu(Exception):
    """Device 0 is an AMD GPU whose ISA no arch spec in ``analysis/hw`` targets."""


def amd_archs() -> dict:
    """``{isa: arch}`` for every AMD arch spec (its ``sm_arch`` is the gfx ISA), plus ``ISA_ALIASES``."""
    from ..analysis.hardware import available_archs, get_arch
    found = {}
    for name in available_archs():
        isa = get_arch(name).sm_arch
        if isa.startswith("gfx"):
            found.setdefault(isa, name)
    found.update({alias: found[isa] for alias, isa in ISA_ALIASES.items() if isa in found})
    return dict(sorted(found.items()))


def isa_of(props: dict) -> str:
    """The gfx ISA of a HIP device's properties (``gcnArchName`` without its ``:feature+`` suffixes); '' if none."""
    raw = props.get("gcnArchName") or b""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.split(":")[0].strip().lower()


def arch_from_props(props: dict) -> str:
    """The tilec arch for an AMD device's properties (``cupy.cuda.runtime.getDeviceProperties(0)`` on ROCm);
    raises UnknownGpu saying which ISA and what to do where no spec targets it."""
    isa, table = isa_of(props), amd_archs()
    if isa in table:
        return table[isa]
    name = props.get("name") or b""
    name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    known = ", ".join(f"{k} -> {v}" for k, v in table.items())
    raise UnknownGpu(f"AMD GPU '{name or '?'}' ({isa or 'no gcnArchName'}) has no tilec arch spec (known: {known}); "
                     "pass --arch mi250x or --arch mi300x to compile for one of them anyway")


def resolve(machine: dict, arch: str | None, backend: str | None) -> dict:
    """The rows' ``backend`` and ``arch`` (None: each row asks the card, as before), the ``device`` text for the
    table's header, and ``error`` (every row fails with it) from the probe row ``machine`` and the overrides."""
    amd = machine.get("vendor") == "amd"
    error = None
    if arch is None and amd:
        if machine.get("tilec_arch"):
            arch = machine["tilec_arch"]
        else:
            error = machine.get("arch_error") or "the probe could not tell which AMD GPU this is; pass --arch"
    backend = backend or ("hip" if amd else "cupy")
    return {"backend": backend, "arch": arch, "device": machine.get("gpu") or "?", "error": error}


def header(dry_run: bool, mode: dict) -> str:
    """The table's title: the device and the backend (and the arch where one was chosen for every row)."""
    arch = f", arch {mode['arch']}" if mode.get("arch") else ""
    if dry_run:
        return f"# GPU check (dry run, emu backend{arch})"
    return f"# GPU check ({mode['device']}, {mode['backend']} backend{arch})"
