"""``make bench-roller``: Roller on the operator suite (samples/ops/suite.py), one row per operator.

Per op: construction time (top-1 and top-10), the chosen tile, the model's estimate and occupancy, the
global bytes the lowered kernel's model predicts (``bytes_modelled``) against what the CUDA emulator counts
on random inputs, correctness against ``tilec.ir.texpr.evaluate``, and ptxas' registers/smem/spills for
sm_90. Ops above ``--emu-gflop`` are not run under the emulator (too slow on a CPU) and say so.

Writes ``OUT/roller-2026-11-29.md`` (``--date`` to change) and prints the summary lines.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "samples" / "ops")]

COMMAND = "make bench-roller   # = python scripts/bench_roller.py --out docs/benchmarks"
WITHIN = 0.05   # "modelled within 5% of measured"


def compute_op(module):
    return next(op for op in module.walk() if op.name == "tile.compute")


def roller_times(text: str, arch: str) -> tuple:
    """(seconds for top-1, seconds for top-10, candidates of the top-10 run); each a fresh parse so no
    cached property of one run helps the next."""
    from tilec.analysis.hardware import get_arch
    from tilec.analysis.roller import construct_rtiles
    from tilec.analysis.tile_problem import TileProblem
    from tilec.ir import parse_module
    spec = get_arch(arch)
    out = []
    for k in (1, 10):
        p = TileProblem.of(compute_op(parse_module(text)))
        t0 = time.perf_counter()
        cands = construct_rtiles(p, spec, k)
        out.append((time.perf_counter() - t0, cands))
    return out[0][0], out[1][0], out[1][1]


def tile_text(rtile: dict) -> str:
    b = "×".join(str(v) for v in rtile["block"].values())
    t = "×".join(str(v) for v in rtile["thread"].values())
    s = "×".join(str(v) for v in rtile["step"].values()) or "-"
    return f"b{b} t{t} s{s}"


def random_inputs(op, rng) -> list:
    from tilec.ir.types import np_dtype
    return [rng.standard_normal(v.type.shape).astype(np_dtype(v.type.dtype)) for v in op.operands]


def bench_one(args: tuple) -> dict:
    """Everything for one op (run in a worker process)."""
    name, text, arch, emu_gflop, ptx = args
    from tilec.backend.emit import emit_kernel
    from tilec.ir import parse_module
    from tilec.ir.texpr import evaluate, parse_texpr
    from tilec.ir.types import np_dtype
    from tilec.passes import get_pass
    row = {"name": name}
    try:
        row["t1"], row["t10"], cands = roller_times(text, arch)
        module = parse_module(text)
        op = compute_op(module)
        expr_text, pad = op.attributes["expr"], float(op.attributes.get("pad", 0.0))
        hints = op.attributes.get("axes")
        out_t = (tuple(op.result.type.shape), op.result.type.dtype)
        ins = random_inputs(op, np.random.default_rng(0))   # before lowering erases the op
        get_pass("roller", arch=arch, topk=1).apply(module)
        rtile, est = op.attributes.get("rtile"), op.attributes.get("estimate", {})
        row["tile"] = tile_text(rtile) if rtile else "-"
        row["est_us"] = est.get("seconds", float("nan")) * 1e6
        row["blocks_per_sm"] = cands[0].est.blocks_per_sm if cands else 0
        row["waves"] = est.get("waves", 0)
        row["flops"] = cands[0].est.flops if cands else 0
        get_pass("lower-cuda").apply(module)
        (k,) = [o for o in module.body.ops if o.name == "kernel.func"]
        row["kind"] = k.attributes.get("kind", "")
        row["modelled"] = int(k.attributes.get("bytes_modelled", 0))
        source = emit_kernel(k)
        if ptx:
            from tilec.backend.ptxas import check_kernels
            info = check_kernels({k.sym_name: source}, jobs=1)[k.sym_name]
            row.update(regs=info.registers, smem=info.smem, spill=info.spill_bytes)
        gflop = row["flops"] / 1e9
        if gflop > emu_gflop:
            row["emu"] = f"skipped ({gflop:.2f} GFLOP > {emu_gflop})"
            return row
        from tilec.backend.emu import EmuModule
        out = np.zeros(out_t[0], np_dtype(out_t[1]))
        a = k.attributes
        st = EmuModule(source).launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), ins + [out],
                                      smem_bytes=a.get("smem", 0))
        row["measured"] = st.global_load_bytes + st.global_store_bytes
        want = evaluate(parse_texpr(expr_text), ins, out_t[0], out_t[1], pad, hints)
        tol = 2e-2 if out_t[1] in ("f16", "bf16") else 1e-3
        ok = np.allclose(out.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol, equal_nan=True)
        row["emu"] = "ok" if ok else "MISMATCH"
    except Exception as e:  # one broken op must not hide the other rows
        row["emu"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
    return row


def fmt_bytes(n) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def markdown(rows: list, summary: list, arch: str, emu_gflop: float) -> str:
    head = ("| op | kernel | tile (block/thread/step) | top-1 ms | top-10 ms | est µs | blocks/SM | waves | "
            "modelled | measured | Δ | regs | smem B | spill B | emu |")
    lines = [f"# Roller on the operator suite ({arch}, {len(rows)} ops)", "",
             "Command:", "", "```", COMMAND, "```", "",
             "Generated by `scripts/bench_roller.py`. *modelled* is the lowered kernel's `bytes_modelled`, "
             "*measured* the global bytes the CUDA emulator counted on random inputs; *emu* is the emulator "
             f"output against `tilec.ir.texpr.evaluate`. Ops above {emu_gflop} GFLOP are not run under the "
             "emulator (CPU time). regs/smem/spill: `ptxas -v`, sm_90. blocks/SM: the estimate's "
             "occupancy.", "", "## Summary", "", *[f"- {s}" for s in summary], "", "## Per operator", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        d = "-"
        if r.get("measured"):
            d = f"{(r['modelled'] - r['measured']) / r['measured'] * 100:+.1f}%"
        lines.append("| " + " | ".join([
            r["name"], r.get("kind", "-"), r.get("tile", "-"), f"{r.get('t1', 0) * 1e3:.1f}",
            f"{r.get('t10', 0) * 1e3:.1f}", f"{r.get('est_us', float('nan')):.2f}", str(r.get("blocks_per_sm", "-")),
            str(r.get("waves", "-")), fmt_bytes(r.get("modelled")), fmt_bytes(r.get("measured")), d,
            str(r.get("regs", "-")), str(r.get("smem", "-")), str(r.get("spill", "-")), r.get("emu", "-")]) + " |")
    return "\n".join(lines) + "\n"


def summarize(rows: list, wall: float) -> list:
    t1 = [r["t1"] for r in rows if "t1" in r]
    measured = [r for r in rows if r.get("measured")]
    close = sum(1 for r in measured if abs(r["modelled"] - r["measured"]) <= WITHIN * r["measured"])
    spills = sum(1 for r in rows if r.get("spill"))
    bad = [r["name"] for r in rows if r.get("emu") not in ("ok",) and not str(r.get("emu", "")).startswith("skip")]
    skipped = sum(1 for r in rows if str(r.get("emu", "")).startswith("skip"))
    return [f"median Roller construction time (top-1): {statistics.median(t1) * 1e3:.1f} ms; "
            f"top-10: {statistics.median([r['t10'] for r in rows if 't10' in r]) * 1e3:.1f} ms",
            f"whole suite: Roller top-1 {sum(t1):.2f} s, top-10 {sum(r.get('t10', 0) for r in rows):.2f} s; "
            f"whole benchmark run (lowering, ptxas, emulator) {wall:.0f} s",
            f"modelled within {WITHIN:.0%} of measured: {close} of {len(measured)} ops run under the emulator "
            f"({skipped} skipped as too large)",
            f"ops that spill (ptxas sm_90): {spills}",
            f"emulator vs reference: {len(measured) - len([b for b in bad if b in {m['name'] for m in measured}])}"
            f" ok of {len(measured)}; failures: {', '.join(bad) or 'none'}"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/benchmarks", help="folder for the markdown report")
    ap.add_argument("--date", default="2026-11-29")
    ap.add_argument("--arch", default="h200")
    ap.add_argument("--emu-gflop", type=float, default=0.3, help="skip the emulator above this many GFLOP")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching ops")
    ap.add_argument("--no-ptxas", action="store_true")
    args = ap.parse_args(argv)
    import shutil

    from suite import suite
    ops = suite()
    if args.only:
        ops = [(n, t) for n, t in ops if any(s in n for s in args.only.split(","))]
    ptx = not args.no_ptxas and shutil.which("nvcc") is not None
    import os
    os.environ.setdefault("TILEC_EMU_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, args.jobs))))
    start = time.perf_counter()
    work = [(n, t, args.arch, args.emu_gflop, ptx) for n, t in ops]
    # Roller timings are taken inside the workers; with 2 jobs on 2 cores they don't compete for a core.
    rows = []
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else None
    for r in (pool.map(bench_one, work) if pool else map(bench_one, work)):
        print(f"{r['name']:40s} {r.get('tile', '-'):28s} {r.get('emu', '-')}", flush=True)
        rows.append(r)
    if pool:
        pool.shutdown()
    wall = time.perf_counter() - start
    summary = summarize(rows, wall)
    if not ptx:
        summary.append("ptxas columns empty: nvcc not found or --no-ptxas")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"roller-{args.date}.md"
    path.write_text(markdown(rows, summary, args.arch, args.emu_gflop))
    print("\n".join(summary))
    print(f"wrote {path}")
    return 0 if all(not str(r.get("emu", "")).startswith(("error", "MISMATCH")) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
