"""Writing a build folder (DESIGN §7) from a compiled module:

    BUILD/model.tir        the final IR (parses back; its weights sidecar is weights.npz)
    BUILD/reference.tir    the IR just before lower-cuda, which the numpy interpreter runs (ground truth)
    BUILD/weights.npz      every weight buffer of the plan, by symbol name (inline constants: plan.const_key)
    BUILD/kernels/K.cu     one CUDA source per kernel.func (K.cubin too with --check-ptx; K.hip for an AMD target)
    BUILD/plan.json        launches, buffers and host ops (backend/plan.py)
    BUILD/report.json      totals and one row per kernel (with --check-nvrtc: NVRTC's verdict per kernel)

The caller (``driver.compile_model``) fills a temporary folder with :func:`write_build` and renames it into
place, so a failure here (an emitter error, nvcc rejecting a kernel) leaves any previous build untouched.
Key names in plan.json and report.json are an interface: scripts read them.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..analysis.hardware import get_arch, module_arch
from ..ir.core import Operation
from ..ir.diagnostics import CompileError
from ..ir.precision import DEFAULT_PRECISION, module_precision
from ..ir.printer import print_module
from ..ir.weights import atomic_write_bytes, declared_weights
from .launch_resources import launch_resources
from .hip import language_for
from .plan import build_plan, kernel_source_path, lower_bound_bytes, weight_arrays

WEIGHTS_FILE = "weights.npz"


def kernel_funcs(module: Operation) -> list:
    return [op for op in module.body.ops if op.name == "kernel.func"]


def atomic_build_dir(target: Path, fill) -> None:
    """Create ``target`` by filling a temp folder and renaming it; a failure leaves any old build intact."""
    target = target.resolve()
    if target.exists() and not target.is_dir():
        raise CompileError(f"build folder '{target}' exists and is not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    except OSError as e:  # a read-only or special file system (/proc), a parent that is a file, ...
        raise CompileError(f"cannot write build folder '{target}': {e.strerror or e}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a build folder is an ordinary folder
        fill(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / "build")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())


def write_build(module: Operation, out: Path, *, model: str, pipeline: str, stages: list, start: float,
                check_ptx: bool = False, reference: str | None = None, check_nvrtc: bool = False,
                check_hip: bool = False) -> dict:
    """Fill folder ``out`` (see the module docstring); returns the report. ``start`` is the
    ``time.perf_counter()`` of the compile's start, so ``compile_seconds`` covers emission and ptxas;
    ``reference`` is :func:`module_text` of the module before lower-cuda (written as reference.tir).
    ``check_nvrtc`` compiles every kernel as CuPy will (``backend/nvrtc.py``) and records it; ``check_hip``
    compiles an AMD target's kernels with hipcc and records their resource usage (``backend/hipcc.py``)."""
    from .emit import emit_kernel
    out = Path(out)
    (out / "kernels").mkdir(parents=True, exist_ok=True)
    plan = build_plan(module)
    spec = get_arch(module_arch(module))   # the target: what ptxas, NVRTC and the launch checks build for
    lang = language_for(spec)
    sources = {k.sym_name: emit_kernel(k, lang) for k in kernel_funcs(module)}
    for name, text in sources.items():
        atomic_write_bytes(out / "kernels" / f"{name}{lang.source_suffix}", text.encode())
    _check_vendor(spec, check_ptx, check_nvrtc, check_hip)
    ptx = {}
    if check_ptx and sources:
        from .ptxas import check_kernels, nvcc_compiles_for
        if nvcc_compiles_for(spec.sm_arch):
            ptx = check_kernels(sources, cubin_dir=out / "kernels", sm_arch=spec.sm_arch)
        else:   # an arch CUDA 13 dropped (v100's sm_70): CUDA 12's NVRTC runs ptxas
            from .nvrtc import ptxas_check
            ptx = ptxas_check(sources, spec.sm_arch, cubin_dir=out / "kernels")
    nvrtc = None
    if check_nvrtc:
        from .nvrtc import check_kernels as nvrtc_check
        nvrtc = nvrtc_check(sources, arch=spec.arch)
    hip = None
    if check_hip:
        from .hipcc import check_kernels as hip_check
        hip = hip_check(sources, spec.sm_arch)
    _write_weights(module, plan, out)
    if reference is not None:
        atomic_write_bytes(out / "reference.tir", reference.encode("utf-8"))
    write_json(out / "plan.json", plan)
    report = make_report(module, plan, model=model, pipeline=pipeline, stages=stages, ptx=ptx, nvrtc=nvrtc,
                         hip=hip)
    report["ptxas_checked"] = bool(check_ptx)
    report["totals"]["compile_seconds"] = round(time.perf_counter() - start, 6)
    write_json(out / "report.json", report)
    return report


def _check_vendor(spec, check_ptx: bool, check_nvrtc: bool, check_hip: bool) -> None:
    """nvcc and NVRTC check NVIDIA targets, hipcc AMD ones: asking for the other is a clean error."""
    if spec.is_amd and (check_ptx or check_nvrtc):
        raise CompileError(f"--check-{'ptx' if check_ptx else 'nvrtc'} compiles for NVIDIA GPUs; {spec.arch} is an "
                           "AMD GPU: use --check-hip")
    if check_hip and not spec.is_amd:
        raise CompileError(f"--check-hip compiles for AMD GPUs; {spec.arch} is an NVIDIA GPU: use --check-ptx")


def _write_weights(module: Operation, plan: dict, out: Path) -> None:
    """weights.npz doubles as model.tir's sidecar, so the weights are stored once per build; across builds
    too, as a hard link into the cache's content-addressed store (``backend/cache.place_weights``)."""
    arrays = dict(weight_arrays(module, plan))
    from ..ir.weights import module_weights
    data = module_weights(module)
    for op in declared_weights(module):  # declared but unused by @main (other functions, bodies)
        if op.sym_name in data:
            arrays.setdefault(op.sym_name, data[op.sym_name])
    from .cache import place_weights
    place_weights({k: np.asarray(arrays[k], order="C") for k in sorted(arrays)}, out / WEIGHTS_FILE)
    atomic_write_bytes(out / "model.tir", module_text(module).encode("utf-8"))


def module_text(module: Operation) -> str:
    """The module printed with ``weights.npz`` as its sidecar (build folders store the weights once)."""
    saved = module.attributes.get("tilec.weights")
    if declared_weights(module):
        module.attributes["tilec.weights"] = WEIGHTS_FILE
    else:
        module.attributes.pop("tilec.weights", None)
    try:
        return print_module(module)
    finally:
        if saved is None:
            module.attributes.pop("tilec.weights", None)
        else:
            module.attributes["tilec.weights"] = saved


def count_ops(module: Operation) -> int:
    """Graph and tile ops with results, plus launches: the work a model does, whatever stage it is at."""
    return sum(1 for op in module.walk()
               if (op.dialect in ("graph", "tile") and op.results) or op.name == "kernel.launch")


def launches_per_inference(steps: list, modelled_of: dict, times: int = 1) -> dict:
    """Kernel name -> launches per inference, counted the way Grinder counts a device-side loop or branch
    (``passes/grinder._whole``) so host- and device-driven control flow compare: a loop body times its
    constant trip count (an upper bound under a data-dependent exit; one iteration when the count is not a
    constant), and of an if's two branches the one that moves more modelled bytes."""
    out: dict = {}

    def add(counts: dict) -> None:
        for k, n in counts.items():
            out[k] = out.get(k, 0) + n

    for s in steps:
        if s["kind"] == "launch":
            add({s["kernel"]: times})
        elif s["kind"] == "loop":
            add(launches_per_inference(s["body"], modelled_of, times * (s.get("trip_static") or 1)))
        elif s["kind"] == "if":
            branches = [launches_per_inference(s[b], modelled_of, times) for b in ("then", "else")]
            add(max(branches, key=lambda c: sum(modelled_of.get(k, 0) * n for k, n in c.items())))
    return out


def make_report(module: Operation, plan: dict, *, model: str, pipeline: str, stages: list,
                ptx: dict | None = None, nvrtc: dict | None = None, hip: dict | None = None) -> dict:
    """report.json: ``totals`` (ops, kernels, launches, host_ops, global_bytes_modelled, lower_bound_bytes,
    compile_seconds, speed_of_light_us: ``analysis/speed_of_light``, modelled_us: ``analysis/latency``) and
    ``kernels``, one row per kernel.func (with its ``modelled_us`` and the model's ``latency`` breakdown)
    in module order; launches and modelled bytes
    are per inference (:func:`launches_per_inference`). ``nvrtc`` is ``backend/nvrtc.check_kernels``' answer
    (``nvrtc_checked``, a top-level ``nvrtc`` entry and each row's ``nvrtc``); ``hip`` is
    ``backend/hipcc.check_kernels``' answer (``hip_checked``, each row's ``hip``, totals ``max_vgprs`` and
    ``hip_spills``)."""
    from ..analysis import latency
    from ..analysis import speed_of_light as sol
    ptx = ptx or {}
    spec = get_arch(module_arch(module))
    kernels = kernel_funcs(module)
    modelled_of = {k.sym_name: int(k.attributes.get("bytes_modelled", 0)) for k in kernels}
    launches = launches_per_inference(plan["steps"], modelled_of)
    lower_bound = lower_bound_bytes(plan)
    rows = []
    for k in kernels:
        a = k.attributes
        row = {"name": k.sym_name, "kind": a.get("kind", ""), "origin": a.get("origin", ""),
               "flops": int(a.get("flops", 0)), "bytes_modelled": int(a.get("bytes_modelled", 0)),
               "grid": list(a["grid"]), "block": list(a["block"]), "smem_dynamic": int(a.get("smem", 0)),
               "launches": launches.get(k.sym_name, 0), "cu": kernel_source_path(module, k.sym_name),
               "speed_of_light_us": round(sol.kernel_seconds(spec, k) * 1e6, 4)}
        # The per-build launch check: a block no GPU of the arch can run (shared memory over what its launch
        # opts in to, threads, ptxas' registers) stops the build here (launch_resources.LaunchLimitError).
        res = launch_resources(k, arch=spec.arch, ptxas=ptx.get(k.sym_name))
        row.update(smem_static=res.smem_static, smem_optin=res.smem_optin, registers=res.registers,
                   registers_from=res.registers_from)
        if k.sym_name in ptx:
            row["ptxas"] = ptx[k.sym_name].to_json()
        if hip is not None:
            row["hip"] = hip[k.sym_name].to_json()
        if nvrtc is not None:
            row["nvrtc"] = nvrtc["kernels"].get(k.sym_name, {"ok": False})
        # The latency model (analysis/latency.py), with compile-time bytes; `make bench` redoes it with a
        # run's measured L2 / DRAM bytes (latency.remodel).
        row["modelled_us"], row["latency"] = latency.row_latency(spec, k, row)
        rows.append(row)
    modelled = sum(r["bytes_modelled"] * r["launches"] for r in rows)
    totals = {"ops": count_ops(module), "kernels": len(rows), "launches": sum(launches.values()),
              "host_ops": len(plan["host_ops"]), "global_bytes_modelled": modelled,
              "lower_bound_bytes": lower_bound, "arena_bytes": plan["arena_bytes"], "compile_seconds": 0.0,
              "speed_of_light_us": round(sol.build_seconds(spec, kernels, launches, lower_bound) * 1e6, 4),
              "modelled_us": round(sum(r["modelled_us"] * r["launches"] for r in rows), 4)}
    if ptx:
        totals["max_registers"] = max(i.registers for i in ptx.values())
        totals["spill_bytes"] = sum(i.spill_bytes for i in ptx.values())
    if hip:
        totals["max_vgprs"] = max(i.vgprs + i.agprs for i in hip.values())
        totals["hip_spills"] = sum(i.spills for i in hip.values())
    report = {"model": model, "pipeline": pipeline, "arch": spec.arch,
              "precision": module_precision(module) or DEFAULT_PRECISION, "stages": stages,
              "totals": totals, "kernels": rows,
              "host_ops": sorted(set(plan["host_ops"])), "ptxas_checked": bool(ptx),
              "nvrtc_checked": nvrtc is not None}
    if hip is not None:
        report["hip_checked"] = True
    if nvrtc is not None:
        report["nvrtc"] = {k: v for k, v in nvrtc.items() if k != "kernels"}
    return report
