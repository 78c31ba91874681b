"""``make gpu-check``: every sample and small zoo model compiled by tilec, run on the GPU (CuPy) and compared
with onnxruntime (relative tolerance), then timed hot and cold (L2 flushed).

    PYTHONPATH=src python scripts/gpu_check.py OUT_DIR [--models GLOB ...] [--zoo small|none] [--runs 20]
                                               [--jobs N] [--row-timeout S] [--budget S] [--tol T] [--dry-run]
                                           [--arch ARCH] [--backend cupy|hip]

Each model is a row run in its own process with a timeout (``tilec.bench.rowrun``); the whole budget is printed
before anything runs; each row is appended to OUT_DIR/gpu_check.md and OUT_DIR/gpu_check.jsonl as it finishes,
so a crash or hang costs one row and the table says which and why; OUT_DIR/gpu_check.json holds every row at the
end. Rows run ``--jobs`` at a time (correctness first: the timings of parallel rows are indicative only, see
``make gpu-bench`` for fair ones). ``--dry-run`` runs the same path with the emu backend instead of the GPU.
On an AMD GPU (CuPy's ROCm build) the rows compile for the arch spec of the GPU's gfx ISA and run on the ``hip``
backend (``tilec.bench.gpu_mode``); ``--arch`` / ``--backend`` override both (``--dry-run --arch mi250x``: the
emulator with 64-lane wavefronts runs the HIP build).
Exits 1 when any row is not ok.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tilec.analysis.hardware import available_archs  # noqa: E402
from tilec.bench import gpu_mode  # noqa: E402
from tilec.bench import gpu_report as rep  # noqa: E402
from tilec.bench.journal import Journal  # noqa: E402
from tilec.bench.rowrun import Row, run_row  # noqa: E402
from tilec.bench.runplan import Budget, run_rows  # noqa: E402

SAMPLES = ["samples/*.onnx", "samples/parallel/*.onnx", "samples/control/*.onnx"]
COLUMNS = ["model", "status", "rel err", "kernels", "launches", "host ops", "hot ms", "cold ms (L2 flushed)",
           "graph", "compile s", "row s"]


def models(args) -> tuple[list, list]:
    """(name, path) of every sample matching the globs, then the small zoo (built into OUT/zoo); and the rows
    of zoo models that could not be built (status ``failed``, recorded without running)."""
    out = [(Path(p).stem, p) for g in args.models for p in sorted(glob.glob(str(ROOT / g) if not
                                                                         os.path.isabs(g) else g))]
    unbuilt = []
    if args.zoo == "small":
        from samples.models import ZOO
        from samples.models.build_zoo import build_one
        (args.out / "zoo").mkdir(parents=True, exist_ok=True)
        for name in ZOO:
            try:
                out.append((f"zoo/{name}", build_one(name, "small", str(args.out / "zoo"))[0]))
            except Exception as e:  # noqa: BLE001 - one model that cannot be built costs its row
                unbuilt.append({"id": f"tilec/zoo/{name}", "model": f"zoo/{name}", "status": "failed",
                                "error": f"building the model: {type(e).__name__}: {e}", "seconds": 0.0})
    return out, unbuilt


def cells(r: dict) -> list:
    graph = {True: "yes", False: "no"}.get(r.get("cuda_graph"), "-")
    return [r["model"], rep.status(r), rep.num(r.get("rel_err")), r.get("kernels"), r.get("launches"),
            r.get("host_ops"), rep.ms(r, "hot_ms"), rep.ms(r, "cold_ms"), graph, r.get("compile_s"), r.get("seconds")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for builds and gpu_check.md / .jsonl / .json")
    ap.add_argument("--models", nargs="+", default=SAMPLES, metavar="GLOB", help="ONNX globs (default: samples)")
    ap.add_argument("--zoo", choices=["small", "none"], default="small", help="add the small zoo models")
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--runs", type=int, default=20, help="timed runs, hot and cold each (median reported)")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tol", type=float, default=1e-3, help="max |err| / max(1, max |onnxruntime|)")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--row-timeout", type=float, default=150.0, help="seconds per model")
    ap.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check")
    ap.add_argument("--dry-run", action="store_true", help="emu backend instead of the GPU, one timed run")
    ap.add_argument("--arch", choices=available_archs(), help="compile every row for this arch spec (default: the "
                    "GPU's; the dry run's h200)")
    ap.add_argument("--backend", choices=["cupy", "hip"], help="GPU runtime (default: hip on CuPy's ROCm build, "
                    "else cupy); the dry run always uses emu")
    args = ap.parse_args(argv)
    t0, started = time.perf_counter(), time.monotonic()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    backend, device = ("emu", "cpu") if args.dry_run else ("cupy", "cuda")
    runs, warmup = (1, 0) if args.dry_run else (args.runs, args.warmup)
    found, unbuilt = models(args)
    if not found and not unbuilt:
        print(f"gpu_check: no models match {args.models}", file=sys.stderr)
        return 2
    rows = []
    for name, path in found:
        build = args.out / "builds" / name.replace("/", "__")
        shutil.rmtree(build, ignore_errors=True)  # never time a stale build
        rows.append(Row(f"tilec/{name}", {"kind": "tilec", "model": str(path), "build": str(build),
                                          "pipeline": args.pipeline, "backend": backend, "runs": runs,
                                          "warmup": warmup, "tol": args.tol}, args.row_timeout, {"model": name}))
    probe = Row("probe", {"kind": "probe", "device": device}, 60.0, {"model": "probe"})
    budget = Budget(args.budget, [("probe", [probe], 1), ("models", rows, args.jobs)], start=started)
    print(budget.plan("gpu_check"), flush=True)
    machine = run_row(probe, args.out / "rows", ROOT, timeout=probe.timeout)
    print(rep.machine_line(machine), flush=True)
    mode = ({"backend": backend, "arch": args.arch, "device": "dry-run", "error": None} if args.dry_run
            else gpu_mode.resolve(machine, args.arch, args.backend))
    for row in rows:
        row.spec["backend"] = mode["backend"]
        if mode["arch"]:  # else each row asks the card (NVIDIA: the arch its name gives)
            row.spec.update(arch=mode["arch"], device_arch_fixed=True)
    journal = Journal(args.out / "gpu_check.md", args.out / "gpu_check.jsonl", COLUMNS)
    journal.start([gpu_mode.header(args.dry_run, mode), "",
                   "```sh", " ".join(["python", "scripts/gpu_check.py", *(argv if argv is not None else sys.argv[1:])]),
                   "```", "", rep.machine_line(machine), "", "```", budget.plan("gpu_check"), "```", "",
                   f"Correctness: tilec ({args.pipeline} pipeline) vs onnxruntime on the CPU, same seeded inputs; "
                   f"*rel err* = max |err| / max(1, max |onnxruntime|), ok when <= {args.tol:g}. {rep.TIMING_NOTE} "
                   f"{runs} runs each after {warmup} warm-up; {args.jobs} rows at a time, so timings here are "
                   "indicative (`make gpu-bench` times one thing at a time)."])

    def done(r: dict) -> None:
        journal.append(r, cells(r))
        print(f"gpu_check: {r['model']}: {r['status']} {r.get('error') or ''} ({r.get('seconds')}s)", flush=True)

    for r in unbuilt:
        done(r)
    if mode["error"]:  # an AMD GPU no arch spec targets: every row says so instead of compiling for the wrong one
        results = unbuilt + [{"id": r.id, **r.labels, "status": "failed", "error": mode["error"], "seconds": 0.0}
                             for r in rows]
        for r in results[len(unbuilt):]:
            done(r)
    else:
        results = unbuilt + run_rows(rows, args.jobs, budget, args.out / "rows", ROOT, done)
    bad = [r for r in results if r["status"] != "ok"]
    journal.write([f"{len(results) - len(bad)}/{len(results)} ok in {time.perf_counter() - t0:.0f}s."
                   + (f" Not ok: {', '.join(r['model'] for r in bad)}." if bad else "")])
    (args.out / "gpu_check.json").write_text(json.dumps({"backend": mode["backend"], "arch": mode["arch"], "machine": machine, "models": results},
                                                        indent=1, sort_keys=True, default=float) + "\n")
    print((args.out / "gpu_check.md").read_text(), end="")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
