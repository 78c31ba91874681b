"""Measure one benchmark row: compile a model with one pipeline and, for small models, run it.

    python -m tilec.bench.measure --model M.onnx --size small|full --pipeline P --build DIR --out ROW.json
                                  [--no-ptx]

Run by ``scripts/bench.py`` as a child process (one per row, so a hung or slow row can be killed by its
timeout without losing the rest). Writes ROW.json even when a step fails: ``status`` is ``ok`` or
``failed`` and ``error`` says which step failed and why; whatever was measured before the failure stays.

Compile time is split into import, the passes (``report.json`` ``stages``) and writing the build, with ptxas
(nvcc) within that (``phase_seconds``: timed around the compiler's functions, see ``PhaseTimer``).

Small rows: compile (``--check-ptx``), run the pipeline's reference IR with the numpy interpreter (where it
has one: ``numpy_error`` says why not) and the kernels under the emulator (which counts global bytes), and
compare both against onnxruntime on the same inputs. Full rows: compile only; bytes are the compiler's
model, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import re
import time
import traceback
from pathlib import Path

import numpy as np

from .rowrun import error_line

# ONNX ops that import as control flow (cf.loop / cf.if): LSTM / GRU / RNN become a loop over time.
CONTROL_FLOW = ("Loop", "If", "Scan", "LSTM", "GRU", "RNN")


def onnx_feeds(model_path: str, seed: int = 0) -> dict:
    """Seeded inputs for every graph input. Integer inputs (token ids, masks) get 0/1, which is a valid id
    and a valid mask for every zoo model (the same choice as tests/zoo)."""
    import onnx
    return model_feeds(onnx.load(model_path, load_external_data=False), seed)


def model_feeds(model, seed: int = 0, ints: tuple = (0, 2)) -> dict:
    """Seeded inputs for every graph input of ``model`` (an onnx.ModelProto): normal floats, random bools,
    integers drawn from ``range(*ints)``."""
    from onnx import helper
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating) or np.dtype(dtype).name == "bfloat16":   # ml_dtypes' is no np.floating
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[vi.name] = rng.random(shape) > 0.5
        else:
            feeds[vi.name] = rng.integers(*ints, shape).astype(dtype)
    return feeds


def control_flow_ops(model_path: str) -> int:
    """Control-flow nodes in the model's main graph (what the grinder pipeline moves to the device)."""
    import onnx
    graph = onnx.load(model_path, load_external_data=False).graph
    return sum(1 for n in graph.node if n.op_type in CONTROL_FLOW)


def max_abs_err(got: dict, want: dict) -> float:
    """Largest |got - want| over all outputs (inf when an output is missing or has the wrong shape)."""
    worst = 0.0
    for name, ref in want.items():
        if name not in got or np.shape(got[name]) != np.shape(ref):
            return float("inf")
        diff = np.abs(np.asarray(got[name], np.float64) - np.asarray(ref, np.float64))
        worst = max(worst, float(np.max(diff, initial=0.0)))
    return worst


def error_summary(message: str, limit: int = 300) -> str:
    """The first line of an error and, when that only introduces a tool's log (nvcc, g++), the log's first
    lines that say ``error:`` (or ``fatal``), so a failing row says why without its whole log."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()] or [""]
    text = lines[0]
    if len(lines) > 1 and text.endswith(":"):
        causes = [ln for ln in lines[1:] if re.search(r"\berror\s*:|\bfatal\b|Assertion", ln, re.I)]
        text += " " + " / ".join(dict.fromkeys(causes[:2] or lines[1:2]))
    return text[:limit]


def ptxas_summary(report: dict) -> dict:
    """Registers, smem and spills over the kernels ptxas saw (None when --check-ptx was not used)."""
    rows = [k["ptxas"] for k in report.get("kernels", []) if k.get("ptxas")]
    if not rows:
        return {"checked": False}
    return {"checked": True, "kernels": len(rows),
            "max_registers": max(r["registers"] for r in rows),
            "max_smem": max(r["smem"] for r in rows),
            "spill_bytes": sum(r["spill_bytes"] for r in rows),
            "kernels_spilling": sum(1 for r in rows if r["spill_bytes"] > 0)}


class PhaseTimer:
    """Seconds spent in the compiler's import, in writing the build (``write_build``: kernel emission, ptxas,
    weights, plan, report) and in ptxas within it, taken by wrapping the functions ``compile_model`` and
    ``write_build`` look up at call time (``report.json`` times only the passes)."""

    PHASES = {"import": ("tilec.frontend.importer", "import_onnx"), "build": ("tilec.backend.build", "write_build"),
              "ptxas": ("tilec.backend.ptxas", "check_kernels")}

    def __init__(self):
        self.seconds = dict.fromkeys(self.PHASES, 0.0)
        self._saved = []

    def __enter__(self):
        import importlib
        for phase, (mod_name, attr) in self.PHASES.items():
            mod = importlib.import_module(mod_name)
            fn = getattr(mod, attr)
            self._saved.append((mod, attr, fn))
            setattr(mod, attr, self._wrap(phase, fn))
        return self

    def _wrap(self, phase, fn):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - t0
        return timed

    def __exit__(self, *exc):
        for mod, attr, fn in self._saved:
            setattr(mod, attr, fn)
        return False


def compile_dram_bytes(report: dict) -> int | None:
    """DRAM bytes per inference as the latency model guesses them at compile time (report.json rows)."""
    rows = report.get("kernels", [])
    if not all("latency" in r for r in rows):
        return None
    return int(sum(r["latency"]["load"]["dram_bytes"] * r["launches"] for r in rows))


def measure(model: str, size: str, pipeline: str, build: str, check_ptx: bool = True,
            precision: str | None = None) -> dict:
    """One row; never raises (the error is recorded with the step that failed). ``precision``: ``tilec
    compile --precision`` (None: the model's own types, recorded as fp32)."""
    row = {"model": Path(model).name.split("-")[0], "size": size, "pipeline": pipeline,
           "precision": precision or "fp32", "status": "ok", "error": None}
    step = "compile"
    try:
        from tilec.driver import compile_model
        t0 = time.perf_counter()
        with PhaseTimer() as phases:
            compile_model(model, build, pipeline=pipeline, check_ptx=check_ptx, precision=precision)
        row["compile_wall_seconds"] = round(time.perf_counter() - t0, 3)
        report = json.loads(Path(build, "report.json").read_text())
        tot = report["totals"]
        passes = round(sum(s["seconds"] for s in report["stages"]), 6)
        slowest = max(report["stages"], key=lambda s: s["seconds"], default=None)
        row.update(ops=tot["ops"], kernels=tot["kernels"], launches=tot["launches"], host_ops=tot["host_ops"],
                   compile_seconds=tot["compile_seconds"], passes_seconds=passes,
                   slowest_pass=slowest and [slowest["pass"], slowest["seconds"]], stages=report["stages"],
                   phase_seconds={k: round(v, 3) for k, v in phases.seconds.items()},
                   modelled_bytes=tot["global_bytes_modelled"], lower_bound_bytes=tot["lower_bound_bytes"],
                   speed_of_light_us=tot.get("speed_of_light_us"), modelled_us=tot.get("modelled_us"),
                   dram_bytes=compile_dram_bytes(report),
                   ptxas=ptxas_summary(report), control_flow_ops=control_flow_ops(model))
        if size != "small":
            return row
        step = "onnxruntime"
        import onnxruntime as ort
        feeds = onnx_feeds(model)
        sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        from tilec.driver import load_target, make_executor
        from tilec.runtime.interpreter import run_module
        try:
            row["numpy_vs_ort"] = max_abs_err(run_module(load_target(build), feeds), want)
        except Exception as e:  # noqa: BLE001 - e.g. welder's IR before lower-cuda holds tile.kernel ops,
            # which have no reference implementation: the emulator run below still checks the kernels.
            row["numpy_error"] = error_line(e)
        step = "emu run"
        ex = make_executor(build, "emu")
        t0 = time.perf_counter()
        got = ex.run(feeds)
        row["emu_run_seconds"] = round(time.perf_counter() - t0, 3)  # includes g++ of uncached kernels
        run_report = ex.report()
        run = run_report["totals"]
        # The latency model again with the emulator's L2 model's bytes (DRAM and L2) in place of the guess.
        from tilec.analysis.hardware import get_arch
        from tilec.analysis.latency import remodel
        row.update(modelled_us=remodel(get_arch(report["arch"]), report, run_report)["total"],
                   dram_bytes=run.get("dram_bytes"), dram_bytes_from="emulator L2 model")
        row.update(emu_launches=run["launches"], measured_bytes=run["global_bytes"],
                   emu_vs_ort=max_abs_err(got, want),
                   ref_max_abs=max(float(np.max(np.abs(v), initial=0.0)) for v in want.values()))
    except BaseException as e:  # noqa: BLE001 - the row records why it failed; the run goes on
        row["status"] = "failed"
        row["error"] = f"{step}: {type(e).__name__}: {error_summary(str(e))}"
        row["traceback"] = traceback.format_exc()[-4000:]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--size", choices=["small", "full"], required=True)
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--build", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--no-ptx", action="store_true")
    ap.add_argument("--precision", default=None, choices=["fp32", "tf32", "fp16", "bf16"])
    a = ap.parse_args(argv)
    row = measure(a.model, a.size, a.pipeline, a.build, check_ptx=not a.no_ptx, precision=a.precision)
    Path(a.out).write_text(json.dumps(row, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
