#!/usr/bin/env python3
"""``make realworld``: real exported models (``scripts/export_real.py``) compiled with tilec's default pipeline,
run with the numpy backend on the build folder, and compared with onnxruntime on the same inputs.

    python scripts/realworld.py --dir /tmp/realworld [--models NAME ...] [--timeout S] [--md FILE]

For every ``DIR/<name>.onnx`` (with ``DIR/<name>.inputs.npz`` beside it) one child process compiles the model
(``tilec compile``'s ``compile_model``, the default pipeline, every input pinned to its array's shape as
``--input-shape`` does), runs the build with ``tilec run --backend numpy``'s
``run_target`` and onnxruntime, and reports compile seconds, kernels, launches and the largest absolute and
relative error (relative to max |onnxruntime output|). A slow or failing model gets a row saying why and the rest
go on. A row is *wrong* when its relative error exceeds the tolerance of its output type (f32 1e-3, f16 2e-2:
f16 stores each intermediate with 11 significant bits, onnxruntime and tilec round at different places).
``--emu`` also runs every build's CUDA kernels under the emulator in its resident-limit mode (a persistent grid
that could not be co-resident on the target is an error), so the generated code is checked too, not only the
reference IR the numpy backend runs. Exit status 1 if any row is not ok. Prints a Markdown table (and writes it
to ``--md``). ``--ray [ADDRESS]`` runs the rows as Ray tasks (``tilec.testing.campaign``: each carries its
model's and inputs' bytes, so a model with external data, over 2 GB, runs only where its folder is); the
table is the same, in the same order.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

RTOL = {"float32": 1e-3, "float16": 2e-2}


def errors(got: dict, want: dict) -> tuple:
    """``(max abs error, max relative error, tolerance)`` of ``got`` against onnxruntime's ``want``; the relative
    error of an output is its abs error over max |want|. Raises if an output is missing or misshapen, or if a
    reference output is constant (a zero-initialised head: any output would match, the row proves nothing)."""
    import numpy as np
    abs_err, rel_err, rtol = 0.0, 0.0, 0.0
    for name, ref in want.items():
        if name not in got or got[name].shape != ref.shape:
            raise RuntimeError(f"output '{name}': tilec gave {None if name not in got else got[name].shape}, "
                               f"onnxruntime {ref.shape}")
        ref64 = ref.astype(np.float64)
        if np.ptp(ref64) == 0:
            raise RuntimeError(f"onnxruntime's output '{name}' is constant ({ref64.flat[0]:g}): nothing to compare")
        err = float(np.max(np.abs(got[name].astype(np.float64) - ref64), initial=0.0))
        scale = max(float(np.max(np.abs(ref64), initial=0.0)), 1e-30)
        abs_err, rel_err = max(abs_err, err), max(rel_err, err / scale)
        rtol = max(rtol, RTOL.get(str(ref.dtype), 1e-3))
    return abs_err, rel_err, rtol


def _cpu_seconds() -> float:
    """User + system CPU seconds this process has used so far."""
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def op_coverage(model: Path) -> dict:
    """The op types ``model`` uses (Loop/If/Scan bodies included; another domain's as ``domain.Op``), sorted,
    and those tilec has no converter for (``frontend/coverage.py``, what the importer's diagnostic lists)."""
    import onnx

    from tilec.frontend.coverage import qualified, unsupported_ops, walk_nodes
    graph = onnx.load(str(model), load_external_data=False).graph
    used = {qualified(n.domain, n.op_type) for _, n in walk_nodes(graph)}
    missing = sorted(qualified(u.domain, u.op_type) for u in unsupported_ops(graph))
    return {"op_types": sorted(used), "unsupported": missing}


def check_one(model: Path, build: Path, emu: bool = False) -> dict:
    """Compile ``model`` into ``build`` with the default pipeline, run both sides, and measure the error.
    ``emu`` also runs the build's CUDA kernels under the emulator, persistent ones with only as many blocks at
    once as the target holds (``--emu-resident-limit``): the generated code, not only the reference IR."""
    import numpy as np
    import onnxruntime as ort

    from tilec.driver import compile_model, run_target

    row: dict = {"model": model.stem, **op_coverage(model)}
    inputs = model.with_suffix(".inputs.npz")
    with np.load(inputs) as f:
        feeds = {k: f[k] for k in f.files}
    # The exports' dynamic_axes leave batch/sequence symbolic: pin every input to its array's shape, as
    # `tilec compile M.onnx --input-shape NAME=DIMS ...` does.
    shapes = {k: tuple(a.shape) for k, a in feeds.items()}
    t, cpu = time.perf_counter(), _cpu_seconds()
    compile_model(str(model), str(build), input_shapes=shapes)
    row["compile_s"] = time.perf_counter() - t
    # user+sys CPU seconds of the compile (this process only): less sensitive than wall time to other jobs
    # sharing the machine's cores, though not to their cache and memory-bandwidth pressure.
    row["compile_cpu_s"] = _cpu_seconds() - cpu
    report = json.loads((build / "report.json").read_text())
    row["kernels"], row["launches"] = report["totals"]["kernels"], report["totals"]["launches"]
    # Rammer's rPrograms and Grinder's device loops/ifs: the kernels whose blocks must all be resident.
    row["persistent"] = sum(k["kind"] in ("persistent", "device_loop", "device_if") for k in report["kernels"])
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    for backend in ("numpy", "emu") if emu else ("numpy",):
        outputs = build.parent / f"outputs-{backend}.npz"
        t = time.perf_counter()
        run_target(str(build), str(inputs), str(outputs), backend=backend, emu_resident_limit=backend == "emu")
        row[f"{backend}_s"] = time.perf_counter() - t
        with np.load(outputs) as f:
            got = {k: f[k] for k in f.files}
        abs_err, rel_err, rtol = errors(got, want)
        key = "" if backend == "numpy" else "emu_"
        row.update({f"{key}abs_err": abs_err, f"{key}rel_err": rel_err, "rtol": rtol})
        if not (rel_err <= rtol and np.isfinite(abs_err)):
            row["status"] = "wrong"
    row.setdefault("status", "ok")
    return row


def run_row(model: Path, timeout: float, emu: bool = False, script: str = __file__) -> dict:
    """``check_one`` in a child process (this ``script``) with a timeout; the build is written under a
    temporary folder."""
    with tempfile.TemporaryDirectory(prefix="tilec-realworld-") as tmp:
        out = Path(tmp) / "row.json"
        cmd = [sys.executable, script, "--one", str(model), "--build", str(Path(tmp) / "build"),
               "--row-json", str(out)] + (["--emu"] if emu else [])
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"model": model.stem, "status": "failed", "error": f"over the {timeout:.0f} s per-model limit"}
        if out.exists():
            return json.loads(out.read_text())
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": model.stem, "status": "failed", "error": last[:300]}


def realworld_unit(model, inputs, timeout: float, emu: bool, script) -> dict:
    """One row as a campaign unit: ``model``, ``inputs`` and this ``script`` (which the row's child process
    runs) are ``FileInput``s; model and inputs go side by side in a temporary folder under their own names
    (``check_one`` finds the inputs beside the model). Run here (not shipped), the model is read where it is,
    external data and all."""
    if model.data is None:
        return run_row(Path(model.path), timeout, emu, script.local())
    with tempfile.TemporaryDirectory(prefix="tilec-realworld-in-") as tmp:
        here = Path(tmp) / Path(model.path).name
        here.symlink_to(Path(model.local()).resolve())
        (Path(tmp) / Path(inputs.path).name).symlink_to(Path(inputs.local()).resolve())
        return run_row(here, timeout, emu, script.local())


def _ops_cell(r: dict) -> str:
    """How many op types a row's model uses and whether tilec converts them all."""
    if "op_types" not in r:
        return "-"
    missing = r.get("unsupported") or []
    return f"{len(r['op_types'])}, " + (f"**missing**: {', '.join(missing)}" if missing else "all supported")


def op_table(rows: list) -> str:
    """Markdown: the op types each row's model uses (unsupported ones in bold)."""
    lines = ["| model | op types used |", "| --- | --- |"]
    for r in rows:
        if "op_types" in r:
            missing = set(r.get("unsupported") or [])
            lines.append(f"| {r['model']} | " + ", ".join(f"**{o}**" if o in missing else o for o in r["op_types"])
                         + " |")
    return "\n".join(lines)


def table(rows: list) -> str:
    """The Markdown table of ``rows`` (then, when the rows know them, the op types of each model)."""
    lines = ["| model | status | op types | compile s | compile cpu s | kernels | launches | persistent | numpy s "
             "| max abs err | max rel err (tol) | emu s | emu max abs err | emu max rel err |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        if r["status"] == "failed":
            lines.append(f"| {r['model']} | **failed**: {r['error']} | {_ops_cell(r)} |" + " - |" * 11)
            continue
        status = "ok" if r["status"] == "ok" else "**wrong**"
        cpu = f"{r['compile_cpu_s']:.1f}" if "compile_cpu_s" in r else "-"
        lines.append(f"| {r['model']} | {status} | {_ops_cell(r)} | {r['compile_s']:.1f} | {cpu} | {r['kernels']} "
                     f"| {r['launches']} "
                     f"| {r.get('persistent', '-')} | {r['numpy_s']:.1f} | {r['abs_err']:.2e} "
                     f"| {r['rel_err']:.2e} ({r['rtol']:g}) | "
                     + (f"{r['emu_s']:.1f} | {r['emu_abs_err']:.2e} | {r['emu_rel_err']:.2e} |" if "emu_s" in r
                        else "- | - | - |"))
    ops = op_table(rows)
    return "\n".join(lines) + ("\n\nOp types per model (bold: no converter):\n\n" + ops if ops.count("\n") > 1 else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/realworld", help="where export_real.py wrote the models")
    ap.add_argument("--models", nargs="+", metavar="NAME", help="default: every DIR/*.onnx")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per model")
    ap.add_argument("--md", help="also write the table to this file")
    ap.add_argument("--emu", action="store_true",
                    help="also run each build's kernels under the CUDA emulator (resident-limit mode; minutes)")
    from tilec.testing.campaign import add_ray_argument
    add_ray_argument(ap)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    ap.add_argument("--row-json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:   # child process: one model
        try:
            row = check_one(Path(args.one), Path(args.build), args.emu)
        except Exception as e:  # noqa: BLE001 - the row records why, the run goes on
            from tilec.bench.rowrun import error_line
            row = {"model": Path(args.one).stem, "status": "failed", "error": error_line(e)}
            try:   # which ops it uses, even when it did not compile (an unsupported op is the usual why)
                row.update(op_coverage(Path(args.one)))
            except Exception:  # noqa: BLE001 - an unreadable model: the error above says so
                pass
        Path(args.row_json).write_text(json.dumps(row))
        return 0
    folder = Path(args.dir)
    models = [folder / f"{m}.onnx" for m in args.models] if args.models else sorted(folder.glob("*.onnx"))
    missing = [str(m) for m in models if not m.is_file() or not m.with_suffix(".inputs.npz").is_file()]
    if missing or not models:
        print(f"realworld.py: no model/inputs at {', '.join(missing) or folder} (run scripts/export_real.py "
              f"--out {folder} first)", file=sys.stderr)
        return 2
    from tilec.testing.campaign import FileInput, Unit, executor_for
    script = FileInput.of(__file__)
    units = [Unit.of(realworld_unit, FileInput.of(m), FileInput.of(m.with_suffix(".inputs.npz")), args.timeout,
                     args.emu, script) for m in models]
    done = [0]

    def report(i, r):
        done[0] += 1
        model = models[i]
        print(f"[{done[0]}/{len(models)}] {model.stem}: {r['status']}"
              + (f" (compile {r['compile_s']:.1f} s, {r.get('compile_cpu_s', 0):.1f} cpu s, rel err {r['rel_err']:.1e}"
                 + (f", emu {r['emu_s']:.0f} s, emu rel err {r['emu_rel_err']:.1e})" if "emu_s" in r else ")")
                 if "rel_err" in r
                 else f": {r.get('error')}"), flush=True)
    with executor_for(args.ray) as executor:
        rows = executor.run(units, report)
    text = table(rows)
    print(text)
    if args.md:
        Path(args.md).write_text(text + "\n")
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
