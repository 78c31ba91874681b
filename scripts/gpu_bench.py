"""``make gpu-bench``: GPU latency of tilec against onnxruntime (CUDA provider), PyTorch eager, torch.compile
(without and with CUDA graphs) and cuBLAS, every system timed the same way (``tilec.bench.timing``: CUDA events
on its stream, warm-up, median of N hot and N cold with the L2 flushed). Writes OUT/gpu-DATE-GPU.md and .jsonl
row by row, and OUT/gpu-DATE-GPU.json at the end.

    python scripts/gpu_bench.py --out docs/benchmarks [--models NAME ...] [--size full|small] [--runs 20]
                                [--pipelines P ...] [--budget 540] [--jobs N] [--no-torch-compile]
                                [--compile-models NAME ...] [--dry-run]

Every row runs in its own process with a timeout (``tilec.bench.rowrun``): a crash or hang costs that row, and
the table says which and why. The plan (rows, timeouts, worst case, budget) is printed before anything runs.
Phases: ``probe`` (the GPU and library versions), ``compile`` (tilec builds, ``--jobs`` at a time: CPU only),
``measure`` (one row at a time: tilec, onnxruntime and torch eager per model, correctness first, then timing;
tilec's GEMM (f32, f16, bf16) and conv against the roofline of the card's arch spec; cuBLAS GEMM in f32, tf32,
f16 and bf16 at the same size against the spec's peaks, and tilec over cuBLAS in a "GEMM vs cuBLAS" table; the
BERT-base FFN and attention in f16 (scripts/tensorcore_fused.py's models) with torch SDPA, FlashAttention on a
GPU, beside the attention), ``torch.compile`` (the ``--compile-models``, each model and mode in its own process:
``max-autotune-no-cudagraphs`` and ``max-autotune``, which adds CUDA graphs). Rows not started within
``--budget`` are recorded as skipped.

``--dry-run`` takes the same path without a GPU: emu backend, small models, onnxruntime and torch on the CPU,
wall clock, one timed run (tests/bench/test_gpu_bench_dry_run.py).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for _p in (ROOT / "src", ROOT):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from tilec.bench import gpu_report as rep  # noqa: E402
from tilec.bench.gpu_systems import TOLERANCE  # noqa: E402
from tilec.bench.journal import Journal  # noqa: E402
from tilec.bench.rowrun import Row, run_row  # noqa: E402
from tilec.bench.runplan import Budget, run_rows  # noqa: E402

COLUMNS = ["row", "system", "status", "rel err", "hot ms", "cold ms (L2 flushed)", "detail", "row s"]
MODES = ["max-autotune-no-cudagraphs", "max-autotune"]
TIMEOUTS = {"probe": 60, "compile": 240, "tilec": 120, "ort": 90, "torch": 90, "cublas": 60, "torch.compile": 240}


GEMM_DTYPES = ("f32", "f16", "bf16")   # tilec's single-MatMul rows; cuBLAS runs these and tf32 at the same size
# The fused f16 models (scripts/tensorcore_fused.py): BERT-base's FFN (tokens, hidden, inner) and attention
# (batch, heads, seq, head dim); tiny in the dry run, where the emulator runs them.
FFN = {"gpu": (1024, 768, 3072), "dry": (64, 64, 256)}
ATTENTION = {"gpu": (1, 12, 512, 64), "dry": (1, 2, 128, 64)}
HALF_TOL = {k: TOLERANCE[k] for k in ("f16", "bf16")}   # rel err of f16 / bf16 rows: the cuBLAS rows'


def single_op_model(kind: str, dims: dict, path: Path, dtype: str = "f32") -> tuple[float, int]:
    """A one-node ONNX model (MatMul of two ``dtype`` inputs, or a 3x3 f32 Conv with a weight); returns (FLOPs,
    lower-bound bytes: inputs, weights and output once)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    f = TensorProto.FLOAT
    if kind == "gemm":
        M, N, K = dims["M"], dims["N"], dims["K"]
        t = {"f32": f, "f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[dtype]
        g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", t, [M, K]),
                               helper.make_tensor_value_info("b", t, [K, N])],
                              [helper.make_tensor_value_info("y", t, [M, N])])
        size = 4 if dtype == "f32" else 2
        flops, nbytes = 2.0 * M * N * K, size * (M * K + K * N + M * N)
    else:
        n, c, h, k = dims["N"], dims["C"], dims["H"], dims["K"]
        w = np.random.default_rng(0).standard_normal((k, c, 3, 3)).astype(np.float32) * 0.05
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", f, [n, c, h, h])],
                              [helper.make_tensor_value_info("y", f, [n, k, h, h])],
                              [numpy_helper.from_array(w, "w")])
        flops, nbytes = 2.0 * n * k * h * h * c * 9, 4 * (n * c * h * h + w.size + n * k * h * h)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return flops, nbytes


def plan_rows(args) -> dict:
    """Every row of the run by phase (models are built here: the zoo cache makes that cheap after once)."""
    from samples.models.build_zoo import build_one
    dev = "cpu" if args.dry_run else "cuda"
    common = {"runs": args.runs, "warmup": args.warmup, "tol": args.tol, "device": dev}
    compile_rows, measure, compiled = [], [], []
    models, unbuilt = [], []
    for name in args.models:
        try:
            models.append((name, build_one(name, args.size, str(args.work / "zoo"))[0]))
        except Exception as e:  # noqa: BLE001 - one model that cannot be built costs its rows, not the run
            unbuilt.append({"id": f"build/{name}", "model": name, "system": "model build", "status": "failed",
                            "error": f"{type(e).__name__}: {e}", "seconds": 0.0})
    n = 64 if args.dry_run else 4096   # the GEMMs' size: tilec's and cuBLAS's alike
    gemm = {"M": n, "N": n, "K": n}
    shapes = [("gemm", gemm, dt) for dt in GEMM_DTYPES] + [
        ("conv", {"N": 1, "C": 8, "H": 8, "K": 8} if args.dry_run else {"N": 8, "C": 256, "H": 56, "K": 256}, "f32")]
    roof = []
    for kind, dims, dtype in shapes:
        path = args.work / f"roofline-{kind}-{dtype}.onnx"
        flops, nbytes = single_op_model(kind, dims, path, dtype)
        shape = "x".join(f"{k}{v}" for k, v in dims.items())
        name = f"{kind} {shape}" if dtype == "f32" else f"{kind} {dtype} {shape}"
        tol = {} if dtype == "f32" else {"tol": HALF_TOL[dtype]}
        roof.append((name, str(path), {"roofline": {"flops": flops, "bytes": nbytes, "dtype": dtype}, **tol}))
    fused = fused_models(args)
    half_models = [(n, p, {"tol": HALF_TOL["f16"]}) for n, p in fused]
    for name, path, extra in [(n, p, {}) for n, p in models] + half_models + roof:
        for p in args.pipelines if "roofline" not in extra else args.pipelines[-1:]:
            build = args.work / "builds" / f"{name.replace(' ', '-')}-{args.size}-{p}"
            shutil.rmtree(build, ignore_errors=True)  # never time a stale build
            spec = {"kind": "tilec", "model": path, "build": str(build), "pipeline": p, "backend": args.backend,
                    **common, **extra}
            labels = {"model": name, "system": f"tilec {p}"}
            compile_rows.append(Row(f"compile/{name}/{p}", {**spec, "compile_only": True,
                                                             "nvrtc_warm": not args.dry_run}, TIMEOUTS["compile"],
                                    {**labels, "system": f"tilec {p} compile"}))
            measure.append(Row(f"tilec/{name}/{p}", {**spec, "reuse_build": True}, TIMEOUTS["tilec"], labels))
        if "roofline" in extra:
            continue
        half = {k: v for k, v in extra.items() if k == "tol"}   # the f16 models' tolerance for every system
        measure.append(Row(f"ort/{name}", {"kind": "ort", "model": path, **common, **half}, TIMEOUTS["ort"],
                           {"model": name, "system": "onnxruntime"}))
        measure.append(Row(f"torch/{name}/eager", {"kind": "torch", "mode": "eager", "model": path, **common,
                                                   **half}, TIMEOUTS["torch"], {"model": name, "system": "torch eager"}))
        if name.startswith("attention"):   # FlashAttention through torch's SDPA on the same Q, Kᵀ, V
            measure.append(Row(f"sdpa/{name}", {"kind": "sdpa", "model": path, **common, **half}, TIMEOUTS["torch"],
                               {"model": name, "system": "torch SDPA"}))
        for mode in args.torch_modes if name in args.compile_models or (name, path) in fused else ():
            compiled.append(Row(f"torch/{name}/{mode}", {"kind": "torch", "mode": mode, "model": path, **common,
                                                         **half},
                                TIMEOUTS["torch.compile"], {"model": name, "system": f"torch.compile {mode}"}))
    for dtype in ("f32", "tf32", "f16", "bf16"):
        measure.append(Row(f"cublas/{dtype}", {"kind": "cublas", "dtype": dtype, "n": n, **common},
                           TIMEOUTS["cublas"], {"model": f"gemm {n}^3 {dtype}", "system": "cuBLAS (torch.matmul)"}))
    # The FFN and attention first: torch.compile is what they are compared with, and the phase runs last in the
    # budget (a stable sort keeps each model's modes in order).
    compiled.sort(key=lambda r: r.spec["model"] not in {p for _, p in fused})
    return {"compile": compile_rows, "measure": measure, "torch.compile": compiled, "unbuilt": unbuilt}


def fused_models(args) -> list:
    """``[(name, path)]`` of the f16 BERT-base FFN and attention models (scripts/tensorcore_fused.py's)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import tensorcore_fused as tf
    size = "dry" if args.dry_run else "gpu"
    (t, hidden, inner), (b, h, s, d) = FFN[size], ATTENTION[size]
    ffn, att = args.work / "ffn-f16.onnx", args.work / "attention-f16.onnx"
    tf.ffn_model(ffn, t, hidden, inner)
    tf.attention_model(att, b, h, s, d)
    return [(f"ffn f16 {t}x{hidden}x{inner}", str(ffn)), (f"attention f16 b{b}h{h}s{s}d{d}", str(att))]


def gemm_vs_cublas(results: list) -> list[str]:
    """tilec's single-MatMul rows over cuBLAS's rows of the same dtype and size, hot and cold."""
    by = {r["id"]: r for r in results if r.get("status") == "ok"}
    lines = ["## GEMM vs cuBLAS (torch.matmul): median ms, tilec / cuBLAS", "",
             "| GEMM | tilec cold / hot | cuBLAS cold / hot | tilec / cuBLAS cold | hot |", "| --- | --- | --- | --- | --- |"]
    for r in results:
        if not (r["id"].startswith("tilec/gemm ") and r.get("status") == "ok"):
            continue
        dtype = next((d for d in GEMM_DTYPES[1:] if f"gemm {d} " in r["id"]), "f32")
        c = by.get(f"cublas/{dtype}")
        ratio = (lambda k: f"{r[k] / c[k]:.2f}x") if c else (lambda k: "-")  # noqa: E731
        lines.append(f"| {r['model']} | {rep.ms(r, 'cold_ms')} / {rep.ms(r, 'hot_ms')} | "
                     + (f"{rep.ms(c, 'cold_ms')} / {rep.ms(c, 'hot_ms')}" if c else "no row")
                     + f" | {ratio('cold_ms')} | {ratio('hot_ms')} |")
    return lines


def detail(r: dict) -> str:
    """What else a row measured: launches and graph (tilec), provider (ort), compile time, roofline share."""
    bits = []
    if r.get("launches") is not None:
        bits.append(f"{r['launches']} launches{', CUDA graph' if r.get('cuda_graph') else ''}")
    if r.get("compile_s") is not None:
        bits.append(f"compiled in {r['compile_s']}s" + ("" if r.get("pattern_matcher", True) else
                                                         " (pattern matcher off)"))
    if r.get("nvrtc_kernels") is not None:
        bits.append(f"NVRTC: {r['nvrtc_kernels']} kernels in {r['nvrtc_s']}s")
    if r.get("provider"):
        bits.append(r["provider"] + (f", stream {r['stream']}" if r.get("stream") else ""))
    if r.get("bound_ms") and r.get("cold_ms"):
        bits.append(f"{r['gflop']:.1f} GFLOP, {r.get('arch')} roofline {r['bound_ms']:.3f} ms ({r['bound']}): "
                    f"{100 * r['bound_ms'] / r['cold_ms']:.0f}% cold, {100 * r['bound_ms'] / r['hot_ms']:.0f}% hot")
    if r.get("peak_tflops"):
        bits.append(f"{r['hot_tflops']:.0f} / {r.get('cold_tflops', 0):.0f} TFLOP/s hot / cold of "
                    f"{r['peak_tflops']:.0f} {r.get('arch')} peak ({r['hot_pct_peak']:.0f}% hot)")
    return "; ".join(bits)


def cells(r: dict) -> list:
    return [r.get("model"), r.get("system"), rep.status(r), rep.num(r.get("rel_err")), rep.ms(r, "hot_ms"),
            rep.ms(r, "cold_ms"), detail(r), r.get("seconds")]


def summary(results: list, models: list) -> list[str]:
    """Model x system, cold / hot ms: the same numbers as the rows above, side by side."""
    systems = list(dict.fromkeys(r["system"] for r in results if r.get("model") in models
                                 and not r["system"].endswith(" compile")))
    by = {(r["model"], r["system"]): r for r in results}
    lines = ["## Summary: cold / hot median ms", "", "| model | " + " | ".join(systems) + " |",
             "|" + " --- |" * (len(systems) + 1)]
    for m in models:
        row = []
        for s in systems:
            r = by.get((m, s), {})
            row.append(f"{rep.ms(r, 'cold_ms')} / {rep.ms(r, 'hot_ms')}" if r.get("status") == "ok"
                       else r.get("status", "-"))
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    return lines


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from samples.models import ZOO
    from tilec.driver import DEFAULT_PIPELINE, PIPELINES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "gpu_bench")
    ap.add_argument("--models", nargs="+", choices=list(ZOO), metavar="NAME", default=None,
                    help="default: nerf_mlp resnet18 mobilenet_v2 lstm bert_base (nerf_mlp with --dry-run)")
    ap.add_argument("--size", choices=["small", "full"], default=None, help="default: full (small with --dry-run)")
    ap.add_argument("--pipelines", nargs="+", default=[DEFAULT_PIPELINE], choices=list(PIPELINES), metavar="P")
    ap.add_argument("--runs", type=int, default=20, help="timed runs, hot and cold each")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--tol", type=float, default=1e-3, help="max |err| / max(1, max |onnxruntime|)")
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for the whole run (rows then skipped)")
    ap.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1), help="parallel tilec compiles")
    ap.add_argument("--timeout-cap", type=float, default=None, metavar="S",
                    help="no row's timeout above S seconds (a quick run; the tests' planted hangs)")
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--compile-models", nargs="+", choices=list(ZOO), metavar="NAME", default=None,
                    help="models timed with torch.compile (default: nerf_mlp bert_base; every model with --dry-run): "
                         "max-autotune compiles for minutes, and the phase runs last within the budget")
    ap.add_argument("--torch-compile", action="store_true", help="with --dry-run: torch.compile on the CPU too")
    ap.add_argument("--dry-run", action="store_true", help="emu backend, small sizes, CPU baselines, wall clock")
    args = ap.parse_args(argv)
    t0, started = time.perf_counter(), time.monotonic()
    args.models = args.models or (["nerf_mlp"] if args.dry_run else
                                  ["nerf_mlp", "resnet18", "mobilenet_v2", "lstm", "bert_base"])
    args.size = args.size or ("small" if args.dry_run else "full")
    args.compile_models = args.compile_models or (args.models if args.dry_run else ["nerf_mlp", "bert_base"])
    args.backend = "emu" if args.dry_run else "cupy"
    if args.dry_run:
        args.runs, args.warmup = 1, 0
    args.torch_modes = [] if args.no_torch_compile or (args.dry_run and not args.torch_compile) else MODES
    args.work = args.work.resolve()
    (args.work / "zoo").mkdir(parents=True, exist_ok=True)
    probe = Row("probe", {"kind": "probe", "device": "cpu" if args.dry_run else "cuda"}, TIMEOUTS["probe"],
                {"model": "machine", "system": "probe"})
    phases = plan_rows(args)
    if args.timeout_cap:
        for row in (r for name in ("compile", "measure", "torch.compile") for r in phases[name]):
            row.timeout = min(row.timeout, args.timeout_cap)
    budget = Budget(args.budget, [("probe", [probe], 1), ("compile", phases["compile"], args.jobs),
                                  ("measure", phases["measure"], 1), ("torch.compile", phases["torch.compile"], 1)],
                    start=started)
    plan = budget.plan("gpu_bench")
    print(plan, flush=True)
    machine = run_row(probe, args.work / "rows", ROOT, timeout=probe.timeout)
    print(rep.machine_line(machine), flush=True)
    gpu = rep.gpu_slug(machine.get("gpu", "unknown-gpu"))
    stem = args.out / f"gpu-{args.date}-{gpu}"
    journal = Journal(stem.with_suffix(".md"), stem.with_suffix(".jsonl"), COLUMNS)
    journal.start([f"# GPU benchmark, {args.date}, {gpu}", "", "```sh",
                   " ".join(["python", "scripts/gpu_bench.py", *argv]), "```", "", rep.machine_line(machine), "",
                   "```", plan, "```", "",
                   f"Correctness first: every system's outputs vs onnxruntime on the CPU (same seeded inputs), "
                   f"*rel err* = max |err| / max(1, max |onnxruntime|), *wrong* above {args.tol:g} (cuBLAS: vs an "
                   f"f64 product, per-dtype tolerance). {rep.TIMING_NOTE} {args.runs} runs each after "
                   f"{args.warmup} warm-up. torch runs the ONNX graph op by op (tilec.bench.torch_onnx); "
                   "torch.compile rows run each mode in a fresh process (`max-autotune` adds CUDA graphs). "
                   f"f16 / bf16 rows (the FFN, attention, GEMMs): *wrong* above {HALF_TOL['f16']:g} / "
                   f"{HALF_TOL['bf16']:g}; bf16 references run as the model's f32 copy (onnxruntime's CPU has no "
                   "bf16 MatMul). torch SDPA: `scaled_dot_product_attention` on the attention model's Q, K, V "
                   "(FlashAttention's kernel on a GPU). "
                   "Roofline rows: tilec's single-op GEMM / conv against max(FLOPs / peak (fp32; tensor cores for "
                   "f16 / bf16), bytes / DRAM bandwidth) of src/tilec/analysis/hw/<arch>.json, the arch named in "
                   "the GPU's name (h200 where none is: the dry run); cuBLAS against that file's f32 / tf32 / f16 / "
                   "bf16 dense peaks.", ""])
    results = []

    def done(r: dict) -> None:
        journal.append(r, cells(r))
        results.append(r)
        print(f"gpu_bench: [{budget.left():.0f}s left] {r['id']}: {r['status']} {rep.ms(r, 'cold_ms')} / "
              f"{rep.ms(r, 'hot_ms')} ms {r.get('error') or ''}", flush=True)

    for r in phases["unbuilt"]:
        done(r)
    for name in ("compile", "measure", "torch.compile"):
        run_rows(phases[name], args.jobs if name == "compile" else 1, budget, args.work / "rows", ROOT, done)
    wall = time.perf_counter() - t0
    bad = [r["id"] for r in results if r["status"] not in ("ok", "skipped")]
    fused = [r["model"] for r in results if r["id"].startswith(("tilec/ffn", "tilec/attention"))]
    journal.write([*summary(results, args.models + list(dict.fromkeys(fused))), "", *gemm_vs_cublas(results), "",
                   f"{wall:.0f}s in all; {len(results) - len(bad)}/{len(results)} rows ok or skipped"
                   + (f"; not ok: {', '.join(bad)}." if bad else ".")])
    stem.with_suffix(".json").write_text(json.dumps(
        {"meta": {"date": args.date, "gpu": gpu, "command": argv, "runs": args.runs, "warmup": args.warmup,
                  "wall_seconds": round(wall, 1), "dry_run": args.dry_run, "plan": plan},
         "machine": machine, "rows": results}, indent=1, sort_keys=True, default=float) + "\n")
    print(stem.with_suffix(".md").read_text(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
