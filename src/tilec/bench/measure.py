"""Measure one benchmark row: compile a model with one pipeline and, for small models, run it.

    python -m tilec.bench.measure --model M.onnx --size small|full --pipeline P --build DIR --out ROW.json
                                  [--no-ptx]

Run by ``scripts/bench.py`` as a child process (one per row, so a hung or slow row can be killed by its
timeout without losing the rest). Writes ROW.json even when a step fails: ``status`` is ``ok`` or
``failed`` and ``error`` says which step failed and why; whatever was measured before the failure stays.

Small rows: compile (``--check-ptx``), run the pipeline's reference IR with the numpy interpreter (where it
has one: ``numpy_error`` says why not) and the kernels under the emulator (which counts global bytes), and compare both against onnxruntime on the same
inputs. Full rows: compile only; bytes are the compiler's model, not a measurement.
"""
from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import numpy as np


def onnx_feeds(model_path: str, seed: int = 0) -> dict:
    """Seeded inputs for every graph input. Integer inputs (token ids, masks) get 0/1, which is a valid id
    and a valid mask for every zoo model (the same choice as tests/zoo)."""
    import onnx
    from onnx import helper
    model = onnx.load(model_path, load_external_data=False)
    rng = np.random.default_rng(seed)
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        shape = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        if np.issubdtype(dtype, np.floating):
            feeds[vi.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype == np.bool_:
            feeds[vi.name] = rng.random(shape) > 0.5
        else:
            feeds[vi.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def max_abs_err(got: dict, want: dict) -> float:
    """Largest |got - want| over all outputs (inf when an output is missing or has the wrong shape)."""
    worst = 0.0
    for name, ref in want.items():
        if name not in got or np.shape(got[name]) != np.shape(ref):
            return float("inf")
        diff = np.abs(np.asarray(got[name], np.float64) - np.asarray(ref, np.float64))
        worst = max(worst, float(np.max(diff, initial=0.0)))
    return worst


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


def measure(model: str, size: str, pipeline: str, build: str, check_ptx: bool = True) -> dict:
    """One row; never raises (the error is recorded with the step that failed)."""
    row = {"model": Path(model).name.split("-")[0], "size": size, "pipeline": pipeline, "status": "ok",
           "error": None}
    step = "compile"
    try:
        from tilec.driver import compile_model
        t0 = time.perf_counter()
        compile_model(model, build, pipeline=pipeline, check_ptx=check_ptx)
        row["compile_wall_seconds"] = round(time.perf_counter() - t0, 3)
        report = json.loads(Path(build, "report.json").read_text())
        tot = report["totals"]
        passes = round(sum(s["seconds"] for s in report["stages"]), 6)
        slowest = max(report["stages"], key=lambda s: s["seconds"], default=None)
        row.update(ops=tot["ops"], kernels=tot["kernels"], launches=tot["launches"], host_ops=tot["host_ops"],
                   compile_seconds=tot["compile_seconds"], passes_seconds=passes,
                   slowest_pass=slowest and [slowest["pass"], slowest["seconds"]], stages=report["stages"],
                   modelled_bytes=tot["global_bytes_modelled"], lower_bound_bytes=tot["lower_bound_bytes"],
                   ptxas=ptxas_summary(report))
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
            row["numpy_error"] = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:200]}"
        step = "emu run"
        ex = make_executor(build, "emu")
        t0 = time.perf_counter()
        got = ex.run(feeds)
        row["emu_run_seconds"] = round(time.perf_counter() - t0, 3)  # includes g++ of uncached kernels
        run = ex.report()["totals"]
        row.update(emu_launches=run["launches"], measured_bytes=run["global_bytes"],
                   emu_vs_ort=max_abs_err(got, want),
                   ref_max_abs=max(float(np.max(np.abs(v), initial=0.0)) for v in want.values()))
    except BaseException as e:  # noqa: BLE001 - the row records why it failed; the run goes on
        row["status"] = "failed"
        first = (str(e).strip().splitlines() or [""])[0]
        row["error"] = f"{step}: {type(e).__name__}: {first[:200]}"
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
    a = ap.parse_args(argv)
    row = measure(a.model, a.size, a.pipeline, a.build, check_ptx=not a.no_ptx)
    Path(a.out).write_text(json.dumps(row, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
