"""tilec as a ``torch.compile`` backend: ``torch.compile(module, backend="tilec")``.

TorchDynamo captures each graph of a module's forward as an FX ``GraphModule`` and hands it, with example
inputs, to :func:`tilec_backend` (registered under the ``torch_dynamo_backends`` entry point in pyproject.toml,
so the name resolves once tilec is installed). The graph goes to tilec through torch's ONNX exporter, then
``tilec.compile`` builds it; the returned callable runs the build on tilec's backend (``numpy``, ``emu`` or
``cupy``, :func:`tilec.api.default_backend` when not given) and hands back torch tensors on the inputs' device.

Options (``torch.compile(m, backend="tilec", options={...})``): ``backend``, ``pipeline``, ``arch`` as for
``tilec.compile``, and ``freeze`` (default False). Dynamo lifts a module's parameters and buffers into graph
inputs; by default they stay inputs of the tilec build, so a weight updated in place is seen by the next call.
``freeze=True`` bakes their values in at compile time (as Inductor's ``freezing``): constant folding and weight
layouts can then work on them, and later updates to them are not seen.

Whatever tilec cannot take -- a graph the exporter refuses, an op tilec does not convert, symbolic shapes
(``torch.compile(..., dynamic=False)`` avoids them), a graph that needs gradients -- runs eagerly instead,
with one :class:`TilecFallbackWarning` naming the reason, so a model always runs.
"""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

from .ir.diagnostics import CompileError

OPTIONS = ("backend", "pipeline", "arch", "freeze")


class TilecFallbackWarning(UserWarning):
    """A captured graph runs eagerly because tilec could not compile it (the message says why)."""


class _Unsupported(Exception):
    """Why a graph cannot go to tilec (becomes the fallback warning)."""


class ExportError(_Unsupported):
    """torch's ONNX exporter could not export the module."""


def tilec_backend(gm, example_inputs, options: dict | None = None, mode: str | None = None):
    """The dynamo backend: a callable that runs ``gm`` through tilec, or ``gm.forward`` (eager) with a
    :class:`TilecFallbackWarning` where tilec cannot compile it. ``mode`` is accepted and ignored."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:   # a typo in the user's options is their error, not a reason to fall back silently
        raise ValueError(f"unknown tilec option(s) {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    try:
        return _compile_graph(gm, list(example_inputs), options)
    except (_Unsupported, CompileError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        warnings.warn(f"tilec: running this graph eagerly: {reason}", TilecFallbackWarning, stacklevel=2)
        return gm.forward


def _compile_graph(gm, example_inputs: list, options: dict):
    import torch
    for i, x in enumerate(example_inputs):
        if not isinstance(x, torch.Tensor):
            raise _Unsupported(f"graph input {i} is a {type(x).__name__}, not a tensor (symbolic shapes: "
                               "use torch.compile(..., dynamic=False))")
    if torch.is_grad_enabled() and any(x.requires_grad for x in example_inputs):
        raise _Unsupported("the graph needs gradients, and tilec compiles inference graphs "
                           "(run it under torch.no_grad() or torch.inference_mode())")
    frozen = [_is_weight(x) for x in example_inputs] if options.get("freeze") else [False] * len(example_inputs)
    runtime = [i for i, f in enumerate(frozen) if not f]
    example_out = gm(*example_inputs)
    flat_out, out_spec = torch.utils._pytree.tree_flatten(example_out)
    if not all(isinstance(t, torch.Tensor) for t in flat_out):
        raise _Unsupported("the graph returns something other than tensors")
    from .api import compile as tilec_compile
    with tempfile.TemporaryDirectory(prefix="tilec-dynamo-") as scratch:
        path = Path(scratch) / "graph.onnx"
        wrapper = _frozen_module(gm, example_inputs, frozen)
        export_onnx(wrapper, tuple(example_inputs[i] for i in runtime), path,
                    [f"in{i}" for i in range(len(runtime))], [f"out{i}" for i in range(len(flat_out))])
        compiled = tilec_compile(str(path), pipeline=options.get("pipeline", "default"), arch=options.get("arch"),
                                 backend=options.get("backend"))

    def run(*args):
        feeds = {f"in{j}": args[i] for j, i in enumerate(runtime)}
        outs = compiled.run(None, feeds)   # torch tensors on the first input's device (numpy if none)
        return torch.utils._pytree.tree_unflatten(
            [torch.as_tensor(o).to(device=t.device, dtype=t.dtype) for o, t in zip(outs, flat_out)], out_spec)
    run.tilec_model = compiled   # for inspection: the build, its report
    return run


def _is_weight(x) -> bool:
    """A parameter or a registered buffer that dynamo lifted into a graph input: dynamo marks both as static
    inputs (``_dynamo_static_input_type``); activations carry no mark."""
    import torch
    return isinstance(x, torch.nn.Parameter) or bool(getattr(x, "_dynamo_static_input_type", None))


def _frozen_module(gm, example_inputs: list, frozen: list):
    """A module whose forward takes only the non-frozen inputs; the frozen ones are its buffers, so the
    exporter writes them as initializers."""
    import torch

    class Frozen(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.gm = gm
            for i, f in enumerate(frozen):
                if f:
                    self.register_buffer(f"w{i}", example_inputs[i].detach(), persistent=True)

        def forward(self, *args):
            it = iter(args)
            full = [getattr(self, f"w{i}") if f else next(it) for i, f in enumerate(frozen)]
            return self.gm(*full)
    return Frozen()


def export_onnx(module, args: tuple, path: Path, input_names: list, output_names: list) -> None:
    """``module(*args)`` exported to ONNX at ``path``: the TorchScript exporter where this torch still has it
    (fast, no extra dependency), else the torch.export-based one. Exporter failures are :class:`ExportError`."""
    import torch
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the legacy exporter's deprecation notice is not the user's concern
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              dynamo=False, opset_version=17)
        return
    except Exception as legacy_error:  # noqa: BLE001 - any exporter failure: try the other, then give up
        first = f"{type(legacy_error).__name__}: {legacy_error}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, args, str(path), input_names=input_names, output_names=output_names,
                              dynamo=True)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"torch's ONNX exporter failed: {first.splitlines()[0]} / "
                           f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
