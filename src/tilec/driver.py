"""The compiler driver: the named pipelines, ``compile_model`` (writes a build folder atomically) and
``run_target`` (runs a model, IR file or build folder on the inputs of an .npz)."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ir.diagnostics import CompileError, PassVerificationError, SizeLimitError
from .passes.pipeline import PassManager, dump, parse_pipeline

# Graph-level clean-up and decomposition every pipeline starts with.
FRONT_PASSES = "canonicalize,infer-shapes,fold-constants,decompose,cse,dce"

# Every pipeline ends here: tile.compute (and opaque ops with a hand-written kernel) become CUDA kernels.
BACK_PASSES = "lower-cuda"

# Pipeline name -> pass list. Each later compiler (roller, welder, rammer, grinder) extends the one before.
PIPELINES: dict = {
    "none": f"{FRONT_PASSES},{BACK_PASSES}",
    "roller": f"{FRONT_PASSES},roller,{BACK_PASSES}",
    "welder": f"{FRONT_PASSES},roller,welder,{BACK_PASSES}",
    # Rammer packs the lowered kernels into persistent rPrograms, so it runs after lower-cuda.
    "rammer": f"{FRONT_PASSES},roller,welder,{BACK_PASSES},rammer",
    # Grinder moves Loop / If control flow into device kernels built from the lowered body kernels.
    "grinder": f"{FRONT_PASSES},roller,welder,{BACK_PASSES},rammer,grinder",
}
# The fullest pipeline: every compiler on (README "Pipelines"); each stage leaves ops it cannot improve alone.
DEFAULT_PIPELINE = "grinder"


def pipeline_spec(name: str) -> str:
    if name == "default":
        name = DEFAULT_PIPELINE
    if name not in PIPELINES:
        raise CompileError(f"unknown pipeline '{name}' (available: default, {', '.join(PIPELINES)})")
    return PIPELINES[name]


@dataclass
class CompileResult:
    build_dir: Path
    ops: int
    stages: list = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        return f"compiled {self.ops} ops in {self.seconds:.2f}s -> {self.build_dir}"


def compile_model(model: str, build_dir: str, dump_dir: str | None = None, compile_to: str | None = None,
                  pipeline: str = "default", input_shapes: dict | None = None,
                  check_ptx: bool = False, tune: int = 0, no_fusion: bool = False,
                  check_nvrtc: bool = False, arch: str | None = None, progress=None,
                  on_import=None, check_hip: bool = False, precision: str | None = None,
                  verify_each: bool | None = None) -> CompileResult:
    """Import ``model``, run the pipeline, and write ``build_dir`` atomically (``_compile``).

    The verifier checks the imported module, the IR the numpy reference keeps (before lower-cuda) and the
    final IR. ``verify_each`` (None: ``TILEC_VERIFY_EACH`` set and not 0; the tests set it, as MLIR's
    tests run with ``-verify-each``) verifies after every pass instead: on a large model that is a tenth
    of the compile. A compile that fails after the import without it is run again with it, so the error is
    the one a verify-each run gives: a pass that broke the IR is named (``PassVerificationError``), not the
    later pass or check that tripped over it."""
    if verify_each is None:
        verify_each = os.environ.get("TILEC_VERIFY_EACH", "") not in ("", "0")
    args = dict(model=model, build_dir=build_dir, dump_dir=dump_dir, compile_to=compile_to, pipeline=pipeline,
                input_shapes=input_shapes, check_ptx=check_ptx, tune=tune, no_fusion=no_fusion,
                check_nvrtc=check_nvrtc, arch=arch, check_hip=check_hip, precision=precision)
    # How far the compile got: a failure in the import, or after the final IR verified (writing the build,
    # ptxas), is the same with verify-each; one in between is found again with it.
    reached: dict = {"imported": False, "verified": False}
    try:
        return _compile(**args, progress=progress, on_import=on_import, verify_each=verify_each,
                        reached=reached)
    except (PassVerificationError, SizeLimitError):
        raise   # already named the pass / the input's fault
    except Exception:
        if verify_each or not reached["imported"] or reached["verified"]:
            raise
        _compile(**args, progress=None, on_import=None, verify_each=True, reached=dict(reached))   # raises, or:
        raise   # (not reproduced verifying after every pass: the error as it was)


def _compile(model: str, build_dir: str, dump_dir: str | None, compile_to: str | None, pipeline: str,
             input_shapes: dict | None, check_ptx: bool, tune: int, no_fusion: bool, check_nvrtc: bool,
             arch: str | None, progress, on_import, check_hip: bool, precision: str | None, verify_each: bool,
             reached: dict) -> CompileResult:
    """Import ``model``, run the pipeline, and write ``build_dir`` atomically:
    it is built in a temporary folder beside the target and renamed into place only when complete
    (kernels, plan, weights, IR and report: see ``backend/build.py``). ``check_ptx`` compiles every kernel
    with nvcc first and records what ptxas reports; ``check_nvrtc`` compiles every kernel as CuPy will
    (NVRTC, ``backend/nvrtc.py``); ``check_hip`` compiles an AMD target's kernels with hipcc and records their
    registers, LDS, occupancy and spills (``backend/hipcc.py``). ``tune`` > 0 profiles Roller's top-``tune`` rTiles per op
    on a GPU and keeps the fastest (``tune.py``); without a GPU the model decides. ``arch`` is the
    target GPU (default ``DEFAULT_ARCH``): the module's ``tilec.target``, which every pass and the build read.
    ``progress``, when given, is called as ``progress(index, total, stage name)`` before each stage (import,
    every pass, writing the build): the CLI's ``cli.progress.Progress.stage``. ``on_import``, when given, is
    called with the imported, verified module before any pass changes it (``driver_profile``'s analysis).
    ``precision`` (fp32, tf32, fp16, bf16; None: the model's own types) is the module's ``tilec.precision``:
    the ``precision`` pass then runs right after ``decompose`` (``ir/precision.py``)."""
    from .backend.build import atomic_build_dir, count_ops, module_text, write_build
    from .frontend.importer import import_onnx
    from .ir.verifier import verify
    start = time.perf_counter()
    passes = parse_pipeline(pipeline_spec(pipeline))
    if precision is not None:   # only when asked: a build without --precision is today's, dumps included
        from .ir.precision import check_precision
        from .passes import get_pass
        check_precision(precision)
        at = next((i + 1 for i, p in enumerate(passes) if p.name == "decompose"), 0)
        passes.insert(at, get_pass("precision"))
    if no_fusion:   # the welder ablation: max-level=global leaves Roller's one kernel per op untouched
        for p in passes:
            if p.name == "welder":
                p.max_level = "global"
    names = ["import"] + [p.name for p in passes]
    if compile_to is not None and compile_to not in names:
        raise CompileError(f"unknown stage '{compile_to}' for --compile-to (stages: {', '.join(names)})")
    from .analysis.hardware import DEFAULT_ARCH, get_arch, set_target
    target = get_arch(arch or DEFAULT_ARCH)   # an unknown arch fails before any work
    if compile_to is not None:
        passes = passes[:names.index(compile_to)]
    total = len(passes) + 2   # import, the passes, writing the build

    def stage(index: int, name: str) -> None:   # index: the dump's number (import 0, passes from 1)
        if progress is not None:
            progress(index + 1, total, name)
    stage(0, "import")
    module = import_onnx(model, input_shapes or {})
    set_target(module, target.arch)
    if precision is not None:
        from .ir.precision import set_precision
        set_precision(module, precision)
    verify(module)
    reached["imported"] = True
    from .passes.conv_layout import wanted
    if wanted(module, precision):   # tensor-core convolutions read channels-last (only these builds run it)
        from .passes import get_pass
        at = next((i + 1 for i, p in reversed(list(enumerate(passes))) if p.name in ("decompose", "precision")), None)
        if at is not None and at < len(passes):   # not past a --compile-to stage
            passes.insert(at, get_pass("conv-layout"))
            total += 1
    if on_import is not None:
        on_import(module)
    if dump_dir is not None:
        dump(module, dump_dir, 0, "import")
    # The IR just before lower-cuda is what the numpy backend runs on a build folder (kernels have no
    # reference implementation), so the pipeline stops there for a snapshot.
    cut = next((i for i, p in enumerate(passes) if p.name == "lower-cuda"), len(passes))
    for p in passes:
        if tune > 0 and p.name == "roller":
            p.topk = max(p.topk, tune)
    front = PassManager(passes=passes[:cut], dump_dir=dump_dir, before_pass=stage, verify_each=verify_each)
    front.run(module)
    if not verify_each and cut < len(passes):
        verify(module)   # what reference.tir keeps must parse again
    tuning = None
    if tune > 0:
        from .tune import tune_module
        tuning = tune_module(module, tune)
    reference = module_text(module) if cut < len(passes) else None
    back = PassManager(passes=passes[cut:], dump_dir=dump_dir, first_index=cut + 1, before_pass=stage,
                       verify_each=verify_each)
    back.run(module)
    if not verify_each:
        verify(module)
    reached["verified"] = True
    records = front.records + back.records
    n_ops = count_ops(module)

    def write(tmp: Path) -> None:
        stage(total - 1, ", ".join(["write build"] + ["ptxas"] * check_ptx + ["nvrtc"] * check_nvrtc
                                + ["hipcc"] * check_hip))
        report = write_build(module, tmp, model=os.path.basename(model), pipeline=pipeline,
                             stages=[{"pass": r.name, "seconds": round(r.seconds, 6)} for r in records],
                             start=start, check_ptx=check_ptx, reference=reference, check_nvrtc=check_nvrtc,
                             check_hip=check_hip)
        if tuning is not None:
            from .backend.build import write_json
            report.update(tuning)
            write_json(tmp / "report.json", report)
    atomic_build_dir(Path(build_dir), write)
    return CompileResult(Path(build_dir), n_ops, [r.name for r in records], time.perf_counter() - start)


def load_npz(path: str) -> dict:
    """The arrays of the ``.npz`` at ``path`` (``runtime/array_files.load_arrays``)."""
    from .runtime.array_files import load_arrays
    return load_arrays(path)


def save_npz(path: str, arrays: dict) -> None:
    from .runtime.array_files import save_arrays
    save_arrays(path, arrays)


def load_target(target: str, input_shapes: dict | None = None):
    """The module for a .onnx, a .tir, or a build folder (its ``model.tir``)."""
    from .ir.io import read_ir
    p = Path(target)
    if p.is_dir():
        # reference.tir is the IR before lower-cuda: model.tir's kernels have no numpy implementation.
        for name in ("reference.tir", "model.tir"):
            if (p / name).exists():
                return read_ir(str(p / name))
        raise CompileError(f"'{target}' is not a tilec build folder (no model.tir)")
    if p.suffix == ".onnx":
        from .frontend.importer import import_onnx
        return import_onnx(target, input_shapes or {})
    if p.suffix == ".tir":
        return read_ir(target)
    raise CompileError(f"don't know how to run '{target}' (expected .onnx, .tir or a build folder)")


BACKENDS = ("numpy", "emu", "cupy", "hip")


def run_target(target: str, inputs_path: str, outputs_path: str, backend: str = "numpy",
               input_shapes: dict | None = None, **options) -> dict:
    """``tilec run``: ``cli/run.run_files`` (``tilec.api.load`` and ``CompiledModel.run`` with files around
    them), under the name scripts know; ``options`` are its keyword options (report_path, emu_order,
    cuda_graph, repeat, emu_resident_limit, emu_sms, cast, summary)."""
    from .cli.run import run_files
    return run_files(target, inputs_path, outputs_path, backend, input_shapes, **options)


def _amd_build(build_dir: str) -> bool:
    """Whether ``build_dir``'s plan was built for an AMD GPU (its kernels are ``.hip``)."""
    import json
    from .analysis.hardware import DEFAULT_ARCH, get_arch
    try:
        arch = json.loads((Path(build_dir) / "plan.json").read_text()).get("arch", DEFAULT_ARCH)
        return get_arch(arch).is_amd
    except (OSError, ValueError, CompileError):
        return False   # not a build folder: Executor.from_build says so


def make_executor(build_dir: str, backend: str, emu_order: str = "normal", emu_resident_limit: bool = False,
                  emu_sms: int | None = None):
    """An Executor for ``build_dir`` on the ``emu``, ``cupy`` or ``hip`` device (``emu_*``: the emulator's options).
    A build for an AMD GPU runs on ``hip``, and ``cupy`` means ``hip`` there (CuPy's ROCm build)."""
    from .runtime.executor import Executor
    if backend == "emu":
        from .runtime.emu_device import EmuDevice
        device = EmuDevice(order=emu_order, resident_limit=emu_resident_limit, num_sms=emu_sms)
    elif backend == "hip" or (backend == "cupy" and _amd_build(build_dir)):
        from .runtime.hip_device import HipDevice
        if not _amd_build(build_dir):
            raise CompileError(f"--backend hip runs builds for AMD GPUs (--arch mi250x, mi300x); '{build_dir}' "
                               "has CUDA kernels: use --backend cupy")
        device = HipDevice()
    elif backend == "cupy":
        from .runtime.cupy_device import CupyDevice
        device = CupyDevice()
    else:
        raise CompileError(f"backend '{backend}' does not execute plans")
    return Executor.from_build(build_dir, device)
