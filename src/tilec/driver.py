"""The compiler driver: the named pipelines, ``compile_model`` (writes a build folder atomically) and
``run_target`` (runs a model, IR file or build folder on the inputs of an .npz)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .ir.diagnostics import CompileError
from .ir.io import write_ir
from .passes.pipeline import PassManager, dump, parse_pipeline

# Graph-level clean-up and decomposition every pipeline starts with.
FRONT_PASSES = "canonicalize,infer-shapes,fold-constants,decompose,cse,dce"

# Pipeline name -> pass list. Each later compiler (roller, welder, rammer, grinder) extends the one before.
PIPELINES: dict = {
    "none": FRONT_PASSES,
}
DEFAULT_PIPELINE = "none"


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
                  pipeline: str = "default", input_shapes: dict | None = None) -> CompileResult:
    """Import ``model``, run the pipeline (verifying after each pass), and write ``build_dir`` atomically:
    it is built in a temporary folder beside the target and renamed into place only when complete."""
    from .frontend.importer import import_onnx
    from .ir.verifier import verify
    start = time.perf_counter()
    passes = parse_pipeline(pipeline_spec(pipeline))
    names = ["import"] + [p.name for p in passes]
    if compile_to is not None and compile_to not in names:
        raise CompileError(f"unknown stage '{compile_to}' for --compile-to (stages: {', '.join(names)})")
    module = import_onnx(model, input_shapes or {})
    verify(module)
    if dump_dir is not None:
        dump(module, dump_dir, 0, "import")
    if compile_to is not None:
        passes = passes[:names.index(compile_to)]
    pm = PassManager(passes=passes, dump_dir=dump_dir)
    pm.run(module)
    elapsed = time.perf_counter() - start
    n_ops = sum(1 for op in module.walk() if op.dialect in ("graph", "tile") and op.results)

    def write(tmp: Path) -> None:
        write_ir(module, str(tmp / "model.tir"))
        report = {"model": os.path.basename(model), "pipeline": pipeline,
                  "stages": [{"pass": r.name, "seconds": round(r.seconds, 6)} for r in pm.records],
                  "totals": {"ops": n_ops, "compile_seconds": round(elapsed, 6)}}
        (tmp / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    atomic_build_dir(Path(build_dir), write)
    return CompileResult(Path(build_dir), n_ops, [r.name for r in pm.records], elapsed)


def atomic_build_dir(target: Path, fill) -> None:
    """Create ``target`` by filling a temp folder and renaming it; a failure leaves any old build intact."""
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise CompileError(f"build folder '{target}' exists and is not a folder")
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        fill(tmp)
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            os.replace(target, old / "build")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_npz(path: str) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CompileError(f"no such file '{path}'") from None
    except (OSError, ValueError) as e:
        raise CompileError(f"cannot read inputs '{path}': {e}") from None


def save_npz(path: str, arrays: dict) -> None:
    import io

    from .ir.weights import atomic_write_bytes
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())


def load_target(target: str, input_shapes: dict | None = None):
    """The module for a .onnx, a .tir, or a build folder (its ``model.tir``)."""
    from .ir.io import read_ir
    p = Path(target)
    if p.is_dir():
        if not (p / "model.tir").exists():
            raise CompileError(f"'{target}' is not a tilec build folder (no model.tir)")
        return read_ir(str(p / "model.tir"))
    if p.suffix == ".onnx":
        from .frontend.importer import import_onnx
        return import_onnx(target, input_shapes or {})
    if p.suffix == ".tir":
        return read_ir(target)
    raise CompileError(f"don't know how to run '{target}' (expected .onnx, .tir or a build folder)")


def run_target(target: str, inputs_path: str, outputs_path: str, backend: str = "numpy",
               input_shapes: dict | None = None) -> dict:
    from .runtime.interpreter import run_module
    if backend != "numpy":
        raise CompileError(f"unknown backend '{backend}' (available: numpy)")
    module = load_target(target, input_shapes)
    outputs = run_module(module, load_npz(inputs_path))
    save_npz(outputs_path, outputs)
    return outputs
