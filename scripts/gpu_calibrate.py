"""``make gpu-calibrate``: measure the latency model's constants on a lent GPU and write ``<arch>.measured.json``.

    PYTHONPATH=src python scripts/gpu_calibrate.py OUT_DIR [--arch h100] [--only CONSTANT ...]
                                                   [--row-timeout S] [--budget S] [--dry-run]

Each constant is one microbenchmark (``tilec.bench.calibrate``) run in its own process with a timeout
(``tilec.bench.rowrun.run_child``): a hang or a crash costs that constant only. Rows are appended to
OUT_DIR/calibrate.md and OUT_DIR/calibrate.jsonl as they finish; at the end OUT_DIR/<arch>.measured.json holds
every constant measured (copy it to src/tilec/analysis/hw/ to make the latency model use it). ``--dry-run``
runs the same path on the emulator with tiny sizes and writes OUT_DIR/<arch>.measured.dry.json instead: its
numbers are the CPU's, never to be used as a GPU's. The budget (default 5 minutes) is checked before each row.
Exits 1 when a constant could not be measured, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tilec.bench.calibrate import BENCHMARKS  # noqa: E402
from tilec.bench.journal import Journal  # noqa: E402
from tilec.bench.rowrun import child_env, run_child  # noqa: E402

COLUMNS = ["constant", "status", "measured", "spec", "measured / spec", "seconds"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="folder for calibrate.md / .jsonl and the measured file")
    ap.add_argument("--arch", default="h100", help="the spec the GPU is measured against (default h100)")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, default=list(BENCHMARKS), metavar="CONSTANT")
    ap.add_argument("--row-timeout", type=float, default=90.0, help="seconds per constant")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    ap.add_argument("--dry-run", action="store_true", help="the emulator instead of the GPU, tiny sizes")
    args = ap.parse_args(argv)
    from tilec.analysis.hardware import get_arch
    from tilec.ir.diagnostics import CompileError
    try:
        spec = get_arch(args.arch)
    except CompileError as e:
        print(f"gpu_calibrate: {e}", file=sys.stderr)
        return 2
    start = time.monotonic()
    out = args.out.resolve()
    (out / "rows").mkdir(parents=True, exist_ok=True)
    print(f"gpu_calibrate: {len(args.only)} constants, at most {args.row_timeout:.0f}s each, "
          f"{args.budget:.0f}s in all ({'dry run on the emulator' if args.dry_run else 'GPU'})", flush=True)
    journal = Journal(out / "calibrate.md", out / "calibrate.jsonl", COLUMNS)
    journal.start([f"# Latency-model calibration ({'dry run, emulator' if args.dry_run else 'GPU'}), "
                   f"against the {spec.name} spec", "",
                   "One microbenchmark per constant, each in its own process with a timeout "
                   "(`tilec.bench.calibrate`)."])
    measured, bad = {}, []
    for constant in args.only:
        left = args.budget - (time.monotonic() - start)
        if left < 5:
            row = {"constant": constant, "status": "skipped", "error": "budget used up"}
        else:
            target = out / "rows" / f"{constant}.json"
            task = json.dumps({"constant": constant, "arch": spec.arch, "dry_run": args.dry_run})
            r = run_child([sys.executable, "-m", "tilec.bench.calibrate", task, str(target)], target,
                          min(args.row_timeout, left), child_env(ROOT), cwd=ROOT)
            row = {"constant": constant, "status": r.status, "error": r.error or None, "seconds": r.seconds}
            if r.status == "ok":
                row["value"] = r.result["values"][constant]
                measured[constant] = row["value"]
            else:
                row["log_tail"] = r.tail[-1500:]
        if row["status"] != "ok":
            bad.append(constant)
        model = getattr(spec, constant, None)
        value = row.get("value")
        journal.append(row, [constant, row["status"] if row["status"] == "ok" else f"{row['status']}: {row['error']}",
                             f"{value:.4g}" if value is not None else "-", f"{model:.4g}" if model else "-",
                             f"{value / model:.2f}" if value is not None and model else "-", row.get("seconds", "-")])
        print(f"gpu_calibrate: {constant}: {row['status']} {row.get('value', row.get('error'))}", flush=True)
    name = f"{spec.arch}.measured.dry.json" if args.dry_run else f"{spec.arch}.measured.json"
    device = "emulator (dry run: CPU numbers)" if args.dry_run else "GPU"
    data = {"arch": spec.arch, "device": device, "dry_run": args.dry_run,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "constants": measured}
    tmp = out / f".{name}.tmp"
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(out / name)   # never a half-written measured file
    journal.write([f"{len(measured)}/{len(args.only)} constants measured -> {name}"
                   + (f"; not measured: {', '.join(bad)}" if bad else "")])
    print(f"gpu_calibrate: {len(measured)}/{len(args.only)} measured -> {out / name}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
