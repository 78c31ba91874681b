"""GPU check: compile every sample model, run it on the GPU (cupy backend) and against the numpy reference,
and print a markdown table (model, kernels, launches, max abs error, median latency of the whole plan).

    PYTHONPATH=src python scripts/gpu_check.py OUT_DIR [--models 'samples/*.onnx'] [--runs 20] [--dry-run]

Needs only numpy, onnx, lark and (for the GPU) CuPy: no click, no network. ``--dry-run`` does everything
with the emu backend instead of the GPU, so the script itself is tested where there is no GPU. Writes
OUT_DIR/gpu_check.md and OUT_DIR/gpu_check.json; exits 1 when any model fails or is off by more than --tol.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def random_inputs(plan: dict, seed: int = 0) -> dict:
    from tilec.ir.types import np_dtype
    rng = np.random.default_rng(seed)
    buffers = {b["name"]: b for b in plan["buffers"]}
    out = {}
    for i in plan["inputs"]:
        b = buffers[i["buffer"]]
        if b["dtype"] in ("f16", "bf16", "f32", "f64"):
            out[i["name"]] = rng.standard_normal(b["shape"]).astype(np_dtype(b["dtype"]))
        elif b["dtype"] == "bool":
            out[i["name"]] = rng.random(b["shape"]) > 0.5
        else:  # ids, indices: small non-negative values are valid for every sample model
            out[i["name"]] = rng.integers(0, 4, size=b["shape"]).astype(np_dtype(b["dtype"]))
    return out


def check_model(model: Path, out: Path, backend: str, runs: int, cuda_graph: bool, check_ptx: bool) -> dict:
    from tilec.driver import compile_model, load_target, make_executor
    from tilec.runtime.executor import median
    from tilec.runtime.interpreter import run_module
    build = out / "builds" / model.stem
    t0 = time.perf_counter()
    compile_model(str(model), str(build), pipeline="default", check_ptx=check_ptx)
    compile_s = time.perf_counter() - t0
    plan = json.loads((build / "plan.json").read_text())
    report = json.loads((build / "report.json").read_text())
    inputs = random_inputs(plan)
    want = run_module(load_target(str(build)), inputs)
    ex = make_executor(str(build), backend)
    got = ex.run(inputs)
    err = max((float(np.max(np.abs(got[k].astype(np.float64) - want[k].astype(np.float64)), initial=0.0))
               for k in want), default=0.0)
    times = ex.time(inputs, repeat=runs, warmup=1 if runs else 0,
                    cuda_graph=cuda_graph and not plan["host_ops"]) if runs else []
    run = ex.report()
    return {"model": model.name, "ok": True, "kernels": report["totals"]["kernels"],
            "launches": run["totals"]["launches"], "host_ops": len(plan["host_ops"]), "max_abs_err": err,
            "median_ms": median(times) * 1e3 if times else None, "compile_s": round(compile_s, 3),
            "global_bytes": run["totals"]["global_bytes"],
            "global_bytes_modelled": report["totals"]["global_bytes_modelled"],
            "lower_bound_bytes": report["totals"]["lower_bound_bytes"]}


def table(rows: list, backend: str, runs: int) -> str:
    head = (f"| model | kernels | launches | host ops | max abs err | median ms ({backend}, {runs} runs) | "
            "compile s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        if not r["ok"]:
            lines.append(f"| {r['model']} | FAILED: {r['error']} | | | | | |")
            continue
        ms = f"{r['median_ms']:.3f}" if r["median_ms"] is not None else "-"
        lines.append(f"| {r['model']} | {r['kernels']} | {r['launches']} | {r['host_ops']} | "
                     f"{r['max_abs_err']:.2e} | {ms} | {r['compile_s']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="folder for builds, gpu_check.md and gpu_check.json")
    ap.add_argument("--models", default="samples/*.onnx", help="glob of ONNX models")
    ap.add_argument("--runs", type=int, default=20, help="timed runs per model (median reported)")
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs error allowed against numpy")
    ap.add_argument("--cuda-graph", action="store_true", help="time CUDA-graph replays (plans without host ops)")
    ap.add_argument("--check-ptx", action="store_true", help="also compile every kernel with nvcc (needs nvcc)")
    ap.add_argument("--dry-run", action="store_true", help="use the emu backend instead of the GPU")
    args = ap.parse_args(argv)
    backend = "emu" if args.dry_run else "cupy"
    runs = min(args.runs, 1) if args.dry_run else args.runs  # the emulator is slow; one timing run proves the path
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = sorted(Path(p) for p in glob.glob(args.models))
    if not models:
        print(f"gpu_check: no models match '{args.models}'", file=sys.stderr)
        return 2
    rows = []
    for model in models:
        print(f"gpu_check: {model} ...", file=sys.stderr, flush=True)
        try:
            row = check_model(model, out, backend, runs, args.cuda_graph, args.check_ptx)
            if not row["max_abs_err"] <= args.tol:
                row.update(ok=False, error=f"max abs err {row['max_abs_err']:.3e} > {args.tol}")
        except Exception as e:  # noqa: BLE001 - one broken model must not hide the others' results
            (out / f"{model.stem}.error.txt").write_text(traceback.format_exc())
            row = {"model": model.name, "ok": False, "error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
        rows.append(row)
    text = table(rows, backend, runs)
    (out / "gpu_check.md").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps({"backend": backend, "runs": runs, "models": rows},
                                                   indent=2, sort_keys=True) + "\n")
    print(text, end="")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
