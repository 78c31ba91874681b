"""``make bench-roller``: Roller on the operator suite (samples/ops/suite.py), one row per operator.

Per op: construction time (top-1 and top-10), the chosen tile, the model's estimate and occupancy, the
global bytes the lowered kernel's model predicts (``bytes_modelled``) against what the CUDA emulator counts
on random inputs (every block of the full launch), correctness against ``tilec.ir.texpr.evaluate``, the
emulator's wall time, and ptxas' registers/smem/spills for sm_90. Every op runs under the emulator unless
``--emu-gflop`` sets a cut-off (for quick local runs); skipped ops say so in their row and in the summary.

Writes ``OUT/roller-2026-11-29.md`` (``--date`` to change) and prints the summary lines. Hand-written notes
survive a rerun: everything from the line ``NOTES`` on in the existing file is kept below the new table.
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
REPEATS = 3     # construction timings: best of this many runs per op
NOTES = "<!-- hand-written notes below: kept when the table is regenerated -->"


def compute_op(module):
    return next(op for op in module.walk() if op.name == "tile.compute")


def roller_times(text: str, arch: str, repeats: int = REPEATS) -> tuple:
    """(seconds for top-1, seconds for top-10, candidates of the top-10 run): the best of ``repeats`` runs
    each, every run on a fresh parse so no cached property of one run helps the next."""
    from tilec.analysis.hardware import get_arch
    from tilec.analysis.roller import construct_rtiles
    from tilec.analysis.tile_problem import TileProblem
    from tilec.ir import parse_module
    spec = get_arch(arch)
    out = []
    for k in (1, 10):
        best = math.inf
        for _ in range(repeats):
            p = TileProblem.of(compute_op(parse_module(text)))
            t0 = time.perf_counter()
            cands = construct_rtiles(p, spec, k)
            best = min(best, time.perf_counter() - t0)
        out.append((best, cands))
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
        cands = roller_times(text, arch, repeats=1)[2]   # untimed here: main() times construction alone
        module = parse_module(text)
        op = compute_op(module)
        expr_text, pad = op.attributes["expr"], float(op.attributes.get("pad", 0.0))
        hints = op.attributes.get("axes")
        out_t = (tuple(op.result.type.shape), op.result.type.dtype)
        row["dtype"] = out_t[1]
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
        if emu_gflop is not None and gflop > emu_gflop:
            row["emu"] = f"skipped ({gflop:.2f} GFLOP > {emu_gflop})"
            return row
        from tilec.backend.emu import EmuModule
        out = np.zeros(out_t[0], np_dtype(out_t[1]))
        a = k.attributes
        emu = EmuModule(source)   # compile (or load from the cache) outside the timed launch
        t0 = time.perf_counter()
        st = emu.launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), ins + [out], smem_bytes=a.get("smem", 0))
        row["emu_s"] = time.perf_counter() - t0
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


def is_skipped(r: dict) -> bool:
    return str(r.get("emu", "")).startswith("skipped")


def markdown(rows: list, summary: list, arch: str, emu_gflop, notes: str = "") -> str:
    head = ("| op | kernel | tile (block/thread/step) | top-1 ms | top-10 ms | est µs | blocks/SM | waves | "
            "modelled | measured | Δ | emu s | regs | smem B | spill B | emu |")
    scope = ("Every op runs under the emulator (the full grid, every block)." if emu_gflop is None else
             f"Ops above {emu_gflop} GFLOP are not run under the emulator (`--emu-gflop`).")
    lines = [f"# Roller on the operator suite ({arch}, {len(rows)} ops)", "",
             "Command:", "", "```", COMMAND, "```", "",
             "Generated by `scripts/bench_roller.py`. *modelled* is the lowered kernel's `bytes_modelled`, "
             "*measured* the global bytes the CUDA emulator counted on random inputs; *emu* is the emulator "
             f"output against `tilec.ir.texpr.evaluate`; *emu s* the wall time of the emulated launch. {scope} "
             "regs/smem/spill: `ptxas -v`, sm_90. blocks/SM: the estimate's occupancy. top-1/top-10 ms: "
             f"`construct_rtiles` wall time, best of {REPEATS} runs on a fresh parse, timed one op at a time in one "
             "process before the lowering/ptxas/emulator work starts.", "",
             "## Summary", "", *[f"- {s}" for s in summary], "", "## Per operator", "",
             head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        d = "-"
        if r.get("measured"):
            d = f"{(r['modelled'] - r['measured']) / r['measured'] * 100:+.1f}%"
        emu_s = f"{r['emu_s']:.2f}" if "emu_s" in r else "-"
        lines.append("| " + " | ".join([
            r["name"], r.get("kind", "-"), r.get("tile", "-"), f"{r.get('t1', 0) * 1e3:.1f}",
            f"{r.get('t10', 0) * 1e3:.1f}", f"{r.get('est_us', float('nan')):.2f}", str(r.get("blocks_per_sm", "-")),
            str(r.get("waves", "-")), fmt_bytes(r.get("modelled")), fmt_bytes(r.get("measured")), d, emu_s,
            str(r.get("regs", "-")), str(r.get("smem", "-")), str(r.get("spill", "-")), r.get("emu", "-")]) + " |")
    text = "\n".join(lines) + "\n"
    return text + ("\n" + notes if notes else "")


def summarize(rows: list, wall: float) -> list:
    t1 = [r["t1"] for r in rows if "t1" in r]
    t10 = [r["t10"] for r in rows if "t10" in r]
    run = [r for r in rows if "measured" in r]
    close = sum(1 for r in run if abs(r["modelled"] - r["measured"]) <= WITHIN * r["measured"])
    skipped = [r["name"] for r in rows if is_skipped(r)]
    bad = [f"{r['name']} ({r.get('emu', 'no result')})" for r in rows if r.get("emu") != "ok" and not is_skipped(r)]
    ok = sum(1 for r in rows if r.get("emu") == "ok")
    ptx = [r for r in rows if "spill" in r]
    spills = [r["name"] for r in rows if r.get("spill")]
    slow = max(run, key=lambda r: r.get("emu_s", 0), default=None)
    out = [f"median Roller construction time (top-1): {statistics.median(t1) * 1e3:.1f} ms; "
           f"top-10: {statistics.median(t10) * 1e3:.1f} ms (max top-1: {max(t1) * 1e3:.1f} ms)",
           f"whole suite: Roller top-1 {sum(t1):.2f} s, top-10 {sum(t10):.2f} s; whole benchmark run "
           f"(construction, lowering, ptxas, emulator, reference) {wall:.0f} s wall",
           f"modelled within {WITHIN:.0%} of measured: {close} of {len(run)} ops run under the emulator "
           f"({len(rows)} ops in this run; skipped: {', '.join(skipped) or 'none'})",
           f"emulator vs reference: {ok} ok of {len(rows)}; failures: {', '.join(bad) or 'none'}",
           f"ops that spill (ptxas sm_90): {len(spills)}{' (' + ', '.join(spills) + ')' if spills else ''} of "
           f"{len(ptx)} kernels ptxas compiled ({sum(1 for r in ptx if r.get('dtype') == 'f16')} of them f16)"]
    if slow is not None and "emu_s" in slow:
        out.append(f"emulator: {sum(r.get('emu_s', 0) for r in run):.0f} s of launches in all; slowest "
                   f"{slow['name']} {slow['emu_s']:.1f} s ({slow['flops'] / 1e9:.2f} GFLOP)")
    return out


def kept_notes(path: Path) -> str:
    """The hand-written part of an existing report (from the NOTES marker on), or ''."""
    if not path.is_file():
        return ""
    text = path.read_text()
    i = text.find(NOTES)
    return text[i:] if i >= 0 else ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="docs/benchmarks", help="folder for the markdown report")
    ap.add_argument("--date", default="2026-11-29")
    ap.add_argument("--arch", default="h200")
    ap.add_argument("--emu-gflop", type=float, default=None,
                    help="skip the emulator above this many GFLOP (default: emulate every op)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated substrings: run only matching ops")
    ap.add_argument("--no-ptxas", action="store_true")
    args = ap.parse_args(argv)
    import os
    import shutil

    from suite import suite
    ops = suite()
    if args.only:
        ops = [(n, t) for n, t in ops if any(s in n for s in args.only.split(","))]
    ptx = not args.no_ptxas and shutil.which("nvcc") is not None
    os.environ.setdefault("TILEC_EMU_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, args.jobs))))
    start = time.perf_counter()
    # Construction times first, in this process, one op at a time, before any lowering or emulator work
    # competes for the cores; one untimed warm-up run first, so module imports are not charged to op 1.
    roller_times(ops[0][1], args.arch, repeats=1)
    times = {n: roller_times(t, args.arch)[:2] for n, t in ops}
    work = [(n, t, args.arch, args.emu_gflop, ptx) for n, t in ops]
    rows = []
    pool = ProcessPoolExecutor(max_workers=args.jobs) if args.jobs > 1 else None
    for r in (pool.map(bench_one, work) if pool else map(bench_one, work)):
        r["t1"], r["t10"] = times[r["name"]]
        emu_s = f"{r['emu_s']:6.2f} s" if "emu_s" in r else "     -  "
        print(f"{r['name']:40s} {r.get('tile', '-'):28s} {emu_s} {r.get('emu', '-')}", flush=True)
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
    path.write_text(markdown(rows, summary, args.arch, args.emu_gflop, kept_notes(path)))
    print("\n".join(summary))
    print(f"wrote {path}")
    return 0 if all(r.get("emu") == "ok" or is_skipped(r) for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
