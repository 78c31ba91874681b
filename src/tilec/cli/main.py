"""``tilec``: import, opt, compile and run (see README's CLI reference)."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import __version__
from ..ir.precision import PRECISIONS
from .errors import guarded, parse_bucket_lists, parse_input_shapes, parse_shape_profiles, refuse_profile_build


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tilec")
def cli():
    """tilec: a tile-based deep-learning compiler (ONNX → tile IR → CUDA)."""


input_shape_option = click.option("--input-shape", "input_shapes", multiple=True, metavar="NAME=DIMS",
                                  help="Fix a dynamic input's shape, e.g. x=1x128 (repeatable).")


@cli.command("import")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", default="-", help="Output .tir file ('-' = stdout; weights go beside it).")
@input_shape_option
@click.option("--generic", is_flag=True, help="Print every op in the generic form.")
@guarded
def import_cmd(model, output, input_shapes, generic):
    """Import an ONNX model into graph-level tile IR."""
    from ..frontend.importer import import_onnx
    from ..ir.io import write_ir
    from ..ir.verifier import verify
    from ..ir.diagnostics import CompileError
    module = import_onnx(model, parse_input_shapes(input_shapes))
    verify(module)
    try:
        text = write_ir(module, None if output == "-" else output, generic=generic)
    except OSError as e:
        raise CompileError(f"cannot write '{output}': {e.strerror or e}") from None
    if output == "-":
        click.echo(text, nl=False)


@cli.command("opt")
@click.argument("input", default="-", required=False)
@click.option("-p", "passes_csv", multiple=True, metavar="PASS[,PASS...]", help="Passes to run, in order.")
@click.option("--pass", "pass_names", multiple=True, metavar="PASS", help="A pass to run (repeatable).")
@click.option("--pass-pipeline", default=None, metavar="SPEC", help="e.g. 'builtin.module(a,b{opt=1})'.")
@click.option("-o", "--output", default="-", help="Output file ('-' = stdout).")
@click.option("--print-ir-after-all", is_flag=True, help="Print the IR to stderr after every pass.")
@click.option("--verify-each/--no-verify-each", default=True, show_default=True,
              help="Run the verifier after every pass.")
@click.option("--verify-diagnostics", is_flag=True,
              help="Check the errors the input produces against its // expected-error comments.")
@click.option("--split-input-file", is_flag=True, help="Treat '// -----' separated chunks as separate inputs.")
@click.option("--generic", is_flag=True, help="Print every op in the generic form.")
@click.option("--list-passes", is_flag=True, help="List the passes and what they do.")
@click.option("--arch", default=None, metavar="GPU",
              help="Set the module's target GPU (tilec.target) before the passes run (h200, h100, a100, v100).")
@guarded
def opt_cmd(input, passes_csv, pass_names, pass_pipeline, output, print_ir_after_all, verify_each,
            verify_diagnostics, split_input_file, generic, list_passes, arch):
    """Run passes over a .tir file (like mlir-opt / xdsl-opt)."""
    from ..passes import PASSES, get_pass_class
    if list_passes:
        for name in PASSES:
            doc = (get_pass_class(name).__doc__ or "").strip().splitlines()[0]
            click.echo(f"  {name:<16} {doc}")
        return
    from .opt import run_opt
    spec = ",".join(list(passes_csv) + list(pass_names))
    if pass_pipeline:
        spec = pass_pipeline if not spec else spec + "," + pass_pipeline
    sys.exit(run_opt(input, spec, output, print_ir_after_all, verify_each, verify_diagnostics,
                     split_input_file, generic, arch))


@cli.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "build_dir", required=True, help="Build folder to write.")
@click.option("--dump-dir", default=None, help="Write DIR/NN_<stage>.tir after each stage.")
@click.option("--compile-to", default=None, metavar="STAGE", help="Stop after this stage.")
@click.option("--pipeline", default="default", show_default=True,
              help="Which pipeline (none, roller, welder, rammer, grinder; see README): 'default' is the "
                   "fullest one, tilec.driver.DEFAULT_PIPELINE.")
@click.option("--arch", default=None, metavar="GPU",
              help="The target GPU (h200, h100, a100, v100, mi250x, mi300x: src/tilec/analysis/hw/); every pass, the kernels and "
                   "the checks build for it. Default: h200.")
@click.option("--precision", default=None, type=click.Choice(list(PRECISIONS)),
              help="What contractions (MatMul, Gemm, Conv, attention, MLPs) compute in, accumulating in f32; "
                   "weights cast at compile time, inputs/outputs keep their types. Default: the model's own.")
@click.option("--check-ptx", is_flag=True,
              help="Compile every kernel with nvcc for the target's sm_XX and record ptxas' registers/smem/spills.")
@click.option("--check-nvrtc", is_flag=True,
              help="Compile every kernel with NVRTC and CuPy's options, as the cupy backend will (no GPU "
                   "needed; the NVRTC wheels of the 'cuda' extra).")
@click.option("--check-hip", is_flag=True,
              help="AMD targets (--arch mi250x): compile every kernel with hipcc --offload-arch for the target's "
                   "gfx ISA and record VGPRs/SGPRs/AGPRs/LDS/occupancy/spills (docs/amd.md).")
@click.option("--tune", "tune", default=0, show_default=True, type=click.IntRange(min=0), metavar="K",
              help="Profile Roller's top-K tiles per op on the GPU and keep the fastest (no GPU: the model).")
@click.option("--no-fusion", is_flag=True,
              help="Run welder with max-level=global: no fusion, no re-tiling (the roller-only kernels).")
@click.option("-q", "--quiet", is_flag=True,
              help="No stage progress on stderr (shown once a compile has run for a second: a status line on a "
                   "terminal, plain lines otherwise).")
@input_shape_option
@click.option("--shape-profile", "shape_profiles", multiple=True, metavar="NAME=MIN..MAXxDIM...",
              help="Compile one build per bucket of dynamic dims, e.g. input_ids=1..32x1..512 (a fixed dim is a "
                   "number; repeatable, one per input); 'tilec run' picks the bucket that fits.")
@click.option("--buckets", "bucket_lists", multiple=True, metavar="DIM=V1,V2,...",
              help="The buckets of one dim of --shape-profile (its ONNX dim name, or INPUT:AXIS), e.g. "
                   "seq=128,256,512 (repeatable; default: powers of two within the range, and its maximum).")
@guarded
def compile_cmd(model, build_dir, dump_dir, compile_to, pipeline, arch, precision, check_ptx, check_nvrtc, check_hip,
                tune, no_fusion, quiet, input_shapes, shape_profiles, bucket_lists):
    """Compile an ONNX model: import, run the pipeline, write BUILD_DIR (and dumps)."""
    from .. import api
    from .progress import Progress
    if bucket_lists and not shape_profiles:
        raise click.UsageError("--buckets chooses the buckets of a --shape-profile: give one")
    if shape_profiles and (input_shapes or compile_to):
        raise click.UsageError("--shape-profile fixes the shapes of every bucket: drop "
                               + ("--input-shape" if input_shapes else "--compile-to"))
    profiles = parse_shape_profiles(shape_profiles) or None
    buckets = parse_bucket_lists(bucket_lists) or None
    shapes = None if shape_profiles else parse_input_shapes(input_shapes)
    progress = Progress(enabled=not quiet)
    try:
        model = api.compile(model, build_dir=build_dir, dump_dir=dump_dir, compile_to=compile_to,
                            pipeline=pipeline, arch=arch, precision=precision, input_shapes=shapes,
                            shape_profile=profiles, buckets=buckets, check_ptx=check_ptx, tune=tune,
                            no_fusion=no_fusion, check_nvrtc=check_nvrtc, check_hip=check_hip, progress=progress.stage)
    finally:
        progress.done()   # erase the status line before the summary or the diagnostic
    click.echo(model.compile_result.summary())


@cli.command("tune")
@click.argument("build_dir", type=click.Path(file_okay=False, exists=True))
@click.option("-k", "--top", "k", default=8, show_default=True, type=click.IntRange(min=1),
              help="How many of Roller's candidates to profile per op.")
@click.option("--backend", type=click.Choice(["cupy", "emu"]), default=None,
              help="What times the candidates: cupy (the GPU, CUDA events) or emu (the CUDA emulator's byte counts "
                   "through the latency model; no GPU needed). Default: the GPU if there is one, else the model.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Compile and time every candidate as a Ray task (no value: a local Ray cluster; 'auto': the "
                   "running one); with cupy each task takes a GPU. Needs pip install -e \".[ray]\".")
@guarded
def tune_cmd(build_dir, k, backend, ray_address):
    """Re-tune a build folder: profile each op's top-K tiles on the GPU, keep the fastest, rewrite it."""
    from ..tune import summary, tune_build
    refuse_profile_build(build_dir, "tilec tune")
    if ray_address is None:
        click.echo(summary(tune_build(build_dir, k, backend=backend)))
        return
    from ..testing.campaign import executor_for
    backend = backend or "cupy"
    with executor_for(ray_address, num_gpus=1 if backend == "cupy" else 0) as executor:
        click.echo(summary(tune_build(build_dir, k, backend=backend, executor=executor)))


@cli.command("run")
@click.argument("target")
@click.option("--inputs", "inputs_path", required=True, help=".npz with one array per model input (.npy: the input of a one-input model).")
@click.option("--outputs", "outputs_path", required=True, help=".npz to write, one array per output.")
@click.option("--backend", default="numpy", show_default=True,
              help="numpy (interpreter), emu (CUDA emulator) or cupy (GPU); emu and cupy run a build folder.")
@click.option("--report", "report_path", default=None, metavar="RUN.json",
              help="Write launches, bytes, host syncs and per-kernel rows.")
@click.option("--emu-order", default="normal", show_default=True,
              type=click.Choice(["normal", "reverse", "shuffle"]), help="Block/thread order in the emulator.")
@click.option("--emu-resident-limit", is_flag=True,
              help="Emulator: run persistent kernels with only as many blocks at once as the target GPU holds "
                   "(registers, shared memory, threads per SM); a grid that needs more is reported, not run.")
@click.option("--emu-sms", default=None, type=click.IntRange(min=1), metavar="N",
              help="With --emu-resident-limit: emulate a GPU with N SMs instead of the target's.")
@click.option("--cast", is_flag=True,
              help="Convert inputs whose dtype differs from the model's (default: that is an error).")
@click.option("--cuda-graph", is_flag=True, help="Time the plan as a captured CUDA graph (cupy, with --repeat).")
@click.option("--repeat", default=0, show_default=True, type=click.IntRange(min=0),
              help="Also time N more runs of the whole plan and report the median.")
@input_shape_option
@guarded
def run_cmd(target, inputs_path, outputs_path, backend, report_path, emu_order, emu_resident_limit, emu_sms,
            cast, cuda_graph, repeat, input_shapes):
    """Run a .onnx, a .tir or a build folder on the inputs in an .npz (or an .npy for a one-input model)."""
    from .run import run_files
    if (emu_resident_limit or emu_sms) and backend != "emu":
        raise click.UsageError("--emu-resident-limit and --emu-sms are options of --backend emu")
    if emu_sms and not emu_resident_limit:
        raise click.UsageError("--emu-sms N emulates N SMs for --emu-resident-limit: give both")
    run_files(target, inputs_path, outputs_path, backend, parse_input_shapes(input_shapes),
              report_path=report_path, emu_order=emu_order, cuda_graph=cuda_graph, repeat=repeat,
              emu_resident_limit=emu_resident_limit, emu_sms=emu_sms, cast=cast, summary=click.echo)


@cli.command("cache")
@click.option("--info", "show", is_flag=True, help="Show each cache folder's files and size (the default).")
@click.option("--clear", "clear_kinds", multiple=True, metavar="KIND",
              type=click.Choice(["all", "emu", "hipcc", "nvrtc", "ptxas", "weights"]),
              help="Empty a cache folder (repeatable; 'all' for every one). Builds keep their weights.")
@guarded
def cache_cmd(show, clear_kinds):
    """Show or empty tilec's cache ($TILEC_CACHE_DIR or ~/.cache/tilec; bounded by $TILEC_CACHE_MAX_BYTES)."""
    from ..backend import cache
    if clear_kinds:
        kinds = cache.KINDS if "all" in clear_kinds else tuple(dict.fromkeys(clear_kinds))
        freed = cache.clear(kinds)
        click.echo(f"cleared {', '.join(kinds)}: {freed / 2**20:.1f} MiB freed")
        if not show:
            return
    rows = cache.info()
    click.echo(f"{cache.root()} (each folder at most {cache.max_bytes() / 2**30:.1f} GiB)")
    for kind, r in rows.items():
        click.echo(f"  {kind:<8} {r['files']:>7} files {r['bytes'] / 2**20:>10.1f} MiB")


@cli.command("inspect")
@click.argument("build_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--kernel", "kernels", multiple=True, metavar="NAME", help="Only this kernel (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the inspection as JSON (for scripts).")
@guarded
def inspect_cmd(build_dir, kernels, as_json):
    """Kernel quality without a GPU: ptxas' resources and each kernel's SASS main loop (docs/inspect.md)."""
    import json

    from ..backend.inspect_build import format_table, inspect_build
    from ..runtime.profile import load_profile
    profile = load_profile(build_dir)
    if profile is not None:   # a shape-profile build: every bucket's kernels, bucket by bucket
        results = {b["key"]: inspect_build(str(Path(build_dir) / b["dir"]), kernels) for b in profile.data["buckets"]}
        click.echo(json.dumps({"profile": build_dir, "buckets": results}, indent=1) if as_json else
                   "\n\n".join(f"bucket {key}: {format_table(r)}" for key, r in results.items()))
        return
    result = inspect_build(build_dir, kernels)
    click.echo(json.dumps(result, indent=1) if as_json else format_table(result))


@cli.command("viz")
@click.option("--schedule", "build_dir", default=None, type=click.Path(file_okay=False, exists=True),
              help="A build folder whose rPrograms (rammer pipeline) to draw.")
@click.option("--graph", "graph_src", default=None, metavar="BUILD_OR_TIR",
              help="Draw the tile-graph (welder kernels as clusters, edges by memory level) of a build "
                   "folder or a .tir file, as DOT (SVG when -o ends in .svg and Graphviz's dot exists).")
@click.option("-o", "--output", default="-", show_default=True,
              help="Output file ('-' = stdout): Chrome-trace JSON for --schedule (an SVG timeline when it ends "
                   "in .svg), DOT/SVG for --graph.")
@guarded
def viz_cmd(build_dir, graph_src, output):
    """Draw a schedule (--schedule, Chrome trace) or a fused tile-graph (--graph, Graphviz DOT)."""
    import json

    if (build_dir is None) == (graph_src is None):
        raise click.UsageError("give exactly one of --schedule BUILD or --graph BUILD_OR_TIR")
    refuse_profile_build(build_dir or graph_src, "tilec viz")
    if graph_src is not None:
        from .viz_graph import write_graph
        write_graph(graph_src, output)
        return
    from ..analysis.rammer.report import schedule_trace
    from ..ir.diagnostics import CompileError
    from ..ir.io import read_ir
    trace = schedule_trace(read_ir(str(Path(build_dir) / "model.tir")))
    if output.endswith(".svg"):   # a picture without a trace viewer (cli/viz_schedule_svg.py)
        from .viz_schedule_svg import schedule_svg
        text = schedule_svg(trace).rstrip("\n")
    else:
        text = json.dumps(trace, indent=1)
    if output == "-":
        click.echo(text)
        return
    from ..ir.weights import atomic_write_bytes
    try:
        atomic_write_bytes(Path(output), (text + "\n").encode("utf-8"))
    except OSError as e:
        raise CompileError(f"cannot write '{output}': {e.strerror or e}") from None


def main():
    """Console-script entry point (click exits 2 on usage errors)."""
    import warnings

    from ..runtime.residency import format_warning
    warnings.formatwarning = format_warning   # a fallback taken on this GPU: one diagnostic line
    cli(prog_name="tilec")


if __name__ == "__main__":
    main()
