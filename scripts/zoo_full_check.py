#!/usr/bin/env python3
"""``make zoo-check``: every *full-size* zoo model imported by tilec and run with its numpy reference
interpreter, compared with onnxruntime on the same seeded inputs (the small variants are checked in CI,
``tests/zoo``, and under the emulator in ``make bench``).

    python scripts/zoo_full_check.py [--out docs/benchmarks] [--models NAME ...] [--timeout S] [--date D]

Each model runs in its own process with a timeout, so a slow or failing one gets a row saying why and the
rest go on. Writes ``OUT/zoo-full-DATE.md`` (the command on top). Exit status 1 if any row is not ok.
A row is *wrong* when the error exceeds 1e-3 x max(1, max |onnxruntime output|), the bench's rule.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "src"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

TOL = 1e-3


def check_one(name: str, cache: str) -> dict:
    """Build (or reuse) the full model, run it under tilec's numpy interpreter and onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    from samples.models.build_zoo import build_one
    from tilec.bench.measure import max_abs_err, onnx_feeds
    from tilec.frontend.importer import import_onnx
    from tilec.runtime.interpreter import run_module

    row: dict = {"model": name}
    t = time.perf_counter()
    Path(cache).mkdir(parents=True, exist_ok=True)
    path, _ = build_one(name, "full", cache)
    row["build_s"] = time.perf_counter() - t
    feeds = onnx_feeds(path)
    t = time.perf_counter()
    session = ort.InferenceSession(path)
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    row["ort_s"] = time.perf_counter() - t
    t = time.perf_counter()
    got = run_module(import_onnx(path), feeds)
    row["numpy_s"] = time.perf_counter() - t
    row["err"] = max_abs_err(got, want)
    scale = max(1.0, max(float(np.max(np.abs(v), initial=0.0)) for v in want.values()))
    row["status"] = "ok" if row["err"] <= TOL * scale else "wrong"
    return row


def run_row(name: str, cache: str, timeout: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, __file__, "--one", name, "--cache", cache, "--row-json", str(out)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"model": name, "status": "failed", "error": f"over the {timeout:.0f}s per-model limit"}
        if out.exists():
            return json.loads(out.read_text())
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "status": "failed", "error": last[:300]}


def table(rows: list) -> str:
    lines = ["| model | status | build s | onnxruntime s | tilec numpy s | max abs err |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"| {r['model']} | **failed**: {r['error']} | - | - | - | - |")
            continue
        status = "ok" if r["status"] == "ok" else "**wrong**"
        lines.append(f"| {r['model']} | {status} | {r['build_s']:.1f} | {r['ort_s']:.1f} | {r['numpy_s']:.1f} "
                     f"| {r['err']:.1e} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    from samples.models import ZOO
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument("--models", nargs="+", default=list(ZOO), metavar="NAME")
    ap.add_argument("--cache", default="build/zoo", help="build_zoo's cache folder")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per model")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).date().isoformat())
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--row-json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:   # child process: one model
        try:
            row = check_one(args.one, args.cache)
        except Exception as e:  # noqa: BLE001 - the row records why, the run goes on
            from tilec.bench.rowrun import error_line
            row = {"model": args.one, "status": "failed", "error": error_line(e)}
        Path(args.row_json).write_text(json.dumps(row))
        return 0
    unknown = [m for m in args.models if m not in ZOO]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)} (zoo: {', '.join(ZOO)})")
    start, rows = time.perf_counter(), []
    for i, name in enumerate(args.models, 1):
        rows.append(run_row(name, args.cache, args.timeout))
        r = rows[-1]
        print(f"[{i}/{len(args.models)}] {name:13s} {r['status']}"
              + (f" (err {r['err']:.1e}, numpy {r['numpy_s']:.1f}s)" if "err" in r else f": {r.get('error')}"),
              flush=True)
    command = "python scripts/zoo_full_check.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    text = (f"# Full-size zoo models: tilec's numpy interpreter vs onnxruntime, {args.date}\n\n```sh\n{command}\n"
            f"```\n\n{len(rows)} models in {time.perf_counter() - start:.0f} s on this 2-CPU machine. Inputs: "
            "seeded (`tilec.bench.measure.onnx_feeds`); weights: generated by the builders (seeded). *build s* "
            "includes generating the weights when the model was not cached. A row is *wrong* when the error "
            f"exceeds {TOL:g} x max(1, max |onnxruntime output|).\n\n{table(rows)}\n")
    out = Path(args.out) / f"zoo-full-{args.date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
