"""``make bench``: the CPU benchmark of the model zoo across every pipeline in ``tilec.driver.PIPELINES``.

    python scripts/bench.py --out docs/benchmarks [--date YYYY-MM-DD] [--models [NAME ...]] [--pipelines P ...]
                            [--full NAME ...] [--jobs 2] [--row-timeout S] [--budget S] [--no-ptx]
                            [--grinder-everywhere] [--note TEXT] [--from-json CPU.json] [--ray [ADDRESS]]

For each zoo model x pipeline (``grinder`` only for models with control flow, see CONTROL_FLOW), in f32 (the
models' own types), and in each other ``--precisions`` mode (default fp16: ``tilec compile --precision``) with
the fullest pipeline the model runs only, so the precision rows add one row per model, not one per pipeline:
  * small variant: compile (with ``--check-ptx``), run under the emulator (measured global bytes) and with
    the numpy interpreter, and compare both against onnxruntime;
  * full variant (only the models in ``--full``, see FULL_DEFAULT for why those): compile only, bytes are
    the compiler's model.
Each row runs in its own process (``tilec.bench.measure``) with a timeout, so a failing or hung row is
recorded with its reason and the rest go on. Every small row runs before any full one (see the ordering
in ``main``), and the run stops starting rows when ``--budget`` (18 minutes: ``make bench`` also runs the
rammer report and scripts/bench_grinder.py, 10-20 s together, within its 20) is used up. The header
gives the machine's load average over the run, since other work on it inflates every time in the table.
Writes ``OUT/cpu-DATE.md`` (the exact command on top) and ``OUT/cpu-DATE.json``. Builds go to ``--work``
(default build/bench). The ptxas and emulator caches (``~/.cache/tilec``) make a rerun mostly cache hits;
the report says how many entries existed beforehand. ``--ray [ADDRESS]`` runs the rows as Ray tasks
(``tilec.testing.campaign``: each carries its model's bytes; a local cluster gets ``--jobs`` CPUs); the rows
are the same, in the same order.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "src"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from samples.models import ZOO  # noqa: E402
from samples.models.build_zoo import build_one  # noqa: E402
from tilec.bench.table import full_table, small_table  # noqa: E402

# Full-size models compiled by default: the ones whose compile (every pipeline, ptxas) fits the budget after
# the small rows on 2 busy cores, even with empty caches (the whole run then took 828 s), covering a GEMM
# chain (nerf_mlp), CNNs (resnet18, mobilenet_v2's depthwise convs), a transformer (vit_s32) and RNNs with
# their time loops (seq2seq, lstm). Measured 2026-11-29 at load ~6 (seconds per row, none/roller/welder/rammer):
# vit_s32 ~20/26/35/52. With control flow (LSTM/GRU ops and Loops, no longer unrolled), measured 2026-11-29
# (none/roller/welder/rammer/grinder, ptxas cache partly warm): seq2seq 3/3/4/3/3, lstm 5/8/11/11/7 (unrolled
# they took 18/17/14/40 and 12/12/5/148). Left out: resnet50 (rammer 226 s, welder 115 s), conformer (1,264
# kernels), bert_base/swin_t/nafnet/resnext29/nasnet (up to 440 MB of weights per build, hundreds of kernels
# each). Added since: nasrnn (5/3/1/2/110: grinder's one device loop of 500 body kernels is 109 s of ptxas)
# and blockdrop (~31 s on every pipeline, 27 s of it ptxas). With empty caches on a quiet machine the whole
# `make bench` took 6.8 min without them and 8.3 min with them (2026-11-29).
FULL_DEFAULT = ["nerf_mlp", "resnet18", "mobilenet_v2", "vit_s32", "seq2seq", "lstm", "nasrnn", "blockdrop"]
# ``grinder`` only differs from ``rammer`` where there is control flow to move, so by default its rows are
# for models with these ops only (tilec imports LSTM/GRU/RNN as a cf.loop over time): in the zoo lstm,
# nasrnn, seq2seq and blockdrop. ``--grinder-everywhere`` runs it on every model anyway.
from tilec.bench.measure import CONTROL_FLOW  # noqa: E402
from tilec.bench.rowrun import child_env, run_child  # noqa: E402


def cache_entries() -> dict:
    from tilec.backend.ptxas import cache_dir
    root = cache_dir()
    return {d: (len(list((root / d).iterdir())) if (root / d).is_dir() else 0) for d in ("ptxas", "emu")}


def manifest(model_path: str) -> dict:
    """build_zoo's manifest beside the model ({} when it cannot be read)."""
    try:
        return json.loads(Path(model_path[:-len(".onnx")] + ".json").read_text())
    except (OSError, ValueError):
        return {}


def node_count(model_path: str) -> int:
    return manifest(model_path).get("nodes", 10**6)


def has_control_flow(model_path: str) -> bool:
    """Whether the model has Loop / If / Scan / LSTM / GRU / RNN nodes (unknown counts as yes): what
    ``grinder`` moves."""
    ops = manifest(model_path).get("ops")
    return ops is None or any(op in ops for op in CONTROL_FLOW)


def run_row(task: dict, timeout: float, why: str = "per-row limit") -> dict:
    """Run ``tilec.bench.measure`` in a fresh process group; on timeout kill the whole group (nvcc, g++)."""
    out = Path(task["build"] + ".row.json")
    cmd = [sys.executable, "-m", "tilec.bench.measure", "--model", task["path"], "--size", task["size"],
           "--pipeline", task["pipeline"], "--build", task["build"], "--out", str(out)]
    if task["no_ptx"]:
        cmd.append("--no-ptx")
    if task.get("precision", "fp32") != "fp32":
        cmd += ["--precision", task["precision"]]
    base = {"model": task["model"], "size": task["size"], "pipeline": task["pipeline"],
            "precision": task.get("precision", "fp32")}
    r = run_child(cmd, out, timeout, child_env(ROOT))
    if r.status == "timeout":
        return {**base, "status": "timeout", "error": f"row took longer than {timeout:.0f}s ({why}; killed)",
                "row_seconds": r.seconds}
    if r.status != "ok":
        return {**base, "status": "failed", "error": f"measure {r.error[:200]}", "log_tail": r.tail,
                "row_seconds": r.seconds}
    row = r.result
    row.update(model=task["model"], row_seconds=r.seconds)
    return row


def bench_unit(task: dict, model, deadline: float, limits: tuple) -> dict:
    """One row as a campaign unit: ``run_row`` on ``model`` (a ``FileInput``: the zoo model's bytes) unless
    the wall-clock ``deadline`` leaves under 30 s; ``limits`` is (budget, small row, full row) seconds."""
    budget, row_timeout, full_timeout = limits
    left = deadline - time.time()
    if left < 30:
        return {"model": task["model"], "size": task["size"], "pipeline": task["pipeline"],
                "precision": task.get("precision", "fp32"), "status": "skipped",
                "error": f"the run's {budget:.0f}s budget was used up before this row started"}
    limit = row_timeout if task["size"] == "small" else full_timeout
    return run_row(dict(task, path=model.local()), min(left, limit),
                   "per-row limit" if limit <= left else "what was left of the budget")


def progress(i: int, n: int, r: dict) -> str:
    what = f"{r['model']:13} {r['size']:5} {r['pipeline']:8} {r.get('precision', 'fp32'):4}"
    if r["status"] != "ok":
        return f"[{i}/{n}] {what} {r['status'].upper()} ({r.get('row_seconds', 0)}s): {r.get('error')}"
    extra = (f"emu {r['measured_bytes'] / 1e6:.3f} MB, err {r['emu_vs_ort']:.1e}" if r["size"] == "small"
             else f"modelled {r['modelled_bytes'] / 1e6:.1f} MB")
    return f"[{i}/{n}] {what} ok ({r['row_seconds']}s): {r['kernels']} kernels, {extra}"


def main(argv=None) -> int:
    from tilec.driver import PIPELINES
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for cpu-DATE.md and cpu-DATE.json")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--work", default=str(ROOT / "build" / "bench"), help="builds and zoo models go here")
    ap.add_argument("--models", nargs="*", default=list(ZOO), choices=list(ZOO), metavar="NAME",
                    help="small models to compile and run (none: --models with no names, e.g. full rows only)")
    ap.add_argument("--pipelines", nargs="+", default=list(PIPELINES), metavar="P",
                    help=f"default: every pipeline in PIPELINES ({', '.join(PIPELINES)})")
    ap.add_argument("--full", nargs="*", default=FULL_DEFAULT, choices=list(ZOO), metavar="NAME",
                    help="full-size models to compile (none: --full with no names)")
    ap.add_argument("--jobs", type=int, default=2, help="rows run at once (default 2: this machine's cores)")
    ap.add_argument("--row-timeout", type=float, default=420.0, help="seconds per small row (empty caches at load "
                    "~5 on 2 cores, 2026-11-29: the slowest, nasnet rammer, took 68 s, 45 of them ptxas)")
    ap.add_argument("--full-timeout", type=float, default=300.0, help="seconds per full row (the slowest with "
                    "empty caches, the unrolled lstm's rammer, took 140 s: 95 s in the rammer pass, 42 s ptxas; "
                    "nasrnn grinder takes 110 s, nearly all ptxas)")
    ap.add_argument("--budget", type=float, default=18 * 60,
                    help="seconds for the whole run (default 18 min: make bench's other two steps take about "
                         "one): a row gets at most what is left of it, and rows that would start with under 30 s "
                         "left are recorded as skipped")
    ap.add_argument("--no-ptx", action="store_true", help="skip nvcc/ptxas (no registers/smem/spills)")
    ap.add_argument("--tol", type=float, default=1e-3, help="max abs err allowed, times max(1, max|ref|) (a "
                    "precision row: at least that mode's tolerance, tilec.bench.table.PRECISION_TOL)")
    ap.add_argument("--precisions", nargs="*", default=["fp16"], choices=["tf32", "fp16", "bf16"], metavar="P",
                    help="--precision modes besides f32, one row per model with its fullest pipeline (default fp16)")
    ap.add_argument("--grinder-everywhere", action="store_true",
                    help="run the grinder pipeline on models without control flow too (it then equals rammer)")
    ap.add_argument("--note", help="a sentence for the header, e.g. what else ran on the machine")
    from tilec.testing.campaign import add_ray_argument
    add_ray_argument(ap)
    ap.add_argument("--from-json", metavar="CPU.json", help="only re-render the markdown (and JSON) from the "
                    "rows of an earlier run, e.g. after a change to the table's format; nothing is measured")
    args = ap.parse_args(argv)
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        meta = data["meta"]
        args.tol, args.full = meta["tol"], [n for n in ZOO if n not in meta["full_skipped"]]
        meta["note"] = args.note or meta.get("note")
        args.no_grinder = meta.get("grinder_not_run", [])
        write_outputs(Path(args.out), args, None, data["rows"], meta["cache_entries_before"],
                      meta["wall_seconds"], meta=meta)
        return 0
    unknown = [p for p in args.pipelines if p not in PIPELINES]
    if unknown:
        ap.error(f"unknown pipeline(s) {unknown}; PIPELINES has {list(PIPELINES)}")

    start = time.perf_counter()
    work = Path(args.work).resolve()
    (work / "zoo").mkdir(parents=True, exist_ok=True)
    caches = cache_entries()
    tasks, rows, no_grinder = [], [], set()
    for size, names in (("small", args.models), ("full", args.full)):
        for name in names:
            try:
                path, _ = build_one(name, size, str(work / "zoo"))
            except Exception as e:  # noqa: BLE001 - a model that will not build fails its rows only
                for p in args.pipelines:
                    rows.append({"model": name, "size": size, "pipeline": p, "status": "failed",
                                 "error": f"build_zoo: {type(e).__name__}: {str(e)[:200]}"})
                continue
            for p in args.pipelines:
                if p == "grinder" and not args.grinder_everywhere and not has_control_flow(path):
                    no_grinder.add(name)
                    continue
                tasks.append({"model": name, "size": size, "pipeline": p, "path": path, "no_ptx": args.no_ptx,
                              "build": str(work / "builds" / f"{name}-{size}-{p}")})
            ran = [t for t in tasks if (t["model"], t["size"]) == (name, size)]
            for prec in (args.precisions if ran else []):   # the fullest pipeline this model runs
                tasks.append(dict(ran[-1], precision=prec, build=f"{ran[-1]['build']}-{prec}"))
    # Every small row (the correctness check of each zoo model) before any full one, cheapest first within
    # each (cost ~ ONNX nodes: each kernel costs a g++ build for the emulator, or a ptxas run, when not
    # cached), so a tight budget loses the fewest and least important rows; the table keeps zoo order.
    zoo_order = {(t["model"], t["size"], t["pipeline"], t.get("precision", "fp32")): i for i, t in enumerate(tasks)}
    tasks.sort(key=lambda t: (t["size"] != "small", node_count(t["path"])))
    load = LoadSampler()
    n = len(tasks) + len(rows)
    n_prec = sum(1 for t in tasks if "precision" in t)
    print(f"bench: {len(tasks)} rows ({len(args.models)} small, {len(args.full)} full models x "
          f"{len(args.pipelines)} pipelines" + (f" + {n_prec} precision row{'s' * (n_prec != 1)} ({'/'.join(args.precisions)})" if n_prec else "")
          + (f"; grinder not run on {len(no_grinder)} models without control flow" if no_grinder else "")
          + f"), {args.jobs} at a time; cache entries before: {caches}", flush=True)
    done = [len(rows)]

    def report(_i, r):
        done[0] += 1
        print(progress(done[0], n, r), flush=True)
    # One content-addressed unit per row (tilec.testing.campaign): here on --jobs threads, or with --ray as Ray
    # tasks, each carrying its model's bytes; the budget is a wall-clock deadline every row checks as it starts.
    from tilec.testing.campaign import FileInput, Unit, executor_for
    deadline = time.time() + args.budget - (time.perf_counter() - start)
    limits = (args.budget, args.row_timeout, args.full_timeout)
    files = {p: FileInput.of(p) for p in dict.fromkeys(t["path"] for t in tasks)}   # each model hashed once
    units = [Unit.of(bench_unit, {k: v for k, v in t.items() if k != "path"}, files[t["path"]], deadline, limits)
             for t in tasks]
    with executor_for(args.ray, args.jobs, num_cpus=args.jobs) as executor:
        rows += executor.run(units, report)
    rows.sort(key=lambda r: zoo_order.get((r["model"], r["size"], r["pipeline"], r.get("precision", "fp32")), -1))
    wall = time.perf_counter() - start
    args.no_grinder = sorted(no_grinder, key=list(ZOO).index)
    write_outputs(Path(args.out), args, argv, rows, caches, wall, load=load.stop())
    bad = [r for r in rows if r["status"] != "ok"]
    print(f"bench: {len(rows) - len(bad)}/{len(rows)} rows ok in {wall:.0f}s -> {args.out}/cpu-{args.date}.md")
    return 0


class LoadSampler:
    """The 1-minute load average every 10 s while the rows run: how busy the machine was besides the bench."""

    def __init__(self, every: float = 10.0):
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])
        return {"mean": round(sum(self.samples) / len(self.samples), 2), "max": round(max(self.samples), 2),
                "samples": len(self.samples)}


def machine_line(meta: dict) -> str:
    """The header's sentence on how busy the machine was (older JSONs have no load figures). The bench's own
    rows and their nvcc/g++ children account for a load of about ``jobs``; well above that, other processes
    shared the CPUs."""
    load = meta.get("load_average")
    if not load:
        return "The machine's load during the run was not recorded."
    jobs = meta["jobs"]
    if load["mean"] > 1.5 * jobs + 0.5:
        verdict = ("other processes shared the CPUs, so wall and compile times are inflated by them (byte "
                   "counts, kernel counts and errors are not)")
    elif load["mean"] > jobs + 0.5:
        verdict = "somewhat more than the bench's own rows account for, so other processes may have slowed it"
    else:
        verdict = "what the bench's own rows account for: the machine was otherwise quiet"
    return (f"1-minute load average during the run: mean {load['mean']:.1f}, max {load['max']:.1f} on "
            f"{meta['cpus']} CPUs, with the bench running {jobs} rows at a time: {verdict}.")


def write_outputs(out: Path, args, argv, rows, caches, wall, meta=None, load=None) -> None:
    """``meta`` given (``--from-json``): re-render an earlier run, keeping its command, date and timings."""
    out.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable)  # .venv/bin/python under make; a plain "python" otherwise
    exe = str(exe.relative_to(ROOT)) if exe.is_relative_to(ROOT) else "python"
    command = meta["command"] if meta else shlex.join([exe, "scripts/bench.py", *argv])
    if meta:
        args.date, args.jobs = meta["date"], meta["jobs"]
    small = [r for r in rows if r["size"] == "small"]
    full = [r for r in rows if r["size"] == "full"]
    skipped_full = [n for n in ZOO if n not in args.full]
    nvcc = subprocess.run(["nvcc", "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    meta = meta or {"date": args.date, "command": command, "wall_seconds": round(wall, 1), "jobs": args.jobs,
            "cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
            "nvcc": nvcc[-1] if nvcc else None, "cache_entries_before": caches, "pipelines": args.pipelines,
            "tol": args.tol, "full_skipped": skipped_full, "load_average": load, "note": args.note,
            "grinder_not_run": args.no_grinder}
    control = [r["model"] for r in rows if r.get("control_flow_ops")]
    no_grinder = meta.get("grinder_not_run", [])
    md = [f"# CPU benchmark, {args.date}", "", "```sh", command, "```", "",
          f"{len(rows)} rows in {wall:.0f} s wall on {os.cpu_count()} CPUs ({args.jobs} rows at a time), "
          f"Python {meta['python']}, {meta['nvcc'] or 'no nvcc'}. ptxas/emulator cache entries before the "
          f"run: {caches['ptxas']} / {caches['emu']} (compile and emu times include nvcc/g++ only for "
          "kernels not already cached). " + machine_line(meta), "",
          *([f"Note: {meta['note']}", ""] if meta.get("note") else []),
          "Columns: *compile s* is `report.json` `compile_seconds` (import, passes, lower-cuda, ptxas, write), "
          "then in brackets the ONNX import, the sum of the pass times, writing the build (kernel emission, "
          "ptxas, weights, plan) with ptxas' share of it, and the slowest pass; the rest is verification after "
          "each pass and the reference IR; *launches* are the emulator's (full models: the plan's); *emu MB* "
          "is every global load and store the kernels issued, counted by the emulator (no cache: a value "
          "that several blocks read counts once per read); *x LB* is global bytes over the "
          "lower bound (inputs, weights and outputs touched once); *x none* is global bytes over the same "
          "model under the `none` pipeline (one kernel per op); *modelled us* is the latency model's time per "
          "inference (`analysis/latency.py`: per kernel, the largest of DRAM, L2, shared memory, compute per unit "
          "and issue, plus launch and barriers, with waves and occupancy; small rows use the DRAM and L2 bytes "
          "of the emulator's L2 model, full rows the compile-time guess); *SOL us* is the speed of light "
          "(lower-bound bytes at DRAM bandwidth or FLOPs at the precision's peak, whichever is longer); *x SOL* "
          "is modelled over SOL; *DRAM MB* is what the L2 model sends to DRAM (misses and write-backs; full "
          "rows: the compile-time guess); regs/smem/spills are ptxas' figures (max "
          "over kernels; spills summed); *err* is the max abs error against onnxruntime on the same seeded "
          "inputs (numpy runs the pipeline's IR before lower-cuda; *n/a* where that IR already holds kernels, "
          "which have no reference implementation: the JSON's `numpy_error`). A row is *wrong* when an error exceeds "
          f"{args.tol:g} x max(1, max |onnxruntime output|) (a precision row: its mode's tolerance if larger, "
          "fp16 1e-2, bf16 5e-2, tf32 5e-3). A pipeline named `P fp16` is the f32 model built with `tilec compile "
          "--precision fp16` (contractions in f16, f32 accumulation; `docs/precision.md`), for the fullest "
          "pipeline the model runs only.", "",
          "Pipelines: " + ", ".join(f"`{p}`" for p in meta["pipelines"]) + ". `grinder` moves Loop/If control "
          "flow (and the loops that LSTM/GRU/RNN import as) onto the device, so without any it is `rammer` plus "
          "a pass that finds nothing to move. Small rows count a host-driven loop body's launches per trip "
          "(grinder's device loop is one launch); full rows, from `report.json`, count host- and device-driven "
          "loops alike: the body times its constant trip count, of an if the branch moving more bytes. "
          + (f"Models with control flow: {', '.join(sorted(set(control)))}. " if control else "")
          + (f"Not run with `grinder` (no control flow; `--grinder-everywhere` runs "
             f"them): {', '.join(no_grinder)}. " if no_grinder else "")
          + f"Grinder on control flow: `grinder-{args.date}.md` (`scripts/bench_grinder.py`, samples/control).",
          "",
          "## Small models: compile + emulator run (measured global bytes)", "",
          small_table(small, args.tol) if small else "(none)\n",
          "## Full models: compile only (modelled global bytes)", "", full_table(full) if full else "(none)\n",
          f"Full models not compiled (see FULL_DEFAULT in scripts/bench.py: outside the 20-minute budget on 2 "
          f"cores; pass `--full NAME ...` to add them): {', '.join(skipped_full) or 'none'}.", ""]
    (out / f"cpu-{args.date}.md").write_text("\n".join(md))
    slim = [{k: v for k, v in r.items() if k not in ("traceback", "log_tail")} | (
        {"traceback": r["traceback"][-1500:]} if r.get("traceback") else {}) for r in rows]
    (out / f"cpu-{args.date}.json").write_text(json.dumps({"meta": meta, "rows": slim}, indent=1,
                                                          sort_keys=True) + "\n")


if __name__ == "__main__":
    sys.exit(main())
