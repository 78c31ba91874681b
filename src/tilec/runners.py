"""How a :class:`tilec.api.CompiledModel` executes: one runner per kind of target.

- :class:`InterpreterRunner` (backend ``numpy``): the reference interpreter on a module: a build folder's IR
  before lower-cuda (``reference.tir``), a ``.tir`` file, or an ``.onnx`` imported on the spot. An ``.onnx``
  with dynamic dims and no pinned shapes is imported at the shapes of the arrays it is given (``tilec run
  MODEL.onnx --inputs X.npz``), once per distinct set of shapes.
- :class:`PlanRunner` (``emu``, ``cupy``): a build folder's plan.json on an ``Executor``.
- :class:`ProfileRunner`: a profile build (``profile.json``, ``driver_profile``): the bucket that fits the
  inputs runs on a runner of its own, padded inputs in, outputs sliced back.

Every runner answers ``input_names``, ``output_names``, ``declared(inputs)`` (``(name, dtype, shape)`` per
input, what ``runtime/array_files.conform_inputs`` holds the inputs to), ``run(inputs) -> {output: array}``,
``time(inputs, repeat, cuda_graph)`` (seconds per run) and ``report(extra)`` (RUN.json's content for the runs
so far). Errors are :class:`CompileError` with the messages ``tilec run`` prints.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .ir.diagnostics import CompileError

MAX_SHAPE_SETS = 8   # modules a dynamic .onnx keeps imported at once (one per distinct set of input shapes)


def make_runner(target: str, backend: str, input_shapes: dict | None = None, emu_order: str = "normal",
                emu_resident_limit: bool = False, emu_sms: int | None = None):
    """The runner for ``target`` (a build folder; for ``numpy`` also a ``.onnx`` or ``.tir``) on ``backend``."""
    from .runtime.profile import load_profile
    profile = load_profile(target) if Path(target).is_dir() else None
    if profile is not None:
        return ProfileRunner(profile, lambda d: make_runner(d, backend, None, emu_order, emu_resident_limit,
                                                            emu_sms))
    if backend == "numpy":
        return InterpreterRunner(target, input_shapes)
    return PlanRunner(target, backend, emu_order, emu_resident_limit, emu_sms)


class InterpreterRunner:
    """The reference interpreter (``runtime/interpreter.run_module``) on a build folder, a .tir or a .onnx."""

    def __init__(self, target: str, input_shapes: dict | None = None):
        self.target, self.seconds = str(target), 0.0
        self._module, self._modules, self._dynamic, self._declared = None, {}, None, None
        path = Path(target)
        if path.is_dir() and (path / "plan.json").is_file():   # a build: the names from its plan, IR on first run
            self._declared, self.output_names = _plan_io(str(path))
            self.input_names = [n for n, _, _ in self._declared]
            return
        if not input_shapes and path.suffix == ".onnx" and not path.is_dir():
            self._dynamic = _onnx_dynamic_inputs(str(path))   # None when every input's shape is fixed
        if self._dynamic is None:
            self._set_module(_load_target(self.target, input_shapes))
        else:
            self.input_names, self.output_names, _ = self._dynamic

    def _set_module(self, module) -> None:
        from .ir.core import main_function
        fn = main_function(module)
        self._module, self._declared = module, module_inputs(fn)
        self.input_names = [n for n, _, _ in self._declared]
        returned = fn.body.terminator.operands if fn.body.terminator is not None else []
        # run_module's names for the outputs
        hidden = set((fn.attributes.get("result_rows") or {}).values())   # row counts (ir/row_counts.py)
        self.output_names = [n for n in fn.attributes.get("result_names") or [f"out{i}" for i in range(len(returned))]
                             if n not in hidden]

    def declared(self, inputs: dict | None = None) -> list:
        """The inputs' ``(name, dtype, shape)``; a dynamic .onnx is imported at the shapes of ``inputs`` first
        (the importer checks its fixed dims against them)."""
        if self._dynamic is not None and inputs is not None:
            from .runtime.array_files import check_names
            check_names(inputs, self.input_names)   # a misnamed array, not a shape, is what to report
            dynamic = self._dynamic[2]
            shapes = {n: tuple(int(d) for d in inputs[n].shape) for n in dynamic if n in inputs}
            key = tuple(sorted(shapes.items()))
            if key not in self._modules:
                if len(self._modules) >= MAX_SHAPE_SETS:
                    self._modules.pop(next(iter(self._modules)))
                self._modules[key] = _load_target(self.target, shapes)
            self._set_module(self._modules[key])
        return self._declared

    def run(self, inputs: dict) -> dict:
        from .runtime.interpreter import run_module
        self.declared(inputs)
        if self._module is None:
            self._set_module(_load_target(self.target))   # a build folder's reference.tir (the IR before lower-cuda)
        start = time.perf_counter()
        outputs = run_module(self._module, inputs)
        self.seconds += time.perf_counter() - start
        return outputs

    def time(self, inputs: dict, repeat: int = 10, cuda_graph: bool = False) -> list:
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            self.run(inputs)
            times.append(time.perf_counter() - start)
        return times

    def report(self, extra: dict | None = None) -> dict:
        return {"backend": "numpy", "totals": {"launches": 0, "global_bytes": None, "host_syncs": 0,
                                               "seconds": round(self.seconds, 9)}, "kernels": [], **(extra or {})}


class PlanRunner:
    """A build folder's plan.json on the emulator (``emu``) or a GPU (``cupy``); the device is made on first run."""

    def __init__(self, build_dir: str, backend: str, emu_order: str = "normal", emu_resident_limit: bool = False,
                 emu_sms: int | None = None):
        if not Path(build_dir, "plan.json").is_file():
            raise CompileError(f"--backend {backend} runs a build folder ('tilec compile' writes one); "
                               f"'{build_dir}' is not one")
        self.build_dir, self.backend = str(build_dir), backend
        self.options = (emu_order, emu_resident_limit, emu_sms)
        self._declared, self.output_names = _plan_io(self.build_dir)
        self.input_names = [n for n, _, _ in self._declared]
        self._executor = None

    def declared(self, inputs: dict | None = None) -> list:
        return self._declared

    def executor(self):
        if self._executor is None:
            from .driver import make_executor
            self._executor = make_executor(self.build_dir, self.backend, *self.options)
        return self._executor

    def run(self, inputs: dict) -> dict:
        return self.executor().run(inputs)

    def time(self, inputs: dict, repeat: int = 10, cuda_graph: bool = False) -> list:
        return self.executor().time(inputs, repeat=repeat, cuda_graph=cuda_graph)

    def report(self, extra: dict | None = None) -> dict:
        order, resident_limit, sms = self.options
        mine = {"order": order} if self.backend == "emu" else {}
        if self.backend == "emu" and resident_limit:
            mine["resident_limit"] = {"num_sms": sms} if sms else True
        return self.executor().report({**mine, **(extra or {})})


class ProfileRunner:
    """A profile build: each run takes the smallest bucket that fits (``runtime/profile.Profile.choose``) on a
    runner of its own, made by ``make_bucket(bucket_dir)`` on first use. ``last_choice`` is the last run's."""

    def __init__(self, profile, make_bucket):
        self.profile, self._make_bucket = profile, make_bucket
        self.input_names, self.output_names = profile.input_names, profile.output_names
        self._buckets: dict = {}
        self.last_choice, self._last = None, None

    def declared(self, inputs: dict | None = None) -> list:
        return self.profile.declared()

    def choose(self, inputs: dict):
        """The bucket for ``inputs``' shapes, or a CompileError listing the profile."""
        return self.profile.choose({n: a.shape for n, a in inputs.items()})

    def _bucket(self, inputs: dict) -> tuple:
        from .runtime.array_files import conform_inputs
        choice = self.choose(inputs)
        key = choice.bucket["key"]
        if key not in self._buckets:
            self._buckets[key] = self._make_bucket(str(self.profile.bucket_dir(choice)))
        runner = self._buckets[key]
        padded = self.profile.pad(inputs, choice)
        return choice, runner, conform_inputs(padded, runner.declared(padded))

    def run(self, inputs: dict) -> dict:
        choice, runner, padded = self._bucket(inputs)
        outputs = runner.run(padded)
        self.last_choice, self._last = choice, runner
        return self.profile.unpad(outputs, choice)

    def time(self, inputs: dict, repeat: int = 10, cuda_graph: bool = False) -> list:
        choice, runner, padded = self._bucket(inputs)
        return runner.time(padded, repeat, cuda_graph)

    def report(self, extra: dict | None = None) -> dict:
        if self._last is None:
            raise CompileError("a profile build's report covers its runs: run it first")
        report = self._last.report(extra)
        c = self.last_choice
        report["bucket"] = {"key": c.bucket["key"], "dims": c.bucket["dims"],
                            "padded": {d: {"given": a, "bucket": b} for d, (a, b) in c.padded.items()}}
        return report


def module_inputs(fn) -> list:
    """``(name, dtype, shape)`` of a function's inputs (shape None where a dim is not a number)."""
    from .ir.core import arg_names
    out = []
    for name, a in zip(arg_names(fn), fn.body.args):
        shape = tuple(a.type.shape)
        out.append((name, a.type.dtype, shape if all(isinstance(d, int) for d in shape) else None))
    return out


def _load_target(target: str, input_shapes: dict | None = None):
    from .driver import load_target
    return load_target(target, input_shapes)


def _plan_io(build_dir: str) -> tuple:
    """A build folder's inputs ``(name, dtype, shape)`` and output names, from its plan.json."""
    from .backend.plan import plan_inputs
    try:
        plan = json.loads(Path(build_dir, "plan.json").read_text())
        hidden = set((plan.get("result_rows") or {}).values())   # row counts (ir/row_counts.py)
        return plan_inputs(plan), [o["name"] for o in plan["outputs"] if o["name"] not in hidden]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CompileError(f"'{build_dir}' has an unreadable plan.json ({type(e).__name__}: {e}): "
                           "compile it again") from None


def _onnx_dynamic_inputs(path: str) -> tuple | None:
    """``(input names, output names, names of the inputs with a dynamic dim)`` of the ONNX model at ``path``,
    or None when every input's shape is fixed (then it is imported at once)."""
    from .frontend.onnx_load import load_model
    model, _, _ = load_model(path)
    weights = {t.name for t in model.graph.initializer}
    graph_inputs = [vi for vi in model.graph.input if vi.name not in weights]
    dynamic = [vi.name for vi in graph_inputs if not vi.type.tensor_type.HasField("shape")
               or any(not d.HasField("dim_value") for d in vi.type.tensor_type.shape.dim)]
    if not dynamic:
        return None
    return [vi.name for vi in graph_inputs], [o.name for o in model.graph.output], dynamic
