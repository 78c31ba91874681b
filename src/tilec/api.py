"""tilec as a library: compile a model once, call it like onnxruntime's ``InferenceSession``.

    import tilec
    model = tilec.compile("samples/mlp.onnx", backend="numpy")   # or an onnx.ModelProto
    (y,) = model.run(None, {"x": x})                             # InferenceSession.run's contract
    y = model(x=x)["y"]                                          # or by output name

``compile`` writes an ordinary build folder (``build_dir``, or a temporary one the returned model owns and
removes when it is garbage-collected) with ``driver.compile_model``, the CLI's own path; ``load`` opens an
existing one. The backend runs it: ``numpy`` (the reference interpreter on the build's IR before lower-cuda),
``emu`` (the generated CUDA under the CPU emulator) or ``cupy`` (a GPU); the default is ``cupy`` where CuPy
sees a GPU, else ``numpy``. Inputs are checked against the model's declared names, dtypes and shapes
(``runtime/array_files.conform_inputs``). Numpy arrays, CuPy arrays and torch tensors are accepted, and the
outputs come back as the kind of the first input (today through host memory: the executor copies inputs
into its own arena on every backend).
"""
from __future__ import annotations

import json
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
            buckets: dict | None = None, precision: str | None = None) -> "CompiledModel":
    """Compile ``model`` (a path to an ``.onnx``, an ``onnx.ModelProto``, or a ``torch.nn.Module`` with
    ``example_inputs``, exported through torch's ONNX exporter with its ``forward``'s parameter names as input
    names) with ``pipeline`` for the GPU ``arch`` (default h200; ``tilec compile --arch``) and return it
    ready to run on ``backend``. For ``torch.compile`` see ``tilec.torch_backend``.
    ``input_shapes`` pins dynamic dims (``{"x": [1, 128]}``), as ``--input-shape`` does; ``shape_profile``
    (``{"x": "1..32x128"}`` or ``{"x": [(1, 32), 128]}``) builds one build per bucket instead, as
    ``--shape-profile`` does, with ``buckets`` (``{"seq": [128, 512]}``) as ``--buckets`` (``driver_profile``).
    ``precision`` (fp32, tf32, fp16, bf16: what the contractions compute in; None: the model's own types) is
    ``tilec compile --precision``. Errors in the model are :class:`CompileError` (the CLI's exit 1)."""
    from .driver import compile_model
    backend = _backend(backend)
    if shape_profile and input_shapes:
        raise CompileError("give input_shapes or shape_profile, not both (a profile fixes every bucket's shapes)")
    owner = None
    if build_dir is None:
        owner = tempfile.TemporaryDirectory(prefix="tilec-build-")
        build_dir = str(Path(owner.name) / "build")
    with tempfile.TemporaryDirectory(prefix="tilec-model-") as scratch:
        path = _model_path(model, scratch, example_inputs)
        if shape_profile:
            from .driver_profile import compile_profile
            compile_profile(path, build_dir, _profiles(shape_profile), buckets, pipeline=pipeline,
                            check_nvrtc=check_nvrtc, check_hip=check_hip, arch=arch, precision=precision)
        else:
            compile_model(path, build_dir, pipeline=pipeline, input_shapes=input_shapes,
                          check_nvrtc=check_nvrtc, check_hip=check_hip, arch=arch, precision=precision)
    return CompiledModel(build_dir, backend, _owner=owner)


def load(build_dir: str, backend: str | None = None) -> "CompiledModel":
    """Open a build folder that ``tilec compile`` (or :func:`compile`) wrote."""
    if not Path(build_dir, "plan.json").is_file() and not Path(build_dir, "profile.json").is_file():
        raise CompileError(f"'{build_dir}' is not a tilec build folder (no plan.json)")
    return CompiledModel(build_dir, _backend(backend))


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
    backend = backend or default_backend()
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
    """A compiled build on one backend. ``input_names`` / ``output_names`` in the model's order, ``report``
    the build's report.json, ``build_dir`` where it lives."""

    def __init__(self, build_dir: str, backend: str, _owner=None):
        self.build_dir, self.backend = str(build_dir), backend
        self._owner = _owner   # a TemporaryDirectory removed with this object
        if _owner is not None:
            weakref.finalize(self, _owner.cleanup)
        root = Path(build_dir)
        from .runtime.profile import load_profile
        self._profile = load_profile(root)   # a profile build: each bucket runs as a CompiledModel of its own
        self._buckets: dict = {}
        self.last_bucket = None   # the key of the bucket the last run of a profile build took
        if self._profile is not None:
            self._declared = self._profile.declared()
            self.input_names, self.output_names = self._profile.input_names, self._profile.output_names
        else:
            from .backend.plan import plan_inputs
            plan = json.loads((root / "plan.json").read_text())
            self._declared = plan_inputs(plan)
            self.input_names = [n for n, _, _ in self._declared]
            self.output_names = [o["name"] for o in plan["outputs"]]
        self.report = json.loads((root / "report.json").read_text()) if (root / "report.json").is_file() else {}
        self._runner = None

    def __repr__(self) -> str:
        return (f"CompiledModel({self.build_dir!r}, backend={self.backend!r}, inputs={self.input_names}, "
                f"outputs={self.output_names})")

    def run(self, output_names, feeds: dict, cast: bool = False) -> list:
        """onnxruntime's ``InferenceSession.run``: the outputs named in ``output_names`` (None: all), in that
        order, as a list. ``cast`` converts inputs of another dtype instead of refusing them."""
        from .runtime.array_files import conform_inputs
        host = {k: _to_numpy(v) for k, v in feeds.items()}
        outputs = self._run(conform_inputs(host, self._declared, cast))
        names = self.output_names if output_names is None else list(output_names)
        unknown = [n for n in names if n not in outputs]
        if unknown:
            raise CompileError(f"unknown output(s): {', '.join(unknown)} (the model gives "
                               f"{', '.join(self.output_names)})")
        like = next(iter(feeds.values()), None)
        return [_like(outputs[n], like) for n in names]

    def __call__(self, **feeds) -> dict:
        """The outputs by name."""
        return dict(zip(self.output_names, self.run(None, feeds)))

    def _run(self, inputs: dict) -> dict:
        if self._profile is not None:
            choice = self._profile.choose({n: a.shape for n, a in inputs.items()})
            key = choice.bucket["key"]
            if key not in self._buckets:
                self._buckets[key] = CompiledModel(str(self._profile.bucket_dir(choice)), self.backend)
            self.last_bucket = key
            return self._profile.unpad(self._buckets[key]._run(self._profile.pad(inputs, choice)), choice)
        if self.backend == "numpy":
            if self._runner is None:
                from .driver import load_target
                self._runner = load_target(self.build_dir)   # the IR before lower-cuda
            from .runtime.interpreter import run_module
            return run_module(self._runner, inputs)
        if self._runner is None:
            from .driver import make_executor
            self._runner = make_executor(self.build_dir, self.backend)
        return self._runner.run(inputs)


def _to_numpy(value) -> np.ndarray:
    """A host array for a numpy array, a CuPy array, a torch tensor or anything ``np.asarray`` takes."""
    if isinstance(value, np.ndarray):
        return value
    module = type(value).__module__.split(".")[0]
    if module == "torch":
        return value.detach().cpu().numpy()
    if module == "cupy":
        return value.get()
    return np.asarray(value)


def _like(array: np.ndarray, example):
    """``array`` as the kind of ``example`` (a torch tensor on its device, a CuPy array, or numpy)."""
    module = type(example).__module__.split(".")[0] if example is not None else "numpy"
    if module == "torch":
        import torch
        return torch.from_numpy(np.ascontiguousarray(array)).to(example.device)
    if module == "cupy":
        import cupy
        return cupy.asarray(array)
    return array
