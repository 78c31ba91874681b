"""Tuning (DESIGN §3): on a GPU, profile Roller's top-k rTiles of every ``tile.compute`` and keep the fastest.

Roller leaves its pick in ``rtile`` and the runners-up in ``alternatives``. :func:`tune_module` times each
candidate's kernel (a ``timer`` maps a candidate config to seconds) and rewrites ``rtile`` to the fastest.
Without a GPU there is nothing to measure, so the model's order stands; the result says which happened
(``"tuning": "model"`` or ``"profiled"``) and report.json carries it.

The timer is a parameter so the selection logic is testable without a GPU (a fake timer), and so a
candidate that fails to build or launch only drops out instead of failing the compile.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .ir.diagnostics import CompileError

PROFILE_REPEAT = 10


@dataclass
class Trial:
    """One candidate: its config, the model's seconds, and what the timer said (or why it could not)."""

    config: dict
    model_seconds: float
    measured_seconds: float | None = None
    error: str | None = None

    def to_json(self) -> dict:
        return {"rtile": self.config, "model_seconds": self.model_seconds,
                "measured_seconds": self.measured_seconds, "error": self.error}


def candidates(op, k: int) -> list:
    """The op's top-``k`` Trials, Roller's pick first (its order is the model's order)."""
    rtile = op.attributes.get("rtile")
    if not rtile:
        return []
    est = op.attributes.get("estimate", {})
    out = [Trial(_config(rtile), float(est.get("seconds", 0.0)))]
    for alt in op.attributes.get("alternatives", []) or []:
        out.append(Trial(_config(alt), float(alt.get("seconds", 0.0))))
    return out[:max(1, k)]


def _config(attr: dict) -> dict:
    return {key: dict(attr[key]) for key in ("block", "thread", "step") if key in attr} | (
        {"mma": attr["mma"]} if "mma" in attr else {})


def select(trials: list, timer) -> int:
    """Time every trial with ``timer(config) -> seconds`` (filled in place) and return the fastest's index.
    Ties keep the model's order; when every trial fails, the model's pick (0) stands."""
    best = None
    for i, t in enumerate(trials):
        try:
            t.measured_seconds = float(timer(t.config))
        except Exception as e:  # noqa: BLE001 - a candidate that cannot run just drops out
            t.error = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
            continue
        if best is None or t.measured_seconds < trials[best].measured_seconds:
            best = i
    return 0 if best is None else best


def tunable_ops(module) -> list:
    """The ``tile.compute`` ops :func:`tune_module` tunes (those Roller gave an ``rtile``), in its order."""
    return [op for op in module.walk() if op.name == "tile.compute" and op.attributes.get("rtile")]


def tune_module(module, k: int, profiler=None) -> dict:
    """Pick the fastest of the top-``k`` rTiles of every tile.compute in ``module`` (in place).

    ``profiler(op)`` returns a timer for that op (config -> seconds); ``None`` means no GPU, and the
    model decides. Returns the report entry: ``{"tuning": "model"|"profiled", "tuning_k": k, "tuned":
    [...per op...]}`` (plus ``"tuning_reason"`` when the model decided)."""
    reason = None
    if profiler is None:
        profiler, reason = gpu_profiler()
    rows = []
    for op in tunable_ops(module):
        trials = candidates(op, k)
        if profiler is None or len(trials) < 2:
            chosen = 0
        else:
            chosen = select(trials, profiler(op))
        if chosen:
            op.attributes["rtile"] = trials[chosen].config
        rows.append({"origin": str(op.attributes.get("origin", op.loc or "")), "chosen": chosen,
                     "candidates": [t.to_json() for t in trials]})
    out = {"tuning": "model" if profiler is None else "profiled", "tuning_k": k, "tuned": rows}
    if reason:
        out["tuning_reason"] = reason
    return out


def gpu_profiler():
    """``(profiler, None)`` on a machine with CuPy and a GPU, else ``(None, why not)``."""
    try:
        from .runtime.cupy_device import CupyDevice
        device = CupyDevice()
    except CompileError as e:
        return None, str(e)

    def profiler(op):
        return lambda config: profile_config(device, op, config)
    return profiler, None


def random_args(device, op) -> list:
    """Seeded standard-normal inputs (and outputs) on ``device`` for one launch of ``op``'s kernel: the same
    for every candidate, on a GPU (``profile_config``) or the emulator (``tune_emu``)."""
    from .ir.types import np_dtype
    rng = np.random.default_rng(0)
    args = []
    for v in list(op.operands) + list(op.results):
        arr = rng.standard_normal(v.type.shape).astype(np_dtype(v.type.dtype))
        raw = device.alloc(arr.nbytes)
        device.write(raw, 0, arr)
        args.append(device.typed(raw, 0, v.type.dtype, v.type.shape))
    return args


def profile_config(device, op, config: dict, repeat: int = PROFILE_REPEAT) -> float:
    """Median seconds (CUDA events) of ``op``'s kernel lowered with ``config``, on random inputs."""
    from .backend.emit import emit_kernel
    from .backend.lower import lower_compute
    saved = op.attributes.get("rtile")
    op.attributes["rtile"] = config
    try:
        func = lower_compute(op, 0)
    finally:
        op.attributes["rtile"] = saved
    kernel = device.load(func.sym_name, emit_kernel(func))
    args = random_args(device, op)
    a = func.attributes
    launch = lambda timed: device.launch(kernel, func.sym_name, a["grid"], a["block"],  # noqa: E731
                                         int(a.get("smem", 0)), args, timed=timed)
    launch(False)   # warm-up: module load, caches
    times = []
    for _ in range(repeat):
        rec = launch(True)
        device.synchronize()
        times.append(device.elapsed(rec.timer))
    return statistics.median(times)


def tune_build(build_dir: str, k: int = 8, profiler=None, check_ptx: bool | None = None,
               backend: str | None = None, executor=None) -> dict:
    """``tilec tune BUILD``: re-tune a build folder in place from its reference.tir (the IR before
    lower-cuda, which keeps Roller's ``rtile`` and ``alternatives``), lower again and rewrite the folder.
    ``backend`` (``emu`` or ``cupy``) times every candidate as a campaign unit on ``executor`` (default: here;
    a ``RayExecutor`` for ``--ray``): ``tune_emu``. Returns the new report."""
    import time

    from .ir.io import read_ir
    from .passes import get_pass
    from .backend.build import atomic_build_dir, module_text, write_build, write_json
    root = Path(build_dir)
    ref, old_report = root / "reference.tir", root / "report.json"
    if not ref.is_file() or not old_report.is_file():
        raise CompileError(f"'{build_dir}' is not a tilec build folder with a reference.tir (compile it with "
                           "a pipeline that lowers to CUDA)")
    old = json.loads(old_report.read_text())
    start = time.perf_counter()
    module = read_ir(str(ref))
    # --backend cupy here is today's GPU profiler (gpu_profiler, in this process); units only when asked.
    if profiler is None and (backend == "emu" or (backend is not None and executor is not None)):
        from .testing.campaign import LocalExecutor
        from .tune_emu import unit_profiler
        profiler = unit_profiler(module, k, backend, executor or LocalExecutor())
    tuning = tune_module(module, k, profiler)
    if backend is not None:
        tuning["tuning_backend"] = backend
    reference = module_text(module)
    get_pass("lower-cuda").apply(module)
    ptx = old.get("ptxas_checked", False) if check_ptx is None else check_ptx
    nvrtc = old.get("nvrtc_checked", False)  # a re-tuned build is checked as its first compile was

    def fill(tmp: Path) -> None:
        report = write_build(module, tmp, model=old.get("model", ""), pipeline=old.get("pipeline", ""),
                             stages=old.get("stages", []) + [{"pass": "tune", "seconds": 0.0}], start=start,
                             check_ptx=ptx, reference=reference, check_nvrtc=nvrtc)
        report.update(tuning)
        write_json(tmp / "report.json", report)
    atomic_build_dir(root, fill)
    return json.loads(old_report.read_text())


def summary(tuning: dict) -> str:
    n = len(tuning["tuned"])
    changed = sum(1 for r in tuning["tuned"] if r["chosen"])
    if tuning["tuning"] == "model":
        return f"tuning: no GPU, the model decided for {n} ops ({tuning.get('tuning_reason', '')})"
    how = " on the emulator (latency model)" if tuning.get("tuning_backend") == "emu" else ""
    return f"tuning: profiled top-{tuning['tuning_k']} of {n} ops{how}; {changed} changed from the model's pick"
