"""``tilec inspect BUILD``: kernel quality without a GPU, from ptxas and the SASS.

Per kernel of a build folder: ptxas' registers, static shared memory and spills; the main loop of its SASS
(``backend/sass.py``) with its instruction mix, FLOPs per iteration and instructions per tensor-core FLOP;
and a static issue-bound estimate of the fraction of peak.

**Cubins.** A build made with ``--check-ptx`` has ``kernels/K.cubin`` and ptxas' numbers in report.json; those
are used as they are. Otherwise the kernels are compiled with ``backend/ptxas.check_kernels`` for the build's
target (``arch`` of report.json / plan.json → ``analysis/hw/<arch>.json``'s ``sm_arch``) into a temporary
folder, through ptxas' cache, so a second inspect of the same build runs no nvcc.

**Disassembler.** ``cuobjdump -sass`` from NVIDIA's pip wheel ``nvidia-cuda-cuobjdump`` (else ``nvdisasm -c``
from ``nvidia-cuda-nvdisasm``), found through the installed distributions' file records as
``nvrtc_lib`` finds NVRTC, then on PATH; neither is a clean error naming the pip install.

**The estimate** (a bound, not a prediction). Each of an SM's ``sm_partitions`` schedulers issues at most one
warp instruction per cycle. If a kernel did nothing but run its main loop, N instructions per iteration doing
F FLOPs of its dominant unit (the unit with the most FLOPs: f16/bf16/tf32 tensor cores, or fp32 FFMA/FADD/FMUL),
no SM could do more than ``sm_partitions × F / N`` FLOPs per cycle, so the chip no more than
``sm_partitions × F / N × num_sms × clock`` FLOP/s; ``fraction_of_peak`` is that over the unit's peak
(``fp16_tensor_flops``, ``fp32_flops``, ...), at most 1. It ignores memory, latency, dependencies, occupancy,
the prologue and epilogue, and inner loops' extra trips (each counted once), all of which only lower the real
figure; and mma.sync may not reach the tensor peak on sm_90 at all (that peak assumes wgmma).
"""
from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..analysis.hardware import DEFAULT_ARCH, GPUSpec, get_arch
from ..ir.diagnostics import CompileError
from . import sass

# (tool, the wheel holding it, its arguments before the cubin), in order of preference.
TOOLS = (("cuobjdump", "nvidia-cuda-cuobjdump", ("-sass",)), ("nvdisasm", "nvidia-cuda-nvdisasm", ("-c",)))
INSTALL_HINT = 'pip install nvidia-cuda-cuobjdump (or: pip install -e ".[inspect]")'
TIMEOUT_S = 120
PEAK_KEYS = {"f16_tensor": "fp16_tensor_flops", "bf16_tensor": "bf16_tensor_flops",
             "tf32_tensor": "tf32_tensor_flops", "fp32": "fp32_flops"}


def find_disassembler() -> tuple:
    """``(tool name, path)`` of the first of TOOLS found in its wheel, then on PATH; CompileError if none."""
    for tool, wheel, _ in TOOLS:
        try:
            files = list(metadata.files(wheel) or ())
        except metadata.PackageNotFoundError:
            files = []
        hits = sorted(str(f.locate()) for f in files if f.name == tool)
        if hits and Path(hits[0]).is_file():
            return tool, hits[0]
    for tool, _, _ in TOOLS:
        path = shutil.which(tool)
        if path:
            return tool, path
    raise CompileError(f"tilec inspect needs cuobjdump or nvdisasm (neither is installed in this Python "
                       f"environment nor on PATH): {INSTALL_HINT}")


def disassemble(cubin: Path, tool: tuple) -> dict:
    """``{function: [Instruction]}`` of one cubin through ``tool`` (:func:`find_disassembler`)."""
    name, path = tool
    args = next(a for t, _, a in TOOLS if t == name)
    try:
        r = subprocess.run([path, *args, str(cubin)], capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CompileError(f"{name} timed out after {TIMEOUT_S}s on {cubin.name}") from None
    if r.returncode != 0:
        raise CompileError(f"{name} failed on {cubin.name} (exit {r.returncode}): {r.stderr.strip()}")
    return sass.parse_sass(r.stdout)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise CompileError(f"{path}: not readable JSON ({e})") from None


def _build_facts(build: Path) -> tuple:
    """``(sources {name: text} in the build's kernel order, report rows by name, arch)``."""
    kernels_dir = build / "kernels"
    found = sorted(kernels_dir.glob("*.cu")) if kernels_dir.is_dir() else []
    if not found and kernels_dir.is_dir() and any(kernels_dir.glob("*.hip")):
        raise CompileError(f"{build}: a build for an AMD GPU (kernels/*.hip): tilec inspect reads NVIDIA SASS; "
                           "tilec compile --check-hip records its kernels' resources in report.json (docs/amd.md)")
    if not found:
        raise CompileError(f"{build}: not a tilec build folder (no kernels/*.cu)")
    report = _read_json(build / "report.json")
    rows = {r.get("name"): r for r in report.get("kernels", ()) if isinstance(r, dict)}
    order = [n for n in rows if (kernels_dir / f"{n}.cu").is_file()]   # the build's order: ptxas' cache keys
    names = order + [p.stem for p in found if p.stem not in rows]
    sources = {n: (kernels_dir / f"{n}.cu").read_text() for n in names}
    arch = report.get("arch") or _read_json(build / "plan.json").get("arch") or DEFAULT_ARCH
    return sources, rows, str(arch)


def _cubins_and_resources(build: Path, sources: dict, rows: dict, spec: GPUSpec, tmp: Path) -> tuple:
    """``({name: cubin path}, {name: ptxas dict})``: the build's own where ``--check-ptx`` made them, else
    compiled now for ``spec.sm_arch`` into ``tmp`` (through ptxas' cache)."""
    kernels_dir = build / "kernels"
    if all((kernels_dir / f"{n}.cubin").is_file() and "ptxas" in rows.get(n, {}) for n in sources):
        return {n: kernels_dir / f"{n}.cubin" for n in sources}, {n: rows[n]["ptxas"] for n in sources}
    from .ptxas import check_kernels, find_nvcc
    if find_nvcc() is None:
        raise CompileError("tilec inspect needs nvcc (the CUDA toolkit) on PATH to compile the kernels of a "
                           "build made without --check-ptx")
    infos = check_kernels(sources, cubin_dir=tmp, sm_arch=spec.sm_arch)
    return {n: tmp / f"{n}.cubin" for n in sources}, {n: infos[n].to_json() for n in sources}


def estimate(loop: sass.Mix, spec: GPUSpec) -> dict | None:
    """The issue bound of the module docstring for a main loop's :class:`~sass.Mix`; None without FLOPs."""
    if loop is None or not loop.total_flops:
        return None
    unit, unit_flops = max(sorted(loop.flops.items()), key=lambda kv: kv[1])
    per_sm_cycle = spec.sm_partitions * unit_flops / loop.instructions
    bound = per_sm_cycle * spec.num_sms * spec.clock_ghz * 1e9
    peak = float(getattr(spec, PEAK_KEYS.get(unit, ""), 0.0) or 0.0)
    return {"unit": unit, "flops_per_sm_cycle": round(per_sm_cycle, 3), "issue_bound_flops": round(bound),
            "peak_flops": peak or None, "fraction_of_peak": round(min(1.0, bound / peak), 4) if peak else None}


def inspect_kernel(name: str, instrs: list, resources: dict, row: dict, spec: GPUSpec) -> dict:
    """One kernel's inspection (the ``--json`` row)."""
    loop, mix = sass.main_loop(instrs)
    out = {"name": name, "kind": row.get("kind"), "ptxas": resources, "instructions": len(instrs),
           "loops": len(sass.loops(instrs)), "kernel_mix": sass.mix(instrs).to_json(), "main_loop": None}
    if loop is not None:
        tensor = mix.tensor_flops
        inner = [lp for lp in sass.loops(instrs) if lp != loop and loop.start <= lp.start and lp.end <= loop.end]
        out["main_loop"] = {"start": loop.start, "end": loop.end, "inner_loops": len(inner), **mix.to_json(),
                            "flops_per_iteration": mix.total_flops,
                            "instructions_per_tensor_flop": (float(f"{mix.instructions / tensor:.4g}")
                                                             if tensor else None),
                            "estimate": estimate(mix, spec)}
    return out


def inspect_build(build, kernels=()) -> dict:
    """Inspect every kernel of ``build`` (or those named in ``kernels``); see the module docstring."""
    build = Path(build)
    sources, rows, arch = _build_facts(build)
    unknown = [k for k in kernels if k not in sources]
    if unknown:
        raise CompileError(f"{build}: no kernel '{unknown[0]}' (kernels: {', '.join(sources)})")
    spec = get_arch(arch)
    tool = find_disassembler()
    with tempfile.TemporaryDirectory(prefix="tilec-inspect-") as tmp:
        cubins, resources = _cubins_and_resources(build, sources, rows, spec, Path(tmp))
        wanted = [n for n in sources if not kernels or n in kernels]
        functions, seen = {}, set()
        for name in wanted:
            digest = hashlib.sha256(cubins[name].read_bytes()).hexdigest()
            if digest not in seen:    # a batch's kernels share one cubin: disassemble it once
                seen.add(digest)
                functions.update(disassemble(cubins[name], tool))
    missing = [n for n in wanted if n not in functions]
    if missing:
        raise CompileError(f"{tool[0]} shows no function '{missing[0]}' in its cubin")
    return {"build": str(build), "arch": spec.arch, "sm_arch": spec.sm_arch, "disassembler": tool[0],
            "kernels": [inspect_kernel(n, functions[n], resources[n], rows.get(n, {}), spec) for n in wanted]}


# The table's columns: (header, cell of one inspected kernel).
def _loop_cell(k: dict, fn) -> str:
    return fn(k["main_loop"]) if k["main_loop"] else "-"


def _memory_cell(loop: dict) -> str:
    return " ".join(f"{m}x{c}" for m, c in loop["memory"].items()) or "-"


def _tensor_cell(loop: dict) -> str:
    return " ".join(f"{c} {m}" for m, c in loop["tensor"].items()) or "-"


def _bound_cell(loop: dict) -> str:
    est = loop["estimate"]
    if est is None:
        return "-"
    frac = est["fraction_of_peak"]
    return f"{est['unit']} " + (f"{frac:.0%}" if frac is not None else f"{est['issue_bound_flops'] / 1e12:.1f} TF/s")


COLUMNS = (
    ("kernel", lambda k: k["name"]),
    ("kind", lambda k: k["kind"] or "-"),
    ("regs", lambda k: str(k["ptxas"].get("registers", "-"))),
    ("smem", lambda k: str(k["ptxas"].get("smem", "-"))),
    ("spill", lambda k: str(k["ptxas"].get("spill_bytes", "-"))),
    ("stack", lambda k: str(k["ptxas"].get("stack", "-"))),
    ("loop", lambda k: _loop_cell(k, lambda lp: f"{lp['instructions']}" + (f" ({lp['inner_loops']} inner)"
                                                                          if lp["inner_loops"] else ""))),
    ("tensor", lambda k: _loop_cell(k, _tensor_cell)),
    ("fp32", lambda k: _loop_cell(k, lambda lp: str(lp["classes"].get("fp32", 0)))),
    ("loads/stores", lambda k: _loop_cell(k, _memory_cell)),
    ("bar", lambda k: _loop_cell(k, lambda lp: str(lp["classes"].get("barrier", 0)))),
    ("sfu", lambda k: _loop_cell(k, lambda lp: str(lp["classes"].get("sfu", 0)))),
    ("FLOP/iter", lambda k: _loop_cell(k, lambda lp: str(lp["flops_per_iteration"]))),
    ("ins/TC-FLOP", lambda k: _loop_cell(k, lambda lp: f"{lp['instructions_per_tensor_flop']:.2e}"
                                         if lp["instructions_per_tensor_flop"] else "-")),
    ("issue bound", lambda k: _loop_cell(k, _bound_cell)),
)


def format_table(result: dict) -> str:
    """:func:`inspect_build`'s answer as a table, one row per kernel (docs/inspect.md: the columns)."""
    rows = [[h for h, _ in COLUMNS]] + [[cell(k) for _, cell in COLUMNS] for k in result["kernels"]]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    lines = [f"{result['build']}: {result['arch']} ({result['sm_arch']}), SASS by {result['disassembler']}; "
             "main-loop counts are static, per warp"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)
