"""tilec as a library: compile a model once, call it like onnxruntime's ``InferenceSession``.

    import tilec
    model = tilec.compile("samples/mlp.onnx", backend="numpy")   # or an onnx.ModelProto
    (y,) = model.run(None, {"x": x})                             # InferenceSession.run's contract
    y = model(x=x)["y"]                                          # or by output name

``compile`` writes an ordinary build folder (``build_dir``, or a temporary one the returned model owns and
removes when it is garbage-collected) with ``driver.compile_model``; ``load`` opens an existing one (or, for
the numpy backend, a ``.onnx`` / ``.tir`` to interpret as it is). The command line is a layer over these:
``tilec compile`` is :func:`compile`, ``tilec run`` is :func:`load` and :meth:`CompiledModel.run` with files
around them (``cli/run.py``). The backend runs it: ``numpy`` (the reference interpreter on the build's IR
before lower-cuda), ``emu`` (the generated CUDA under the CPU emulator) or ``cupy`` (a GPU); the default is
``cupy`` where CuPy sees a GPU, else ``numpy`` (``runners.py``). Inputs are checked against the model's
declared names, dtypes and shapes (``runtime/array_files.conform_inputs``). Numpy arrays, CuPy arrays and
torch tensors are accepted, and the outputs come back as the kind of the first input (today through host
memory: the executor copies inputs into its own arena on every backend).
"""
from __future__ import annotations

import json
import os
import tempfile
import weakref
from pathlib import Path

import numpy as np

from .driver import BACKENDS
from .ir.diagnostics import CompileError


def default_backend() -> str:
    """``cupy`` when CuPy is importable and sees a GPU, else ``numpy``."""
    try:
        import cupy
        return "cupy" if cupy.cuda.runtime.getDeviceCount() > 0 else "numpy"
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: all mean "no GPU here"
        return "numpy"


def compile(model, *, pipeline: str = "default", arch: str | None = None,  # noqa: A001
            input_shapes: dict | None = None, build_dir: str | None = None, backend: str | None = None,
            check_nvrtc: bool = False, check_hip: bool = False, example_inputs: tuple | None = None, shape_profile: dict | None = None,
            buckets: dict | None = None, check_ptx: bool = False, tune: int = 0, no_fusion: bool = False,
            dump_dir: str | None = None, compile_to: str | None = None, progress=None,
            precision: str | None = None) -> "CompiledModel":
    """Compile ``model`` (a path to an ``.onnx``, an ``onnx.ModelProto``, or a ``torch.nn.Module`` with
    ``example_inputs``, exported through torch's ONNX exporter with its ``forward``'s parameter names as input
    names) with ``pipeline`` for the GPU ``arch`` (default h200; ``tilec compile --arch``) and return it
    ready to run on ``backend`` (None: :func:`default_backend`, decided at the first run). For
    ``torch.compile`` see ``tilec.torch_backend``.
    ``input_shapes`` pins dynamic dims (``{"x": [1, 128]}``), as ``--input-shape`` does; ``shape_profile``
    (``{"x": "1..32x128"}`` or ``{"x": [(1, 32), 128]}``) builds one build per bucket instead, as
    ``--shape-profile`` does, with ``buckets`` (``{"seq": [128, 512]}``) as ``--buckets`` (``driver_profile``).
    ``check_ptx``, ``check_nvrtc``, ``tune``, ``no_fusion``, ``dump_dir``, ``compile_to`` and ``precision``
    (fp32, tf32, fp16, bf16: what the contractions compute in; None: the model's own types) are ``tilec
    compile``'s options of those names (``driver.compile_model``); ``progress(index, total, stage)`` is called
    before each stage. The returned model's ``compile_result`` says what was built (its ``summary()`` is the
    line ``tilec compile`` prints). Errors in the model are :class:`CompileError` (the CLI's exit 1)."""
    from .driver import compile_model
    if backend is not None:
        _backend(backend)   # an unknown backend fails before the compile
    if shape_profile and (input_shapes or compile_to):
        raise CompileError("give input_shapes or shape_profile, not both (a profile fixes every bucket's shapes)"
                           if input_shapes else "compile_to stops one compile, and a shape_profile makes one per bucket")
    if buckets and not shape_profile:
        raise CompileError("buckets chooses the buckets of a shape_profile: give one")
    owner = None
    if build_dir is None:
        owner = tempfile.TemporaryDirectory(prefix="tilec-build-")
        build_dir = str(Path(owner.name) / "build")
    _check_build_dir(build_dir)
    options = dict(pipeline=pipeline, check_ptx=check_ptx, tune=tune, no_fusion=no_fusion, check_nvrtc=check_nvrtc,
                   check_hip=check_hip, arch=arch, dump_dir=dump_dir, progress=progress, precision=precision)
    with tempfile.TemporaryDirectory(prefix="tilec-model-") as scratch:
        path = _model_path(model, scratch, example_inputs)
        if shape_profile:
            from .driver_profile import compile_profile
            result = compile_profile(path, build_dir, _profiles(shape_profile), buckets, **options)
        else:
            result = compile_model(path, build_dir, compile_to=compile_to, input_shapes=input_shapes, **options)
    compiled = CompiledModel(build_dir, backend, _owner=owner)
    compiled.compile_result = result
    return compiled


def load(target: str, backend: str | None = None, *, input_shapes: dict | None = None, emu_order: str = "normal",
         emu_resident_limit: bool = False, emu_sms: int | None = None) -> "CompiledModel":
    """Open a build folder that ``tilec compile`` (or :func:`compile`) wrote, ready to run on ``backend``;
    with the ``numpy`` backend ``target`` may also be an ``.onnx`` or a ``.tir`` file, interpreted as it is
    (``input_shapes`` pins an .onnx's dynamic dims; without them it is imported at the shapes of each run's
    inputs). ``emu_order`` (normal, reverse, shuffle), ``emu_resident_limit`` and ``emu_sms`` are the
    emulator's options (``tilec run --emu-*``)."""
    backend = _backend(backend)
    if (emu_resident_limit or emu_sms) and backend != "emu":
        raise CompileError("--emu-resident-limit and --emu-sms are options of --backend emu")
    model = CompiledModel(target, backend, input_shapes=input_shapes, emu_order=emu_order,
                          emu_resident_limit=emu_resident_limit, emu_sms=emu_sms)
    model.runner()   # a missing or broken target fails here, before any input is read
    return model


def _check_build_dir(build_dir: str) -> None:
    """Refuse before compiling a build folder that cannot be written (the rename at the end checks again):
    a file in its place, its nearest existing parent a file, or a parent where no folder can be made."""
    target = Path(build_dir).resolve()
    if target.exists() and not target.is_dir():
        raise CompileError(f"build folder '{target}' exists and is not a folder")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CompileError(f"cannot write build folder '{target}': '{parent}' is not a folder")
    try:   # a folder made and removed at once: permissions, read-only and special file systems (/proc) all answer
        os.rmdir(tempfile.mkdtemp(dir=parent, prefix=".tilec-check-"))
    except OSError as e:
        raise CompileError(f"cannot write build folder '{target}': {e.strerror or e}") from None


def _profiles(shape_profile: dict) -> dict:
    """``{name: "1..32x128" | [(1, 32), 128]}`` -> ``{name: [(1, 32), 128]}``."""
    from .runtime.profile import parse_profile_spec
    out = {}
    for name, dims in shape_profile.items():
        try:
            out[name] = parse_profile_spec(f"{name}={dims}")[1] if isinstance(dims, str) else \
                [d if isinstance(d, int) else (int(d[0]), int(d[1])) for d in dims]
        except ValueError as e:
            raise CompileError(f"shape_profile: {e}") from None
    return out


def _backend(backend: str | None) -> str:
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise CompileError(f"unknown backend '{backend}' (available: {', '.join(BACKENDS)})")
    return backend


def _model_path(model, scratch: str, example_inputs: tuple | None = None) -> str:
    if isinstance(model, (str, Path)):
        return str(model)
    import onnx
    path = Path(scratch) / "model.onnx"
    if isinstance(model, onnx.ModelProto):
        onnx.save(model, str(path))
        return str(path)
    if not _is_torch_module(model):
        raise CompileError(f"tilec.compile takes a path to an .onnx file, an onnx.ModelProto or a "
                           f"torch.nn.Module, not {type(model).__name__}")
    if example_inputs is None:
        raise CompileError("tilec.compile of a torch.nn.Module needs example_inputs (a tuple of tensors)")
    import inspect
    import torch
    from .torch_backend import ExportError, export_onnx
    args = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    names = [n for n in inspect.signature(model.forward).parameters][:len(args)]
    model = model.eval()
    with torch.no_grad():
        count = len(torch.utils._pytree.tree_flatten(model(*args))[0])
        try:
            export_onnx(model, args, path, names, [f"output{i}" if count > 1 else "output" for i in range(count)])
        except ExportError as e:
            raise CompileError(str(e)) from None
    return str(path)


def _is_torch_module(model) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (a user's subclass lives in the user's module)."""
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


class CompiledModel:
    """A compiled build (or, on numpy, a model file) on one backend: ``input_names`` / ``output_names`` in
    the model's order, ``report`` the build's report.json, ``build_dir`` where it lives, ``compile_result``
    what :func:`compile` built (None after :func:`load`), ``last_bucket`` the bucket key the last run of a
    profile build took. The runner (``runners.py``) is made on first use."""

    def __init__(self, build_dir: str, backend: str | None, _owner=None, *, input_shapes: dict | None = None,
                 emu_order: str = "normal", emu_resident_limit: bool = False, emu_sms: int | None = None):
        self.build_dir, self._backend = str(build_dir), backend
        self._owner = _owner   # a TemporaryDirectory removed with this object
        if _owner is not None:
            weakref.finalize(self, _owner.cleanup)
        self._options = dict(input_shapes=input_shapes, emu_order=emu_order,
                             emu_resident_limit=emu_resident_limit, emu_sms=emu_sms)
        self.compile_result = None
        report = Path(build_dir, "report.json")
        self.report = json.loads(report.read_text()) if report.is_file() else {}
        self._runner = None

    @property
    def backend(self) -> str:
        """``numpy``, ``emu`` or ``cupy`` (the default is decided here, on first use)."""
        if self._backend is None:
            self._backend = _backend(None)
        return self._backend

    def runner(self):
        """The runner that executes this model (``runners.make_runner``); errors in the target surface here."""
        if self._runner is None:
            from .runners import make_runner
            self._runner = make_runner(self.build_dir, self.backend, **self._options)
        return self._runner

    @property
    def input_names(self) -> list:
        return list(self.runner().input_names)

    @property
    def output_names(self) -> list:
        return list(self.runner().output_names)

    @property
    def last_bucket(self) -> str | None:
        choice = getattr(self.runner(), "last_choice", None)
        return None if choice is None else choice.bucket["key"]

    @property
    def last_choice(self):
        """The ``runtime.profile.Choice`` of a profile build's last run (None otherwise)."""
        return getattr(self.runner(), "last_choice", None)

    def __repr__(self) -> str:
        return (f"CompiledModel({self.build_dir!r}, backend={self.backend!r}, inputs={self.input_names}, "
                f"outputs={self.output_names})")

    def check_inputs(self, feeds: dict, cast: bool = False) -> dict:
        """``feeds`` as the host arrays a run takes: every input present, no unknown name, the declared dtype
        (converted when ``cast``, else an error) and shape, and, for a profile build, a bucket that fits.
        :meth:`run` does this itself; ``tilec run`` calls it first so a bad input fails before anything else."""
        from .runtime.array_files import conform_inputs
        from .runtime.device_arrays import as_cupy, is_device_array, to_host
        runner = self.runner()
        # On the GPU backend, arrays already on the GPU stay there (DLPack); everything else goes to the host.
        on_gpu = self.backend in ("cupy", "hip")
        host = {k: as_cupy(v) if on_gpu and is_device_array(v) else to_host(v) for k, v in feeds.items()}
        inputs = conform_inputs(host, runner.declared(host), cast)
        if hasattr(runner, "choose"):
            runner.choose(inputs)
        return inputs

    def run(self, output_names, feeds: dict, cast: bool = False) -> list:
        """onnxruntime's ``InferenceSession.run``: the outputs named in ``output_names`` (None: all), in that
        order, as a list. ``cast`` converts inputs of another dtype instead of refusing them."""
        outputs = self.runner().run(self.check_inputs(feeds, cast))
        names = self.output_names if output_names is None else list(output_names)
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise CompileError(f"unknown output(s): {', '.join(unknown)} (the model gives "
                               f"{', '.join(self.output_names)})")
        from .runtime.device_arrays import like
        example = next(iter(feeds.values()), None)
        return [like(outputs[n], example) for n in names]

    def __call__(self, /, **feeds) -> dict:
        """The outputs by name, in the model's order."""
        values = self.run(None, feeds)   # first: an .onnx imported at these shapes names its outputs here
        return dict(zip(self.output_names, values))

    def time(self, feeds: dict, repeat: int = 10, cuda_graph: bool = False, cast: bool = False) -> list:
        """Seconds of each of ``repeat`` more runs of the whole model (``cuda_graph``: replays of a captured
        CUDA graph, cupy); they count in :meth:`run_report`."""
        return self.runner().time(self.check_inputs(feeds, cast), repeat, cuda_graph)

    def run_report(self, extra: dict | None = None) -> dict:
        """What ``tilec run --report`` writes for the runs so far: backend, totals (launches, bytes, host
        syncs, seconds), a row per kernel, and for a profile build the bucket of the last run."""
        return self.runner().report(extra)
