"""Grinder benchmark: launches and device→host syncs per inference, host-driven control flow vs grinder.

    python scripts/bench_grinder.py [--out docs/benchmarks] [--date YYYY-MM-DD] [--models NAME,...]

Each sample of ``samples/control`` is compiled with ``--pipeline rammer`` (loops and ifs driven from the host)
and ``--pipeline grinder`` (the same, then grinder), both run once under the CPU emulator on seeded inputs,
and compared with onnxruntime. Counts are the executor's (RUN.json ``totals``): launches of kernels, host
syncs (trip-count / condition / predicate read-backs, host ops, and the final read of the results). Writes
``OUT/grinder-DATE.md`` and prints the table. ``--date`` defaults to today (UTC, as ``scripts/bench.py``, whose
``cpu-DATE.md`` links to ``grinder-DATE.md``).

A sample that fails (compile, run, or the reference) does not stop the others: its row records the error and
the script exits with status 1 after writing the table, so one broken sample still leaves every other row.
"""
from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
SAMPLES = ROOT / "samples" / "control"
NAMES = ["lstm_loop", "nasrnn_loop", "greedy_decoder", "greedy_decoder:early", "skipnet_if", "torch_lstm", "torch_gru",
         "torch_rnn"]
COMMAND = "make bench   # runs: python scripts/bench_grinder.py --out docs/benchmarks"


def inputs_for(path: Path, seed: int = 0) -> dict:
    """Seeded inputs: normal floats; integers in [1, 6), so trip counts and token ids make loops run (the
    inputs tests/grinder and tests/emu give the same samples)."""
    from tilec.bench.measure import model_feeds
    return model_feeds(onnx.load(str(path)), seed, ints=(1, 6))


def measure(label: str, tmp: Path) -> dict:
    """One row; ``label`` is a sample name, with ``:early`` for greedy_decoder on inputs that meet the end
    token after 3 of its 8 steps (the seeded inputs run all 8)."""
    from tilec.driver import compile_model, make_executor
    from tilec.ir.io import read_ir
    name = label.split(":")[0]
    path = SAMPLES / f"{name}.onnx"
    inputs = inputs_for(path)
    if name == "skipnet_if":
        inputs["x"] = inputs["x"] + 1.0  # gate open: the residual block runs
    if label == "greedy_decoder:early":
        rng = np.random.default_rng(7)
        inputs = {"h0": (rng.standard_normal((1, 8)) * 2).astype(np.float32),
                  "start": rng.integers(0, 6, (1,)).astype(np.int64)}
    ref = ort.InferenceSession(str(path)).run(None, inputs)
    row = {"model": label.replace(":early", " (exits after 3 steps)")}
    for pipeline in ("rammer", "grinder"):
        build = tmp / f"{name}.{pipeline}"
        if not build.exists():
            compile_model(str(path), str(build), pipeline=pipeline)
        ex = make_executor(str(build), "emu")
        out = ex.run(inputs)
        totals = ex.report()["totals"]
        err = max(float(np.max(np.abs(o - r))) for o, r in zip(out.values(), ref))
        row[pipeline] = {"launches": totals["launches"], "syncs": totals["host_syncs"],
                         "kb": totals["global_bytes"] / 1024, "err": err}
    module = read_ir(str(tmp / f"{name}.grinder" / "model.tir"))
    decisions = []
    for op in module.walk():
        if op.name in ("cf.loop", "cf.if"):
            g = op.attributes.get("grinder", {})
            if op.attributes.get("placement") == "device":
                decisions.append(f"{op.name} → device, grid {g['grid']}, {g['stages']} stages")
            else:
                decisions.append(f"{op.name} stays on host: {g.get('reason', '?')}")
    row["decision"] = "; ".join(decisions)
    return row


def measure_row(label: str, tmp: Path) -> dict:
    """:func:`measure`, or a row ``{"model", "error"}`` saying why it failed (exception type and first line)."""
    try:
        return measure(label, tmp)
    except Exception as e:  # noqa: BLE001 - one failing sample must not lose the other rows
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
        return {"model": label.replace(":early", " (exits after 3 steps)"),
                "error": f"{type(e).__name__}: {first}" if first else type(e).__name__}


def table(rows: list) -> str:
    lines = ["| model | launches host → grinder | host syncs host → grinder | emu global KB host → grinder | "
             "max err vs onnxruntime | grinder's decision |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        if "error" in r:
            err = r["error"].replace("|", "\\|")
            lines.append(f"| {r['model']} | — | — | — | — | **failed**: {err} |")
            continue
        h, g = r["rammer"], r["grinder"]
        lines.append(f"| {r['model']} | {h['launches']} → {g['launches']} | {h['syncs']} → {g['syncs']} | "
                     f"{h['kb']:.1f} → {g['kb']:.1f} | {max(h['err'], g['err']):.1e} | {r['decision']} |")
    return "\n".join(lines)


NOTES = """
- Counts are the executor's for one inference under the emulator (RUN.json `totals`); *host syncs* include
  the one wait before the results are read, so 1 is the floor.
- lstm_loop / nasrnn_loop: every body kernel of every iteration was a launch (18 × 4 and 50 × 4); grinder
  runs the loop as one `device_loop` launch (grid = one block per H200 SM, a grid barrier after each body
  kernel and after the carry step). Their trip count and condition are constants, so the host schedule
  already had a single sync.
- greedy_decoder: ArgMax now has a kernel (`backend/lower/argreduce.py`), so the whole body is kernels and
  grinder moves the loop, whose early exit (the end token) is read on the device. Host-driven it reads the
  condition back after every step: 9 syncs = 8 steps + 1 (17 before ArgMax had a kernel: one more per step
  for the host op); on inputs that stop after 3 steps, 4 syncs and 27 launches. Grinder: 1 launch, 1 sync.
  Its matmuls (8 and 6 threads, shared memory and barriers) run guarded in the 32-thread block, as rammer's
  do.
- skipnet_if, gate open: the predicate kernel plus four branch kernels become the predicate kernel plus one
  `device_if` launch, and the predicate is no longer read back (2 → 1 syncs). With the gate closed the
  device schedule costs one launch more than the host's (which launches nothing for the empty branch).
- torch_lstm / torch_gru / torch_rnn (torch-exported, one `cf.loop` per layer and direction): every loop
  moves; the launches left are the ones outside the loops.
- The device kernel's `flops` / `bytes_modelled` in the IR and plan cover the whole launch: the body times
  the constant trip count (an upper bound when the loop can exit early), or an if's larger branch.
- emu global KB grows slightly under grinder: the kernel copies the carried values in and out itself, and
  each block's thread 0 reads the trip count and condition.
- No GPU: no times. `tests/grinder/test_grinder_pass.py` asserts these counts and the numerics.
"""


def main(argv=None) -> int:
    """Writes the table; returns 1 when any row failed (after writing every row), else 0."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--models", default=",".join(NAMES))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tilec-bench-grinder-") as tmp:
        rows = [measure_row(n, Path(tmp)) for n in args.models.split(",")]
    text = table(rows)
    print(text)
    path = Path(args.out) / f"grinder-{args.date}.md"
    path.write_text(f"# Grinder on samples/control, {args.date}\n\n```sh\n{COMMAND}\n```\n\n{text}\n{NOTES}")
    print(f"wrote {path}")
    failed = [r["model"] for r in rows if "error" in r]
    if failed:
        print(f"bench_grinder: {len(failed)}/{len(rows)} rows failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
