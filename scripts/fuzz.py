#!/usr/bin/env python3
"""``make fuzz``: hostile IR, adversarial ONNX and random-graph differential testing; prints the figures
table (markdown) and one line per distinct finding. Exit status 1 when anything crashed, hung, allocated
hugely or mismatched. Deterministic for a given --seed.

    python scripts/fuzz.py --graphs 1000 --pipeline-graphs 500 --pipeline-f16-graphs 200 --ir 10000 --onnx 1000 --run-inputs 1000 --seed 0

``--pipeline-graphs`` runs random graphs through a whole driver pipeline and the CUDA emulator
(``tilec.testing.pipeline_fuzz``: pipelines, emulator orders and f16 rotate per graph); each failing one is
saved to ``--save-dir`` as model.onnx + inputs.npz + case.json (seed, pipeline, order, what happened).
The f16 share of those all takes the default pipeline; ``--pipeline-f16-graphs`` runs graphs that are all f16
through every pipeline in turn (their own seeds: ``--seed`` + 1,000,000 on). ``--precision-graphs N`` runs N
f32 graphs with a MatMul/Gemm/Conv per mode of ``--precisions`` (default fp16,bf16), compiled with
``tilec compile --precision`` (seeds ``--seed`` + 2,000,000 on).

``--ray [ADDRESS]`` runs the campaigns' work units as Ray tasks (``tilec.testing.campaign``; no value: a local
Ray cluster, ``auto``: the running one); the table is the same as without it for the same seed, timings aside
(as between any two runs, an input that takes nearly its campaign's time limit may be a timeout in one run and
not the other on a loaded machine). Each worker then caps its own address space by ``--memory-gib`` instead of
this process.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
F16_SEEDS = 1_000_000   # the f16-only pipeline graphs' seeds start this far after --seed (distinct graphs)
PRECISION_SEEDS = 2_000_000   # and the --precision graphs' this far
sys.path.insert(0, str(ROOT / "src"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--graphs", type=int, default=200, help="random graphs to compare with onnxruntime")
    ap.add_argument("--nodes", type=int, default=8, help="ops per random graph")
    ap.add_argument("--emu-graphs", type=int, default=0,
                    help="how many of --graphs also go through the emulator with the first lowering pipeline "
                         "(superseded by --pipeline-graphs)")
    ap.add_argument("--pipeline-graphs", type=int, default=100,
                    help="random graphs through a whole pipeline (rotating) under the emulator")
    ap.add_argument("--pipeline-f16-graphs", type=int, default=0,
                    help="random f16 graphs through a whole pipeline (rotating) under the emulator")
    ap.add_argument("--precision-graphs", type=int, default=0,
                    help="random f32 graphs with a contraction, per --precisions mode, compiled with --precision")
    ap.add_argument("--precisions", default="fp16,bf16", help="the modes of --precision-graphs (fp16, bf16)")
    ap.add_argument("--max-nodes", type=int, default=8, help="ops per --pipeline-graphs graph: 2 to this")
    ap.add_argument("--save-dir", default=str(ROOT / "build" / "fuzz-failures"),
                    help="where failing --pipeline-graphs cases are written")
    ap.add_argument("--ir", type=int, default=2000, help="mutated IR texts")
    ap.add_argument("--onnx", type=int, default=200, help="mutated ONNX models (plus the hand-made ones)")
    ap.add_argument("--run-inputs", type=int, default=0,
                    help="mutated tilec run input files (npz/npy, names, dtypes, shapes, damaged bytes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-regressions", action="store_true",
                    help="shrink each failing graph and write it to tests/regressions/")
    ap.add_argument("--memory-gib", type=float, default=4.0, help="address space allowed beyond start-up")
    from tilec.testing.campaign import add_ray_argument
    add_ray_argument(ap)
    args = ap.parse_args(argv)
    from tilec.testing.campaign import executor_for
    with executor_for(args.ray) as executor:
        return _run(args, executor)


def _run(args, executor) -> int:
    from tilec.testing.campaign import HEADER, LIFT, Unit, graph_campaign, ir_campaign, onnx_campaign
    from tilec.testing.guard import cap_address_space
    memory = int(args.memory_gib * (1 << 30))
    if args.ray is None:
        cap_address_space(memory)
    # On Ray the workers cap themselves (this process holds Ray's client and its shared-memory store).
    run = {"executor": executor, "worker_memory": memory if args.ray is not None else None}
    start = time.perf_counter()
    tallies = []
    if args.ir:
        tallies.append(ir_campaign(args.ir, args.seed, **run))
    if args.onnx:
        tallies.append(onnx_campaign(args.onnx, args.seed, **run))
    if args.run_inputs:
        from tilec.testing.run_inputs import run_input_unit
        # One unit: its mutations share one random stream.
        tallies += executor.run([Unit.of(run_input_unit, args.run_inputs, args.seed, run["worker_memory"])])
    if args.graphs:
        regressions = str(ROOT / "tests" / "regressions") if args.save_regressions else None
        tallies += list(graph_campaign(args.graphs, args.seed, args.nodes, regressions=regressions,
                                       emu_limit=args.emu_graphs, **run).values())
    if args.pipeline_graphs or args.pipeline_f16_graphs or args.precision_graphs:
        import resource

        from tilec.testing.pipeline_fuzz import pipeline_campaign
        # The emulator reserves a fiber stack per thread of every block of a persistent (Rammer/Grinder)
        # kernel: GiBs of address space, little of it touched. Lift the cap for this campaign; a real huge
        # allocation is still caught by run_guarded's peak-RSS check.
        resource.setrlimit(resource.RLIMIT_AS, (resource.getrlimit(resource.RLIMIT_AS)[1],) * 2)
        run["worker_memory"] = LIFT if args.ray is not None else None
        runs = [(args.pipeline_graphs, None, args.seed, None),
                (args.pipeline_f16_graphs, "f16", args.seed + F16_SEEDS, None)]
        runs += [(args.precision_graphs, None, args.seed + PRECISION_SEEDS, p)
                 for p in args.precisions.split(",") if p]
        for n, dtype, first, precision in runs:
            if not n:
                continue
            t0 = time.perf_counter()
            by = pipeline_campaign(n, first, args.max_nodes, save_dir=args.save_dir, progress=_progress,
                                   dtype=dtype, precision=precision, **run)
            what = " (f16 only)" if dtype else f" (--precision {precision})" if precision else ""
            print(f"full pipeline{what}: {n} graphs in {time.perf_counter() - t0:.0f} s", flush=True)
            if dtype or precision:   # every tally of this run is f16 / that precision: say so in its row
                for t in by.values():
                    t.kind = t.kind.replace("(", f"({dtype + ' only' if dtype else '--precision ' + precision}: ", 1)
            tallies += [by["all"]] + [t for k, t in sorted(by.items()) if k != "all"]
    print(HEADER)
    for t in tallies:
        print(t.row())
    print(f"\n{time.perf_counter() - start:.0f} s; command: python scripts/fuzz.py --graphs {args.graphs} "
          f"--nodes {args.nodes} --emu-graphs {args.emu_graphs} --pipeline-graphs {args.pipeline_graphs} "
          f"--pipeline-f16-graphs {args.pipeline_f16_graphs} --precision-graphs {args.precision_graphs} "
          f"--precisions {args.precisions} "
          f"--max-nodes {args.max_nodes} --ir {args.ir} --onnx {args.onnx} --run-inputs {args.run_inputs} "
          f"--seed {args.seed}" + ("" if args.ray is None else f" --ray {args.ray}"))
    from tilec.testing.differential import STAGES, stage_available
    for stage in STAGES:
        if args.graphs and stage_available(stage):
            print(f"skipped stage '{stage}': {stage_available(stage)}")
    findings = [(t.kind, d, ex) for t in tallies for d, ex in t.findings.items()]
    for kind, detail, example in findings:
        print(f"FINDING [{kind}] {detail}  (e.g. {example})")
    return 1 if findings else 0


def _progress(case, outcome) -> None:
    if outcome.kind != "ok":
        print(f"  {case.name}: {outcome.kind}: {outcome.detail[:200]}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
