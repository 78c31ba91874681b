"""``make bench``'s mi250x section (issue #23): the samples and a few small zoo models compiled for an AMD GPU and
checked by hipcc.

    python scripts/bench_amd.py --out docs/benchmarks [--arch mi250x] [--date YYYY-MM-DD] [--models NAME ...]
                                [--samples PATH ...] [--budget S] [--row-timeout S]

Per model, ``tilec compile --arch ARCH --check-hip`` (default pipeline) in its own process with a timeout, then
from report.json: compile seconds, kernels, launches, modelled global bytes, modelled time, and hipcc's resource
usage (the largest VGPRs + AGPRs per lane, the largest LDS per workgroup, the lowest occupancy in waves per
SIMD, VGPR + SGPR spills, and the kernels that spill). No emulator run here: the 64-lane emulator checks are in
tests/backend (numerics) and ``make bench``'s CPU rows. Writes ``OUT/mi250x-DATE.md`` (the command on top) and
``OUT/mi250x-DATE.json``; hipcc's results are cached (``$TILEC_CACHE_DIR/hipcc``), so a rerun is mostly compile
time. Rows stop starting once ``--budget`` seconds are used up (the rest are listed as skipped).
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT, ROOT / "src"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from samples.models import ZOO  # noqa: E402
from samples.models.build_zoo import build_one  # noqa: E402
from tilec.backend.hipcc import find_hipcc  # noqa: E402

SAMPLES = sorted(str(p.relative_to(ROOT)) for p in [*ROOT.glob("samples/*.onnx"), *ROOT.glob("samples/parallel/*.onnx"),
                                                     *ROOT.glob("samples/control/*.onnx")])
# Small zoo models whose mi250x build + hipcc takes well under a minute on 2 busy cores: an MLP, two CNNs
# (a plain and a depthwise one) and an RNN with its time loop.
MODELS_DEFAULT = ["nerf_mlp", "resnet18", "mobilenet_v2", "lstm"]


def hip_summary(report: dict) -> dict:
    """The row's hipcc figures from a report.json written with --check-hip."""
    rows = [(k["name"], k["hip"]) for k in report["kernels"] if "hip" in k]
    spilling = [f"{n} {h['vgpr_spills']}V/{h['sgpr_spills']}S" for n, h in rows if h["spills"]]
    return {"max_vgprs": max((h["vgprs"] + h["agprs"] for _, h in rows), default=0),
            "max_lds": max((h["lds_bytes"] for _, h in rows), default=0),
            "min_occupancy": min((h["occupancy"] for _, h in rows), default=0),
            "spills": sum(h["spills"] for _, h in rows), "spilling": spilling}


def run_row(name: str, path: str, arch: str, work: Path, timeout: float) -> dict:
    out = work / name
    cmd = [str(Path(sys.executable).parent / "tilec"), "compile", "-q", path, "-o", str(out), "--arch", arch, "--check-hip"]
    t0 = time.time()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"name": name, "error": f"over {timeout:.0f} s"}
    if r.returncode != 0:
        return {"name": name, "error": (r.stderr or r.stdout).strip().splitlines()[-1][:200]}
    report = json.loads((out / "report.json").read_text())
    t = report["totals"]
    return {"name": name, "wall_s": round(time.time() - t0, 1), "compile_s": round(t["compile_seconds"], 1),
            "kernels": t["kernels"], "launches": t["launches"], "bytes": t["global_bytes_modelled"],
            "modelled_us": t.get("modelled_us"), **hip_summary(report)}


def table(rows: list) -> str:
    head = ("| model | compile s | kernels | launches | modelled MB | modelled us | max VGPR+AGPR | max LDS B "
            "| min waves/SIMD | spills | spilling kernels |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | --- |")
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} |" + " |" * 9)
            continue
        us = f"{r['modelled_us']:.1f}" if r["modelled_us"] is not None else "-"
        lines.append(f"| {r['name']} | {r['compile_s']} | {r['kernels']} | {r['launches']} | {r['bytes'] / 1e6:.3f} "
                     f"| {us} | {r['max_vgprs']} | {r['max_lds']} | {r['min_occupancy']} | {r['spills']} "
                     f"| {', '.join(r['spilling']) or '-'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for mi250x-DATE.md and .json")
    ap.add_argument("--arch", default="mi250x", help="an AMD arch hipcc knows (mi250x: gfx90a)")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--work", default=str(ROOT / "build" / "bench_amd"), help="builds and zoo models go here")
    ap.add_argument("--samples", nargs="*", default=SAMPLES, metavar="PATH")
    ap.add_argument("--models", nargs="*", default=MODELS_DEFAULT, choices=list(ZOO), metavar="NAME",
                    help="small zoo models (default: " + ", ".join(MODELS_DEFAULT) + ")")
    ap.add_argument("--row-timeout", type=float, default=300.0)
    ap.add_argument("--budget", type=float, default=8 * 60, help="stop starting rows after this many seconds")
    args = ap.parse_args(argv)
    if find_hipcc() is None:   # make bench on a machine without the AMD compiler: nothing to check
        print("bench_amd: no hipcc (install hipcc + rocm-device-libs, or set TILEC_HIPCC): mi250x section skipped")
        return 0
    work = Path(args.work)
    (work / "zoo").mkdir(parents=True, exist_ok=True)
    tasks = [(Path(s).stem, str(ROOT / s)) for s in args.samples]
    tasks += [(f"{m}-small", build_one(m, "small", str(work / "zoo"))[0]) for m in args.models]
    rows, skipped, t0 = [], [], time.time()
    for name, path in tasks:
        if time.time() - t0 > args.budget:
            skipped.append(name)
            continue
        rows.append(run_row(name, path, args.arch, work, args.row_timeout))
        print(f"[{len(rows)}/{len(tasks)}] {name}: {rows[-1].get('error') or rows[-1]['spills']} spills", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python scripts/bench_amd.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = [f"# {args.arch}: samples and small zoo models compiled with --check-hip, {args.date}", "",
          f"Command: `{cmd}` ({time.time() - t0:.0f} s; default pipeline; hipcc "
          "`--offload-arch=<isa> -O3 -Rpass-analysis=kernel-resource-usage`, results cached). Modelled bytes and "
          "time are the compiler's model for this arch (no AMD GPU here); VGPR+AGPR, LDS, occupancy and spills "
          "are hipcc's per kernel (largest / lowest over the build's kernels).", "", table(rows)]
    if skipped:
        md.append(f"Not run (over the {args.budget:.0f} s budget): {', '.join(skipped)}.\n")
    (out / f"{args.arch}-{args.date}.md").write_text("\n".join(md))
    (out / f"{args.arch}-{args.date}.json").write_text(json.dumps({"command": cmd, "rows": rows,
                                                                  "skipped": skipped}, indent=1) + "\n")
    failed = [r["name"] for r in rows if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
