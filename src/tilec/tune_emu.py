"""``tilec tune --backend emu`` and ``--ray`` (issue #22): every candidate rTile as a campaign unit.

Without a GPU the emulator stands in for the profiler: a candidate's kernel is lowered, run once under the
CUDA emulator on seeded random inputs with its L2 model, and ranked by the latency model
(``analysis/latency``) on the global and DRAM bytes the emulator counted (registers and static shared memory
from the compile-time estimate, as a report.json row without ``--check-ptx``). The result is a function of
the IR text and the config only, so the same build comes out wherever the units run.

A unit's content is the module's reference IR text, the op's position among the tunable ops and the config
(``tilec.testing.campaign.Unit``), so any Ray worker can run any candidate; with ``--backend cupy`` the units
are pinned to GPU workers (``num_gpus=1``) and time the kernel with CUDA events (``tune.profile_config``).
"""
from __future__ import annotations

from .ir.diagnostics import CompileError
from .tune import tunable_ops


def _op_of(ir_text: str, index: int):
    from .ir.parser import parse_module
    module = parse_module(ir_text, "reference.tir")   # no weights: lowering one op does not read them
    return module, tunable_ops(module)[index]


def emu_seconds(ir_text: str, index: int, config: dict) -> float:
    """The latency model's seconds for op ``index`` of ``ir_text`` lowered with ``config``, from one emulator
    run's measured bytes. Raises (the candidate drops out) when it does not lower or run."""
    from dataclasses import replace

    from .analysis.hardware import get_arch, module_arch
    from .analysis.latency import estimate, kernel_load
    from .analysis.measured import effective_spec
    from .backend.emit import emit_kernel
    from .backend.launch_resources import launch_resources
    from .backend.lower import lower_compute
    from .runtime.emu_device import EmuDevice
    from .tune import random_args
    module, op = _op_of(ir_text, index)
    spec = get_arch(module_arch(module))
    op.attributes["rtile"] = config
    func = lower_compute(op, 0)
    device = EmuDevice()
    device.arch = spec.arch
    kernel = device.load(func.sym_name, emit_kernel(func))
    a = func.attributes
    rec = device.launch(kernel, func.sym_name, a["grid"], a["block"], int(a.get("smem", 0)),
                        random_args(device, op))
    res = launch_resources(func, arch=spec.arch)
    load = kernel_load(spec, func, {"smem_static": res.smem_static, "smem_dynamic": int(a.get("smem", 0)),
                                    "registers": res.registers})
    measured = rec.load_bytes + rec.store_bytes
    load = replace(load, l2_bytes=float(measured),
                   dram_bytes=float(rec.dram_bytes if rec.dram_bytes is not None else load.dram_bytes))
    return estimate(effective_spec(spec), load).seconds


def gpu_seconds(ir_text: str, index: int, config: dict) -> float:
    """CUDA-event seconds of the candidate on this worker's GPU (``tune.profile_config``)."""
    from .runtime.cupy_device import CupyDevice
    from .tune import profile_config
    _, op = _op_of(ir_text, index)
    return profile_config(CupyDevice(), op, config)


def unit_profiler(module, k: int, backend: str, executor):
    """A ``tune_module`` profiler whose timings were all measured up front as campaign units on
    ``executor``: one unit per candidate of every tunable op. A candidate that failed raises its error
    again when ``select`` asks for it, so it drops out as with the in-process profiler."""
    from .ir.printer import print_module
    from .testing.campaign import Unit
    from .tune import candidates
    if backend not in ("emu", "cupy"):
        raise CompileError(f"tilec tune: unknown backend '{backend}' (emu or cupy)")
    fn = emu_seconds if backend == "emu" else gpu_seconds
    text = print_module(module)
    ops = tunable_ops(module)
    keys, units = [], []
    for i, op in enumerate(ops):
        trials = candidates(op, k)
        if len(trials) < 2:
            continue   # nothing to choose: tune_module keeps the model's pick without timing
        for t in trials:
            keys.append((i, repr(t.config)))
            units.append(Unit.of(_guarded, fn, text, i, t.config))
    times = dict(zip(keys, executor.run(units)))
    index = {id(op): i for i, op in enumerate(ops)}

    def profiler(op):
        def timer(config):
            kind, value = times[(index[id(op)], repr(config))]
            if kind == "error":
                raise RuntimeError(value)
            return value
        return timer
    return profiler


def _guarded(fn, ir_text: str, index: int, config: dict) -> tuple:
    """``("ok", seconds)`` or ``("error", why)``: a candidate that cannot run is data, not a failed campaign."""
    try:
        return "ok", float(fn(ir_text, index, config))
    except Exception as e:  # noqa: BLE001 - the candidate drops out, as tune.select does it
        from .bench.rowrun import error_line
        return "error", error_line(e)
