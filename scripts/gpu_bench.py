"""``make gpu-bench``: GPU latency of tilec against onnxruntime, PyTorch eager and torch.compile, plus a GEMM
and conv roofline check against CuPy/cuBLAS. Writes OUT/gpu-DATE.md and OUT/gpu-DATE.json.

    python scripts/gpu_bench.py --out docs/benchmarks [--models NAME ...] [--size full|small] [--runs 50]
                                [--pipelines P ...] [--budget 420] [--no-torch-compile] [--dry-run]

For a lent GPU machine (Python 3.12, CuPy, torch, onnxruntime; no network): lark and click are installed
from the repository's wheels/ folder when missing, and tilec runs from src/. Per model:
  * tilec: compile (no ptxas: CuPy loads kernels with NVRTC), run once on the GPU for the max abs error
    against onnxruntime, then the median of ``--runs`` whole-plan runs timed with CUDA events after warm-up,
    replayed as a CUDA graph when the plan has no host ops;
  * onnxruntime: CUDA execution provider when present (else CPU, and the column says so), inputs and
    outputs bound on the device with IO binding, median wall time of ``session.run_with_iobinding``;
  * PyTorch: the ONNX graph executed op by op with torch ops and the same weights
    (``tilec.bench.torch_onnx``; a model with an op it lacks says so), eager and ``torch.compile``,
    median of CUDA events after warm-up (torch.compile's compile time is reported, not timed).
Roofline: one MatMul and one 3x3 Conv compiled by tilec, against ``cupy.matmul`` (cuBLAS; for the conv,
on the implicit-GEMM shape of the same FLOPs) and torch's cuDNN conv when torch is present; each is put
against the H200 roofline (tilec's hardware spec: peak fp32 and DRAM bandwidth).

``--budget`` (seconds, default 7 min on a GPU) keeps the run under 8 minutes: parts not started in time are rows
that say so. ``--dry-run`` does everything but GPU timing: emu backend, small models, tiny GEMM/conv, one
timed run, onnxruntime on CPU, torch on CPU when installed (torch.compile only with --torch-compile,
which costs ~20 s per small model), so this script is
tested where there is no GPU (tests/bench/test_gpu_bench_dry_run.py).
"""
from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def ensure_deps() -> None:
    """lark and click from wheels/ when missing (the GPU machine has no network)."""
    try:
        import click  # noqa: F401
        import lark  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
                        str(ROOT / "wheels"), "lark", "click"], check=True)
    for p in (ROOT, ROOT / "src"):
        if str(p) not in sys.path:
            sys.path.insert(0, str(p))


def fail(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first[:160]}"


class Clock:
    """The run's deadline: ``left()`` seconds remain; parts check it before they start."""

    def __init__(self, budget: float):
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)


# ---- timing ---------------------------------------------------------------------------------------------

def cupy_median_ms(fn, runs: int, warmup: int = 3) -> float:
    """Median of CUDA-event times of ``fn`` (which launches on the current stream)."""
    import cupy
    for _ in range(warmup):
        fn()
    cupy.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(runs):
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(cupy.cuda.get_elapsed_time(a, b))
    return statistics.median(times)


def torch_median_ms(fn, runs: int, warmup: int, cuda: bool) -> float:
    """Median of CUDA-event times (wall time on CPU) of ``fn``."""
    import torch
    for _ in range(warmup):
        fn()
    if not cuda:
        return wall_median_ms(fn, runs, 0)
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def wall_median_ms(fn, runs: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


# ---- one model --------------------------------------------------------------------------------------------

def tilec_cell(model_path: str, build: Path, pipeline: str, feeds: dict, want: dict, args) -> dict:
    from tilec.bench.measure import max_abs_err
    from tilec.driver import compile_model, make_executor
    from tilec.runtime.executor import median
    t0 = time.perf_counter()
    compile_model(model_path, str(build), pipeline=pipeline)
    cell = {"compile_s": round(time.perf_counter() - t0, 2)}
    plan = json.loads((build / "plan.json").read_text())
    ex = make_executor(str(build), args.backend)
    cell["err"] = max_abs_err(ex.run(feeds), want)
    rep = ex.report()["totals"]
    cell.update(launches=rep["launches"], host_ops=len(plan["host_ops"]))
    graph = args.backend == "cupy" and not plan["host_ops"]
    try:
        times = ex.time(feeds, repeat=args.runs, warmup=args.warmup, cuda_graph=graph)
    except Exception as e:  # noqa: BLE001 - a graph capture failure still leaves plain launches to time
        if not graph:
            raise
        cell["graph_error"] = fail(e)
        graph = False
        times = ex.time(feeds, repeat=args.runs, warmup=args.warmup)
    cell.update(ms=median(times) * 1e3, cuda_graph=graph)
    return cell


def ort_cell(model_path: str, feeds: dict, args) -> tuple[dict, dict]:
    """(outputs on host, timing cell). IO binding keeps host copies out of the timed call."""
    import onnxruntime as ort
    want_cuda = not args.dry_run and "CUDAExecutionProvider" in ort.get_available_providers()
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if want_cuda else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(model_path, providers=providers)
    outs = [o.name for o in sess.get_outputs()]
    want = dict(zip(outs, sess.run(None, feeds)))
    provider = sess.get_providers()[0]
    dev = "cuda" if provider == "CUDAExecutionProvider" else "cpu"
    io = sess.io_binding()
    for k, v in feeds.items():
        io.bind_ortvalue_input(k, ort.OrtValue.ortvalue_from_numpy(v, dev, 0))
    for o in outs:
        io.bind_output(o, dev)
    ms = wall_median_ms(lambda: sess.run_with_iobinding(io), args.runs, args.warmup)
    return want, {"ms": ms, "provider": provider}


def torch_cells(model, feeds: dict, want: dict, args, clock: Clock) -> tuple[dict, dict]:
    from tilec.bench.measure import max_abs_err
    try:
        import torch
    except ImportError:
        return {"error": "torch not installed"}, {"error": "torch not installed"}
    from tilec.bench.torch_onnx import TorchGraph
    cuda = not args.dry_run and torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    g = TorchGraph(model, dev)
    xs = {k: torch.from_numpy(v).to(dev) for k, v in feeds.items()}
    with torch.inference_mode():
        got = {n: t.float().cpu().numpy() for n, t in zip(g.outputs, g(**xs))}
        eager = {"ms": torch_median_ms(lambda: g(**xs), args.runs, args.warmup, cuda),
                 "err": max_abs_err(got, want)}
    if args.no_torch_compile or (args.dry_run and not args.torch_compile):
        return eager, {"error": "skipped (" + ("--no-torch-compile" if args.no_torch_compile else "dry run") + ")"}
    errors = []
    # Inductor's attention pattern matcher has failed on these graphs (torch 2.13 on CPU: a 0-d scale
    # tensor, a mask broadcast in BERT); without it the model still compiles, with fewer fusions.
    for matcher in (True, False):
        if clock.left() < 150:
            errors.append(f"skipped: {clock.left():.0f}s of the budget left")
            break
        try:
            import torch._inductor.config as inductor_config
            torch._dynamo.reset()
            inductor_config.pattern_matcher = matcher
            fn = torch.compile(lambda **kw: g(**kw))
            t0 = time.perf_counter()
            with torch.inference_mode():
                fn(**xs)
                if cuda:
                    torch.cuda.synchronize()
                compile_s = time.perf_counter() - t0
                ms = torch_median_ms(lambda: fn(**xs), args.runs, args.warmup, cuda)
            return eager, {"ms": ms, "compile_s": round(compile_s, 1), "pattern_matcher": matcher,
                           **({"first_error": errors[0]} if errors else {})}
        except Exception as e:  # noqa: BLE001
            errors.append(fail(e))
    return eager, {"error": "; ".join(errors)}


def model_row(name: str, args, clock: Clock) -> list:
    """One row per pipeline: tilec's cells differ, the baselines are measured once and shared."""
    import onnx

    from samples.models.build_zoo import build_one
    from tilec.bench.measure import onnx_feeds
    path, _ = build_one(name, args.size, str(args.work / "zoo"))
    feeds = onnx_feeds(path)
    want, ort = ort_cell(path, feeds, args)
    try:
        eager, compiled = torch_cells(onnx.load(path), feeds, want, args, clock)
    except Exception as e:  # noqa: BLE001 - e.g. an op the torch runner lacks
        eager = compiled = {"error": fail(e)}
    rows = []
    for p in args.pipelines:
        try:
            cell = tilec_cell(path, args.work / "builds" / f"{name}-{args.size}-{p}", p, feeds, want, args)
        except Exception as e:  # noqa: BLE001
            cell = {"error": fail(e), "traceback": traceback.format_exc()[-1500:]}
        rows.append({"model": name, "size": args.size, "pipeline": p, "tilec": cell, "ort": ort,
                     "torch_eager": eager, "torch_compile": compiled})
    return rows


# ---- roofline ---------------------------------------------------------------------------------------------

def single_op_model(kind: str, dims: dict, path: Path) -> tuple[float, int]:
    """A one-node ONNX model (MatMul of two inputs, or a 3x3 Conv with a weight); returns (FLOPs, lower-bound
    bytes: inputs, weights and output once)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    f = TensorProto.FLOAT
    if kind == "gemm":
        M, N, K = dims["M"], dims["N"], dims["K"]
        g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", f, [M, K]),
                               helper.make_tensor_value_info("b", f, [K, N])],
                              [helper.make_tensor_value_info("y", f, [M, N])])
        flops, nbytes = 2.0 * M * N * K, 4 * (M * K + K * N + M * N)
    else:
        n, c, h, k = dims["N"], dims["C"], dims["H"], dims["K"]
        w = np.random.default_rng(0).standard_normal((k, c, 3, 3)).astype(np.float32) * 0.05
        g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "conv",
                              [helper.make_tensor_value_info("x", f, [n, c, h, h])],
                              [helper.make_tensor_value_info("y", f, [n, k, h, h])],
                              [numpy_helper.from_array(w, "w")])
        flops, nbytes = 2.0 * n * k * h * h * c * 9, 4 * (n * c * h * h + w.size + n * k * h * h)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(m, str(path))
    return flops, nbytes


def roofline_rows(args, clock: Clock) -> list:
    from tilec.analysis.hardware import get_arch
    from tilec.bench.measure import max_abs_err, onnx_feeds
    hw = get_arch("h200")
    shapes = ([("gemm", {"M": 64, "N": 64, "K": 64}), ("conv", {"N": 1, "C": 8, "H": 8, "K": 8})]
              if args.dry_run else
              [("gemm", {"M": 4096, "N": 4096, "K": 4096}), ("conv", {"N": 8, "C": 256, "H": 56, "K": 256})])
    rows = []
    for kind, dims in shapes:
        row = {"kind": kind, "dims": dims}
        rows.append(row)
        if clock.left() < 30:
            row["error"] = f"skipped: {clock.left():.0f}s of the budget left"
            continue
        try:
            path = args.work / f"roofline-{kind}.onnx"
            flops, nbytes = single_op_model(kind, dims, path)
            bound_ms = max(flops / hw.fp32_flops, nbytes / hw.dram_bytes_per_s) * 1e3
            row.update(gflop=flops / 1e9, bound_ms=bound_ms,
                       bound="compute" if flops / hw.fp32_flops > nbytes / hw.dram_bytes_per_s else "memory")
            feeds = onnx_feeds(str(path))
            import onnxruntime as ort
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
            ns = argparse.Namespace(**{**vars(args), "pipelines": [args.pipelines[-1]]})
            cell = tilec_cell(str(path), args.work / "builds" / f"roofline-{kind}", ns.pipelines[0], feeds,
                              want, ns)
            row["tilec"] = cell
            row["rel_err"] = cell["err"] / max(1.0, max(float(np.abs(v).max()) for v in want.values()))
            row["baselines"] = baselines(kind, dims, feeds, path, args)
        except Exception as e:  # noqa: BLE001
            row["error"] = fail(e)
            row["traceback"] = traceback.format_exc()[-1500:]
    return rows


def baselines(kind: str, dims: dict, feeds: dict, path: Path, args) -> dict:
    """cuBLAS via cupy.matmul (for the conv: the implicit-GEMM shape, same FLOPs), cuDNN via torch."""
    out = {}
    if args.dry_run:
        return {"cupy.matmul": {"error": "dry run (no GPU timing)"}, "torch": {"error": "dry run"}}
    try:
        import cupy
        if kind == "gemm":
            a, b = cupy.asarray(feeds["a"]), cupy.asarray(feeds["b"])
        else:
            n, c, h, k = dims["N"], dims["C"], dims["H"], dims["K"]
            a = cupy.random.standard_normal((n * h * h, c * 9), dtype=cupy.float32)
            b = cupy.random.standard_normal((c * 9, k), dtype=cupy.float32)
        out["cupy.matmul"] = {"ms": cupy_median_ms(lambda: cupy.matmul(a, b), args.runs),
                              "what": "cuBLAS SGEMM" + (" on the implicit-GEMM shape" if kind == "conv" else "")}
    except Exception as e:  # noqa: BLE001
        out["cupy.matmul"] = {"error": fail(e)}
    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False  # same fp32 arithmetic as tilec's kernels
        torch.backends.cudnn.allow_tf32 = False
        xs = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
        if kind == "gemm":
            fn = lambda: torch.matmul(xs["a"], xs["b"])  # noqa: E731
        else:
            import onnx
            from onnx import numpy_helper
            w = torch.from_numpy(numpy_helper.to_array(onnx.load(str(path)).graph.initializer[0])).cuda()
            fn = lambda: torch.nn.functional.conv2d(xs["x"], w, padding=1)  # noqa: E731
        with torch.inference_mode():
            out["torch"] = {"ms": torch_median_ms(fn, args.runs, 3, True),
                            "what": "cuBLAS" if kind == "gemm" else "cuDNN"}
    except Exception as e:  # noqa: BLE001
        out["torch"] = {"error": fail(e)}
    return out


# ---- report -------------------------------------------------------------------------------------------------

def _ms(c: dict) -> str:
    if c.get("error"):
        return f"n/a ({c['error']})".replace("|", "/")
    return f"{c['ms']:.3f}"


def _status(error: str) -> str:
    return "skipped" if error.startswith("skipped") else "failed"


def _tc(c: dict) -> str:
    """torch.compile's cell: latency, then its compile time and whether inductor's pattern matcher was on."""
    if c.get("error"):
        return _ms(c)
    return f"{c['ms']:.3f} (compiled in {c['compile_s']}s{'' if c['pattern_matcher'] else ', pattern matcher off'})"


def markdown(meta: dict, rows: list, roof: list) -> str:
    unit = "wall ms (emu, dry run)" if meta["dry_run"] else "median ms"
    lines = [f"# GPU benchmark, {meta['date']}", "", "```sh", meta["command"], "```", "",
             f"{meta['device']}; {meta['runs']} timed runs after {meta['warmup']} warm-up; "
             f"{meta['wall_seconds']:.0f} s in all. tilec: CUDA events over the whole plan (CUDA graph "
             "where the plan has no host ops); onnxruntime: wall time of run_with_iobinding (device I/O); "
             "torch: the ONNX graph op by op with torch ops, CUDA events. err: max abs error against "
             "onnxruntime.", "",
             f"| model | pipeline | tilec {unit} | graph | launches | err | onnxruntime | torch eager | "
             "torch err | torch.compile | tilec compile s |",
             "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        t = r["tilec"]
        if t.get("error"):
            lines.append(f"| {r['model']} | {r['pipeline']} | **{_status(t['error'])}**: {t['error']} | | | | "
                         f"{_ms(r['ort'])} | {_ms(r['torch_eager'])} | | {_tc(r['torch_compile'])} | |"
                         .replace("\n", " "))
            continue
        te = r["torch_eager"]
        lines.append(f"| {r['model']} | {r['pipeline']} | {t['ms']:.3f} | {'yes' if t['cuda_graph'] else 'no'} | "
                     f"{t['launches']} | {t['err']:.1e} | {_ms(r['ort'])} ({r['ort'].get('provider', '?')}) | "
                     f"{_ms(te)} | {'-' if 'err' not in te else format(te['err'], '.1e')} | "
                     f"{_tc(r['torch_compile'])} | {t['compile_s']:.1f} |")
    lines += ["", "## Roofline (fp32)", "",
              "| op | shape | GFLOP | roofline ms (bound) | tilec ms | tilec TFLOP/s | % of roofline | "
              "cupy.matmul ms | torch ms | rel err |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in roof:
        shape = "x".join(f"{k}{v}" for k, v in r["dims"].items())
        if r.get("error"):
            lines.append(f"| {r['kind']} | {shape} | **{_status(r['error'])}**: {r['error']} | | | | | | | |")
            continue
        t, b = r["tilec"], r["baselines"]
        lines.append(f"| {r['kind']} | {shape} | {r['gflop']:.2f} | {r['bound_ms']:.4f} ({r['bound']}) | "
                     f"{t['ms']:.4f} | {r['gflop'] / t['ms']:.2f} | {100 * r['bound_ms'] / t['ms']:.1f} | "
                     f"{_ms(b['cupy.matmul'])} | {_ms(b['torch'])} | {r['rel_err']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ensure_deps()
    from samples.models import ZOO
    from tilec.driver import DEFAULT_PIPELINE, PIPELINES
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--work", type=Path, default=ROOT / "build" / "gpu_bench")
    ap.add_argument("--models", nargs="+", choices=list(ZOO), metavar="NAME",
                    default=["nerf_mlp", "resnet18", "mobilenet_v2", "lstm", "bert_base"])
    ap.add_argument("--size", choices=["small", "full"], default=None, help="default: full (small with --dry-run)")
    ap.add_argument("--pipelines", nargs="+", default=[DEFAULT_PIPELINE], metavar="P",
                    help=f"tilec pipelines (from {', '.join(PIPELINES)}; default {DEFAULT_PIPELINE})")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds; parts that would start later are skipped (default 420; none with --dry-run, "
                         "whose emulator runs take as long as the machine's load makes them)")
    ap.add_argument("--no-torch-compile", action="store_true")
    ap.add_argument("--torch-compile", action="store_true", help="with --dry-run: torch.compile on the CPU too")
    ap.add_argument("--dry-run", action="store_true", help="emu backend, small sizes, no GPU timing")
    args = ap.parse_args(argv)
    for p in args.pipelines:
        if p not in PIPELINES:
            ap.error(f"unknown pipeline {p!r}; PIPELINES has {list(PIPELINES)}")
    args.size = args.size or ("small" if args.dry_run else "full")
    args.backend = "emu" if args.dry_run else "cupy"
    if args.dry_run:
        args.runs, args.warmup = 1, 0
    args.work = args.work.resolve()
    (args.work / "zoo").mkdir(parents=True, exist_ok=True)
    clock = Clock(args.budget if args.budget is not None else (1e9 if args.dry_run else 420.0))
    device = "dry run: emu backend, no GPU"
    if not args.dry_run:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        device = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    rows = []
    for name in args.models:
        if clock.left() < 45:
            rows += [{"model": name, "size": args.size, "pipeline": p,
                      "tilec": {"error": f"skipped: {clock.left():.0f}s of the budget left"},
                      "ort": {"error": "skipped"}, "torch_eager": {"error": "skipped"},
                      "torch_compile": {"error": "skipped"}} for p in args.pipelines]
            continue
        print(f"gpu_bench: {name} ({args.size}) ... [{clock.left():.0f}s left]", flush=True)
        try:
            rows += model_row(name, args, clock)
        except Exception as e:  # noqa: BLE001 - zoo build or onnxruntime failed: no row can be timed
            rows += [{"model": name, "size": args.size, "pipeline": p, "tilec": {"error": fail(e)},
                      "ort": {"error": fail(e)}, "torch_eager": {"error": "-"}, "torch_compile": {"error": "-"}}
                     for p in args.pipelines]
        for r in rows[-len(args.pipelines):]:
            print(f"  {r['pipeline']}: tilec {_ms(r['tilec'])} ms, ort {_ms(r['ort'])}, "
                  f"torch {_ms(r['torch_eager'])} / {_ms(r['torch_compile'])}", flush=True)
    print("gpu_bench: roofline ...", flush=True)
    roof = roofline_rows(args, clock)
    meta = {"date": args.date, "command": " ".join(["python", "scripts/gpu_bench.py", *argv]),
            "device": device, "dry_run": args.dry_run, "runs": args.runs, "warmup": args.warmup,
            "python": platform.python_version(), "wall_seconds": round(time.perf_counter() - clock.start, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{args.date}" + ("-dry-run" if args.dry_run else "")
    text = markdown(meta, rows, roof)
    (out / f"{stem}.md").write_text(text)
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "models": rows, "roofline": roof}, indent=1,
                                                 sort_keys=True, default=float) + "\n")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
