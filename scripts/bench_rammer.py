"""Launches, Rammer's estimated makespan and emulator bytes per inference, welder vs rammer (welder + rammer),
for the models given: the rammer table of ``make bench``.

    python scripts/bench_rammer.py samples/parallel/*.onnx
"""
from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from tilec.analysis.hardware import get_arch
from tilec.analysis.rammer.report import launches, plan_seconds
from tilec.driver import compile_model, load_target, make_executor
from tilec.ir.io import read_ir
from tilec.runtime.interpreter import run_module


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="launches, estimated time and emulator bytes per inference, "
                                             "welder vs rammer (welder + rammer)")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--arch", default="h200")
    args = ap.parse_args(argv)
    spec = get_arch(args.arch)
    print("| model | launches welder → rammer (emu) | est. makespan µs welder → rammer | est. speedup | vEUs (max) | "
          "emu global KB welder → rammer | max err vs numpy |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for path in args.models:
            row = []
            for pipeline in ("welder", "rammer"):
                out = f"{tmp}/{pipeline}"
                compile_model(path, out, pipeline=pipeline)
                module = read_ir(f"{out}/model.tir")
                plan = json.loads(open(f"{out}/plan.json").read())
                shapes = {b["name"]: b["shape"] for b in plan["buffers"]}
                rng = np.random.default_rng(0)
                inputs = {i["name"]: rng.standard_normal(shapes[i["buffer"]]).astype(np.float32)
                          for i in plan["inputs"]}
                ex = make_executor(out, "emu")
                got = ex.run(inputs)
                ref = run_module(load_target(path), inputs)
                err = max(float(np.max(np.abs(got[k] - ref[k]))) for k in ref)
                totals = ex.report()["totals"]
                veus = max((int(k.attributes["grid"][0]) for k in launches(module)
                            if k.attributes.get("kind") == "persistent"), default=0)
                row.append((totals["launches"], plan_seconds(module, spec), totals["global_bytes"], err, veus))
            (n0, s0, b0, e0, _), (n1, s1, b1, e1, v1) = row
            name = path.rsplit("/", 1)[-1]
            print(f"| {name} | {n0} → {n1} | {s0 * 1e6:.1f} → {s1 * 1e6:.1f} | {s0 / s1:.2f}x | {v1} | "
                  f"{b0 / 1024:.1f} → {b1 / 1024:.1f} | {max(e0, e1):.1e} |")


if __name__ == "__main__":
    main()
