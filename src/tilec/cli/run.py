"""``tilec run``'s body, a layer over the Python API: :func:`tilec.api.load` opens the target, the inputs come
from an ``.npz`` (or an ``.npy`` for a one-input model), :meth:`CompiledModel.run` runs them, and the outputs,
RUN.json and a one-line summary go out. Every check comes before anything is written, so a failure leaves
no file behind. It is apart from click so that scripts and the run-input fuzzer (``testing/run_inputs``) take
the command's own path; ``driver.run_target`` is this function under its old name."""
from __future__ import annotations

import os
from pathlib import Path

from ..ir.diagnostics import CompileError


def run_files(target: str, inputs_path: str, outputs_path: str, backend: str = "numpy",
              input_shapes: dict | None = None, report_path: str | None = None, emu_order: str = "normal",
              cuda_graph: bool = False, repeat: int = 0, emu_resident_limit: bool = False,
              emu_sms: int | None = None, cast: bool = False, summary=None) -> dict:
    """Run ``target`` (a build folder; with ``numpy`` also a .onnx or .tir) on the inputs in ``inputs_path``
    and save the outputs to ``outputs_path``; returns them by name. ``report_path`` gets RUN.json; ``repeat``
    > 0 adds whole-plan latencies over that many more runs (``cuda_graph``: as graph replays; the numpy
    backend takes no timings). Inputs must have the dtypes the model declares (``cast`` converts them).
    ``summary``, a callable, gets the one-line summary of the run. A profile build runs the bucket that fits."""
    from .. import api
    from ..backend.build import write_json
    from ..runtime.array_files import load_arrays, save_arrays
    model = api.load(target, backend, input_shapes=input_shapes, emu_order=emu_order,
                     emu_resident_limit=emu_resident_limit, emu_sms=emu_sms)
    names = model.input_names
    inputs = model.check_inputs(load_arrays(inputs_path, names[0] if len(names) == 1 else None), cast)
    check_writable(outputs_path, "outputs")
    if report_path is not None:
        check_writable(report_path, "the report")
    timed = repeat > 0 and backend != "numpy"
    if cuda_graph and not repeat and backend != "numpy":
        raise CompileError("--cuda-graph times replays of the plan; give --repeat N too")
    values = model.run(None, inputs)
    outputs = dict(zip(model.output_names, values))
    extra = {}
    if timed:
        from ..runtime.executor import median
        times = model.time(inputs, repeat=repeat, cuda_graph=cuda_graph)
        extra["latency"] = {"runs": repeat, "median_seconds": median(times), "min_seconds": min(times),
                            "cuda_graph": cuda_graph}
    report = model.run_report(extra)
    save_arrays(outputs_path, outputs)
    if report_path is not None:
        report["target"] = str(Path(target)) if model.last_choice is not None else str(target)
        write_json(Path(report_path), report)
    if summary is not None:
        line = run_summary(outputs, outputs_path, report)
        summary(line if model.last_choice is None else f"{line}; {model.last_choice.describe()}")
    return outputs


def run_summary(outputs: dict, outputs_path: str, report: dict) -> str:
    """``wrote 2 outputs (y, z) to o.npz: emu, 4 launches, 3 host syncs, 1.23 ms``."""
    names = ", ".join(outputs) if len(outputs) <= 4 else ", ".join(list(outputs)[:4]) + ", ..."
    t = report.get("totals", {})
    parts = [report.get("backend", "?")]
    if t.get("launches"):
        parts.append(f"{t['launches']} launch{'es' if t['launches'] != 1 else ''}")
    if t.get("host_syncs"):
        parts.append(f"{t['host_syncs']} host sync{'s' if t['host_syncs'] != 1 else ''}")
    if t.get("seconds") is not None:
        parts.append(f"{t['seconds'] * 1e3:.3g} ms")
    n = len(outputs)
    return f"wrote {n} output{'s' if n != 1 else ''} ({names}) to {outputs_path}: {', '.join(parts)}"


def check_writable(path: str, what: str) -> None:
    """Fail before running, not after, when ``path`` cannot be written (its folder missing is fine: it is
    made); a folder where a file should go is an error too."""
    p = Path(path)
    if p.is_dir():
        raise CompileError(f"cannot write {what} '{path}': it is a folder")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise CompileError(f"cannot write {what} '{path}': '{parent}' is not writable")
