"""Welder benchmark: emu-measured global bytes and kernel launches, roller-only vs welder vs the lower bound.

    PYTHONPATH=src python scripts/bench_welder.py [--models mlp,conv_block,...,bert_slice1] [--out table.md]

Each model is compiled with ``--pipeline roller`` and ``--pipeline welder``, run under the emulator on
seeded random inputs (both thread orders for welder), checked against onnxruntime, and measured.
``bert_sliceN`` is the zoo's BERT-base builder at full size (hidden 768, 12 heads, ffn 3072, seq 128) cut
to N layers, with a 512-word vocabulary so the embedding table does not dominate the lower bound;
``bert_base`` is the whole 12-layer model (about 2 minutes under the emulator on two cores). The last
column says whether the emulator's count equals the bytes modelled at compile time for both pipelines."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = ["mlp", "conv_block", "dw_separable", "transformer_layer"]


def tilec(*args) -> None:
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    proc = subprocess.run([sys.executable, "-m", "tilec.cli.main", *args], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"tilec {' '.join(args)} failed:\n{proc.stderr[-3000:]}")


def inputs_for(path: str) -> dict:
    """Seeded normal floats; integer inputs (token ids, masks) are ones, valid for every vocabulary."""
    rng = np.random.default_rng(0)
    model = onnx.load(path, load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        dims = [d.dim_value or 1 for d in vi.type.tensor_type.shape.dim]
        if vi.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            out[vi.name] = np.ones(dims, dtype=np.int64)
        else:
            out[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return out


def bert_slice(layers: int, work: str) -> str:
    """The full-size BERT-base builder cut to ``layers`` layers (and a 512-word vocabulary)."""
    sys.path.insert(0, ROOT)
    from samples.models import bert
    bert.CONFIGS[f"slice{layers}"] = dict(bert.CONFIGS["full"], layers=layers, vocab=512, max_pos=128)
    path = os.path.join(work, f"bert_slice{layers}.onnx")
    onnx.save(bert.build(f"slice{layers}"), path)
    return path


def bert_base(work: str) -> str:
    """The zoo's full BERT-base (12 layers, hidden 768, 12 heads, ffn 3072, seq 128, 30,522-word vocabulary)."""
    sys.path.insert(0, ROOT)
    from samples.models import bert
    path = os.path.join(work, "bert_base.onnx")
    onnx.save(bert.build("full"), path)
    return path


def measure(path: str, work: str, orders=("normal",)) -> dict:
    """``{pipeline: {bytes, launches, ops, lower_bound, max_err}}`` for roller and welder."""
    inputs = inputs_for(path)
    np.savez(os.path.join(work, "in.npz"), **inputs)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, inputs)
    rows = {}
    for pipe in ("roller", "welder"):   # roller-only = one kernel per op, Roller's tiles
        build = os.path.join(work, pipe)
        tilec("compile", path, "-o", build, "--pipeline", pipe)
        report = json.load(open(os.path.join(build, "report.json")))
        for order in orders if pipe == "welder" else ("normal",):
            run = os.path.join(work, f"{pipe}-{order}.json")
            outs = os.path.join(work, f"{pipe}-{order}.npz")
            tilec("run", build, "--inputs", os.path.join(work, "in.npz"), "--outputs", outs, "--backend", "emu",
                  "--report", run, "--emu-order", order)
            got = np.load(outs)
            err = max(float(np.max(np.abs(got[k] - r))) for k, r in zip(got.files, ref))
            totals = json.load(open(run))["totals"]
            rows[pipe] = {"bytes": totals["global_bytes"], "launches": totals.get("launches"),
                          "lower_bound": report["totals"]["lower_bound_bytes"],
                          "modelled": report["totals"]["global_bytes_modelled"],
                          "max_err": max(err, rows.get(pipe, {}).get("max_err", 0.0))}
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(SAMPLES))
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    lines = ["| model | roller bytes | welder bytes | lower bound | roller/welder | welder/LB | launches roller → welder "
             "| max abs err | emu = model |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory() as work:
            if name.startswith("bert_slice"):
                path = bert_slice(int(name[len("bert_slice"):]), work)
            elif name == "bert_base":
                path = bert_base(work)
            else:
                path = name if name.endswith(".onnx") else os.path.join(ROOT, "samples", f"{name}.onnx")
            r = measure(path, work, ("normal", "reverse"))
        ro, we = r["roller"], r["welder"]
        lines.append(f"| {name if name.startswith('bert') else os.path.basename(path)[:-5]} | {ro['bytes']:,} | "
                     f"{we['bytes']:,} | {we['lower_bound']:,} | "
                     f"{ro['bytes'] / we['bytes']:.2f}× | {we['bytes'] / we['lower_bound']:.2f}× | "
                     f"{ro['launches']} → {we['launches']} | {we['max_err']:.1e} | "
                     f"{'yes' if all(x['bytes'] == x['modelled'] for x in (ro, we)) else 'NO'} |")
        print(lines[-1], flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
