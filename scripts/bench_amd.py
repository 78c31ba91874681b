"""``make bench``'s mi250x section (issue #23): the samples and a few small zoo models compiled for an AMD GPU and
checked by hipcc.

    python scripts/bench_amd.py --out docs/benchmarks [--arch mi250x] [--date YYYY-MM-DD] [--models NAME ...]
                                [--samples PATH ...] [--gemms NAME ...] [--budget S] [--row-timeout S]

Per model, ``tilec compile --arch ARCH --check-hip`` (default pipeline) in its own process with a timeout, then
from report.json: compile seconds, kernels, launches, modelled global bytes, modelled time, and hipcc's resource
usage (the largest VGPRs + AGPRs per lane, the largest LDS per workgroup, the lowest occupancy in waves per
SIMD, VGPR + SGPR spills, and the kernels that spill); then f16/bf16 GEMMs (``--gemms``) on the MFMA engine, one
row each for its MFMA kernel (block tile, waves, instruction, MFMAs per wave, VGPRs, AGPRs, LDS, occupancy,
spills, modelled TFLOP/s). No emulator run here: the 64-lane emulator checks are in
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


# f16/bf16 GEMMs on the MFMA engine (backend/lower/mfma_engine.py): name -> (dtype, batch, M, N, K, epilogue).
GEMMS = {"gemm-f16-1024": ("f16", 0, 1024, 1024, 1024, None),
         "gemm-bf16-1024": ("bf16", 0, 1024, 1024, 1024, None),
         "bgemm-f16-8x512x512x64": ("f16", 8, 512, 512, 64, None),
         "gemm-f16-2048x1024x4096-bias-relu": ("f16", 0, 2048, 1024, 4096, "bias-relu")}


def gemm_model(name: str, work: Path) -> str:
    """The ONNX file of GEMM ``name`` (:data:`GEMMS`): ``y = x @ w`` (batched: both operands carry the batch), the
    epilogue ``relu(x @ w + b)``, inputs of the GEMM's dtype, weights as initializers."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save
    dtype, batch, m, n, k, epi = GEMMS[name]
    et = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[dtype]
    lead = [batch] if batch else []
    rng = np.random.default_rng(0)

    def init(nm, shape):
        x = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        if dtype == "f16":
            return numpy_helper.from_array(x.astype(np.float16), nm)
        bits = (x.view(np.uint32) >> 16).astype(np.uint16)   # truncated to bf16: data for a compile-only bench
        return helper.make_tensor(nm, TensorProto.BFLOAT16, shape, bits.tobytes(), raw=True)

    ins = [helper.make_tensor_value_info("x", et, [*lead, m, k])]
    inits = []
    if batch:
        ins.append(helper.make_tensor_value_info("w", et, [*lead, k, n]))
    else:
        inits.append(init("w", [k, n]))
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y" if not epi else "t"])]
    if epi:
        inits.append(init("b", [n]))
        nodes += [helper.make_node("Add", ["t", "b"], ["u"]), helper.make_node("Relu", ["u"], ["y"])]
    g = helper.make_graph(nodes, name, ins, [helper.make_tensor_value_info("y", et, [*lead, m, n])], inits)
    path = work / "gemm" / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


def gemm_row(name: str, path: str, arch: str, work: Path, timeout: float) -> dict:
    """One GEMM's row: its MFMA kernel's shape (block tile, wavefronts, instruction), hipcc's VGPRs, AGPRs, LDS,
    occupancy and spills, the MFMAs one wavefront issues, and the modelled time and TFLOP/s."""
    row = run_row(name, path, arch, work, timeout)
    if "error" in row:
        return row
    from tilec.ir.parser import parse_module
    report = json.loads((work / name / "report.json").read_text())
    module = parse_module((work / name / "model.tir").read_text())
    funcs = {op.sym_name: op for op in module.body.ops if op.name == "kernel.func"}
    mfma = [k for k in report["kernels"]
            if (funcs[k["name"]].attributes.get("config") or {}).get("engine") == "mfma"]
    if not mfma:
        kinds = ", ".join(k["kind"] for k in report["kernels"])
        return {"name": name, "error": f"no MFMA kernel (kinds: {kinds})"}
    k = max(mfma, key=lambda r: r["flops"])
    cfg, hip = funcs[k["name"]].attributes["config"], k["hip"]
    tile = "x".join(str(v) for a, v in cfg["block"].items() if v > 1)
    return {**row, "kernel": k["name"], "tile": tile, "waves": cfg["warps"][0] * cfg["warps"][1],
            "inst": "x".join(map(str, cfg["mma"])), "vgprs": hip["vgprs"], "agprs": hip["agprs"],
            "lds": hip["lds_bytes"], "occupancy": hip["occupancy"], "kernel_spills": hip["spills"],
            "mfma_per_wave": cfg["mfma_per_wave"], "kernel_us": k["modelled_us"],
            "tflops": round(k["flops"] / (k["modelled_us"] * 1e-6) / 1e12, 1) if k["modelled_us"] else None}


def _markdown(head: str, rows: list, cells) -> str:
    """A markdown table: ``head`` (header and rule lines), then one line per row, ``cells(row)`` for a row that
    built and a "failed" line padded to the header's width for one that did not."""
    width = head.split("\n")[0].count("|") - 1
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} |" + " |" * (width - 2))
        else:
            lines.append("| " + " | ".join(str(c) for c in cells(r)) + " |")
    return "\n".join(lines) + "\n"


def gemm_table(rows: list) -> str:
    head = ("| GEMM | block tile | waves | MFMA | MFMA per wave | VGPRs | AGPRs | LDS B | waves/SIMD | spills "
            "| modelled us | modelled TFLOP/s |\n| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: |")
    return _markdown(head, rows, lambda r: [
        r["name"], r["tile"], r["waves"], r["inst"], r["mfma_per_wave"], r["vgprs"], r["agprs"], r["lds"],
        r["occupancy"], r["kernel_spills"], r["kernel_us"], r["tflops"]])


def table(rows: list) -> str:
    head = ("| model | compile s | kernels | launches | modelled MB | modelled us | max VGPR+AGPR | max LDS B "
            "| min waves/SIMD | spills | spilling kernels |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| ---: | ---: | --- |")
    return _markdown(head, rows, lambda r: [
        r["name"], r["compile_s"], r["kernels"], r["launches"], f"{r['bytes'] / 1e6:.3f}",
        f"{r['modelled_us']:.1f}" if r["modelled_us"] is not None else "-", r["max_vgprs"], r["max_lds"],
        r["min_occupancy"], r["spills"], ", ".join(r["spilling"]) or "-"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for mi250x-DATE.md and .json")
    ap.add_argument("--arch", default="mi250x", help="an AMD arch hipcc knows (mi250x: gfx90a)")
    ap.add_argument("--date", default=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    ap.add_argument("--work", default=str(ROOT / "build" / "bench_amd"), help="builds and zoo models go here")
    ap.add_argument("--samples", nargs="*", default=SAMPLES, metavar="PATH")
    ap.add_argument("--models", nargs="*", default=MODELS_DEFAULT, choices=list(ZOO), metavar="NAME",
                    help="small zoo models (default: " + ", ".join(MODELS_DEFAULT) + ")")
    ap.add_argument("--gemms", nargs="*", default=list(GEMMS), choices=list(GEMMS), metavar="NAME",
                    help="f16/bf16 GEMMs on the MFMA engine (default: " + ", ".join(GEMMS) + ")")
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
    gemm_rows = []
    for name in args.gemms:
        if time.time() - t0 > args.budget:
            skipped.append(name)
            continue
        gemm_rows.append(gemm_row(name, gemm_model(name, work), args.arch, work, args.row_timeout))
        print(f"[gemm] {name}: {gemm_rows[-1].get('error') or gemm_rows[-1]['kernel_spills']} spills", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cmd = "python scripts/bench_amd.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    md = [f"# {args.arch}: samples and small zoo models compiled with --check-hip, {args.date}", "",
          f"Command: `{cmd}` ({time.time() - t0:.0f} s; default pipeline; hipcc "
          "`--offload-arch=<isa> -O3 -Rpass-analysis=kernel-resource-usage`, results cached). Modelled bytes and "
          "time are the compiler's model for this arch (no AMD GPU here); VGPR+AGPR, LDS, occupancy and spills "
          "are hipcc's per kernel (largest / lowest over the build's kernels).", "", table(rows)]
    if gemm_rows:
        md += ["## f16/bf16 GEMMs on the matrix cores (MFMA engine)", "",
               "Per GEMM, its largest MFMA kernel (backend/lower/mfma_engine.py): Roller's block tile, wavefronts per "
               "workgroup, the MFMA instruction (M x N x K), the MFMAs one wavefront issues over K, hipcc's VGPRs, "
               "AGPRs, LDS, occupancy and spills, and the modelled time at the spec's matrix-core peak.", "",
               gemm_table(gemm_rows)]
    if skipped:
        md.append(f"Not run (over the {args.budget:.0f} s budget): {', '.join(skipped)}.\n")
    (out / f"{args.arch}-{args.date}.md").write_text("\n".join(md))
    (out / f"{args.arch}-{args.date}.json").write_text(json.dumps({"command": cmd, "rows": rows, "gemms": gemm_rows,
                                                                  "skipped": skipped}, indent=1) + "\n")
    failed = [r["name"] for r in rows + gemm_rows if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
