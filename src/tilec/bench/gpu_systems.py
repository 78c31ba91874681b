"""The systems ``make gpu-check`` / ``make gpu-bench`` measure, one function per row kind, each run in its own
process by ``tilec.bench.gpu_row``. Every one checks its outputs against onnxruntime on the CPU first (relative
error: max |got - want| / max(1, max |want|)), then times with ``tilec.bench.timing.hot_cold``.

* ``tilec``: compile (no ptxas: CuPy loads kernels with NVRTC; ``compile_only`` stops there, ``reuse_build``
  skips it when the build exists; ``nvrtc_warm`` also compiles every kernel for the GPU's ``sm_XX`` into
  tilec's NVRTC cache, so the parallel compile phase pays for NVRTC and the one-at-a-time measure phase loads
  cubins), run on the device, then time the whole plan, replayed as a CUDA graph when it has no host ops;
  events on the executor's stream.
* ``ort``: onnxruntime's CUDA provider on a stream we own (``user_compute_stream``), inputs and outputs bound on
  the device (I/O binding); events on that stream around ``run_with_iobinding``.
* ``torch``: the ONNX graph op by op with torch ops (``tilec.bench.torch_onnx``), eager or ``torch.compile``
  (``mode`` is passed through: ``max-autotune-no-cudagraphs``, ``max-autotune`` = with CUDA graphs).
* ``cublas``: ``torch.matmul`` on square matrices in f32, tf32, f16 or bf16, against the spec's peak.
* ``sdpa``: ``torch.nn.functional.scaled_dot_product_attention`` on an attention model's Q, Kᵀ (transposed
  before timing) and V with the model's scale, FlashAttention's kernel on a GPU (``sdpa_kernel``).
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import numpy as np

from .measure import max_abs_err, onnx_feeds
from .rowrun import error_line
from .timing import CupyClock, TorchClock, WallClock, cupy_flush, host_flush, hot_cold, torch_flush


class Skip(Exception):
    """The row cannot run here (a package or the GPU is missing): recorded as ``skipped``, not ``failed``."""


def reference(model: str) -> tuple[dict, dict]:
    """(feeds, onnxruntime CPU outputs): the ground truth every system is compared with. onnxruntime's CPU
    kernels take no bf16: a bf16 model runs as its f32 copy on the same (exactly widened) inputs."""
    import onnxruntime as ort
    feeds = onnx_feeds(model)
    bf16 = {k for k, v in feeds.items() if v.dtype.name == "bfloat16"}
    widened = {k: v.astype(np.float32) if k in bf16 else v for k, v in feeds.items()}
    sess = ort.InferenceSession(_widened(model) if bf16 else model, providers=["CPUExecutionProvider"])
    return feeds, dict(zip([o.name for o in sess.get_outputs()], sess.run(None, widened)))


def _widened(model: str) -> bytes:
    """The serialized model with every bf16 input, output, value and initializer made f32."""
    import onnx
    from onnx import TensorProto, numpy_helper
    m = onnx.load(model)
    for vi in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
        if vi.type.tensor_type.elem_type == TensorProto.BFLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    for i, t in enumerate(m.graph.initializer):
        if t.data_type == TensorProto.BFLOAT16:
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(
                numpy_helper.to_array(t).astype(np.float32), t.name))
    return m.SerializeToString()


def rel_err(got: dict, want: dict) -> float:
    scale = max([1.0] + [float(np.max(np.abs(np.asarray(v, np.float64)), initial=0.0)) for v in want.values()])
    return max_abs_err(got, want) / scale


def l2_bytes(spec: dict, device_value: int | None) -> int:
    """The device's L2 size when it reports one, else the arch spec's."""
    if device_value:
        return int(device_value)
    from ..analysis.hardware import get_arch
    return get_arch(spec.get("arch", "h200")).l2_bytes


def arch_for(gpu_name: str | None, default: str = "h200") -> str:
    """The arch spec (``analysis/hw/<arch>.json``) whose name appears in the GPU's name (``NVIDIA H100 80GB
    HBM3`` -> ``h100``), else ``default``: peaks and bandwidths come from the card measured."""
    from ..analysis.hardware import available_archs
    name = (gpu_name or "").lower()
    return next((a for a in available_archs() if a in name), default)


def gpu_name() -> str | None:
    """Device 0's name, asked through CuPy, else torch; None where neither answers."""
    try:
        import cupy
        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # noqa: BLE001 - no CuPy (a torch row): ask torch
        pass
    try:
        import torch
        return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001
        return None


def device_arch(spec: dict) -> str:
    """``arch_for`` of device 0 on a GPU run, else the spec's ``arch`` (default h200)."""
    default = spec.get("arch", "h200")
    return arch_for(gpu_name(), default) if spec.get("device") == "cuda" else default


def roofline(spec: dict, row: dict) -> None:
    """Where ``spec["roofline"]`` gives the FLOPs and lower-bound bytes of a single-op model: the bound
    max(FLOPs / peak of its ``dtype`` (fp32, or tensor cores for f16/bf16), bytes / DRAM bandwidth) of the
    measured card's spec, and what the row reached (TFLOP/s against that peak for f16/bf16, as cuBLAS's rows)."""
    from ..analysis.hardware import get_arch
    from ..analysis.speed_of_light import bound_seconds, peak_flops
    arch = device_arch(spec)
    hw, flops, nbytes = get_arch(arch), spec["roofline"]["flops"], spec["roofline"]["bytes"]
    dtype = spec["roofline"].get("dtype", "f32")
    compute, memory = bound_seconds(hw, flops, 0, dtype), bound_seconds(hw, 0, nbytes)
    row.update(arch=arch, gflop=flops / 1e9, bound_ms=max(compute, memory) * 1e3,
               bound="compute" if compute > memory else "memory")
    if dtype != "f32" and row.get("hot_ms"):
        _reached(row, flops, peak_flops(hw, dtype))


def _reached(row: dict, flops: float, peak: float) -> None:
    """The row's TFLOP/s, hot and cold, and its hot share of ``peak`` (FLOP/s; None where the spec has none)."""
    row.update(peak_tflops=peak / 1e12, hot_tflops=flops / (row["hot_ms"] * 1e-3) / 1e12,
               cold_tflops=flops / (row["cold_ms"] * 1e-3) / 1e12)
    row["hot_pct_peak"] = 100 * row["hot_tflops"] * 1e12 / peak if peak else None


def tilec(spec: dict, row: dict) -> None:
    from ..driver import compile_model, make_executor
    row["step"] = "compile"
    on_gpu = spec["backend"] in ("cupy", "hip")  # hip: an AMD GPU (tilec.bench.gpu_mode)
    if on_gpu and spec.get("device_arch_fixed"):  # gpu-check's --arch, or the arch the AMD GPU's ISA maps to
        row["arch"] = spec["arch"]
    else:
        row["arch"] = device_arch({**spec, "device": "cuda"}) if on_gpu else spec.get("arch", "h200")
    if not (spec.get("reuse_build") and Path(spec["build"], "plan.json").is_file()):
        t0 = time.perf_counter()
        compile_model(spec["model"], spec["build"], pipeline=spec["pipeline"], arch=row["arch"])
        row["compile_s"] = round(time.perf_counter() - t0, 2)
    if spec.get("nvrtc_warm"):
        row["step"] = "nvrtc"
        t0 = time.perf_counter()
        row["nvrtc_kernels"] = warm_nvrtc(spec["build"], gpu_sm_arch())
        row["nvrtc_s"] = round(time.perf_counter() - t0, 2)
    if spec.get("compile_only"):
        return
    row["step"] = "reference"
    feeds, want = reference(spec["model"])
    plan = json.loads(Path(spec["build"], "plan.json").read_text())
    row["step"] = "run"
    ex = make_executor(spec["build"], spec["backend"])
    row["rel_err"] = rel_err(ex.run(feeds), want)
    totals = ex.report()["totals"]
    report = json.loads(Path(spec["build"], "report.json").read_text())
    row.update(kernels=report["totals"]["kernels"], launches=totals["launches"], host_ops=len(plan["host_ops"]))
    row["step"] = "time"
    ex.set_inputs(feeds)
    fn = lambda: ex.run_steps(timed=False, poison=False)  # noqa: E731
    if on_gpu:
        import cupy
        clock = CupyClock(ex.device.stream)
        flush = cupy_flush(ex.device.stream, l2_bytes(spec, cupy.cuda.Device().attributes.get("L2CacheSize")))
        row["cuda_graph"] = False
        if plan["host_ops"]:  # host ops and host-driven loops / ifs read values back: no graph replays that
            row["graph_error"] = "the plan runs on the host: " + ", ".join(sorted(set(plan["host_ops"])))
        else:
            try:
                # the executor's own --cuda-graph checks first (a fallback that reads the device back on this
                # GPU is refused before any capture): zero timed runs, only the checks and a throwaway capture
                ex.time(feeds, repeat=0, warmup=0, cuda_graph=True)
                graph = ex.device.capture(fn)
                fn = lambda: ex.device.replay(graph)  # noqa: E731
                row["cuda_graph"] = True
            except Exception as e:  # noqa: BLE001 - plain launches are still worth timing
                row["graph_error"] = f"{type(e).__name__}: {str(e)[:200]}"
    else:
        clock, flush = WallClock(), host_flush(l2_bytes(spec, None))
    row.update(hot_cold(fn, clock, flush, spec["runs"], spec["warmup"]))
    if spec.get("roofline"):
        roofline(spec, row)


def gpu_sm_arch() -> str:
    """``sm_XX`` of device 0, as the cupy runtime names it when it compiles (``runtime/cupy_device.py``)."""
    import cupy
    return f"sm_{cupy.cuda.Device(0).compute_capability}"


def warm_nvrtc(build: str, sm_arch: str, jobs: int = 2) -> int:
    """Compile every kernel of ``build`` with tilec's NVRTC for ``sm_arch``, keeping the cubins in its cache
    (the key the cupy runtime's load looks up: kernel name, source, options); returns how many."""
    from concurrent.futures import ThreadPoolExecutor

    from ..backend.nvrtc import compile_cubin
    kernels = {cu.stem: cu.read_text() for cu in sorted(Path(build, "kernels").glob("*.cu"))}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        list(pool.map(lambda name: compile_cubin(name, kernels[name], sm_arch), kernels))
    return len(kernels)


def ort(spec: dict, row: dict) -> None:
    import onnxruntime
    row["step"] = "reference"
    feeds, want = reference(spec["model"])
    row["step"] = "session"
    cuda = spec["device"] == "cuda"
    if cuda and "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        raise Skip(f"no CUDAExecutionProvider (providers: {onnxruntime.get_available_providers()})")
    clock, flush, dev = WallClock(), host_flush(l2_bytes(spec, None)), "cpu"
    providers = ["CPUExecutionProvider"]
    if cuda:
        import cupy
        stream = cupy.cuda.Stream(non_blocking=True)
        opts = {"user_compute_stream": str(stream.ptr), "has_user_compute_stream": "1"}
        providers = [("CUDAExecutionProvider", opts), "CPUExecutionProvider"]
        clock, dev = CupyClock(stream), "cuda"
        flush = cupy_flush(stream, l2_bytes(spec, cupy.cuda.Device().attributes.get("L2CacheSize")))
    sess = onnxruntime.InferenceSession(spec["model"], providers=providers)
    row["provider"] = sess.get_providers()[0]
    if cuda:
        got = sess.get_provider_options().get("CUDAExecutionProvider", {}).get("user_compute_stream", "")
        row["stream"] = "ours" if got == str(stream.ptr) else f"onnxruntime's (asked {stream.ptr}, got {got!r})"
    io = sess.io_binding()
    for k, v in feeds.items():
        io.bind_ortvalue_input(k, onnxruntime.OrtValue.ortvalue_from_numpy(v, dev, 0))
    outs = [o.name for o in sess.get_outputs()]
    for o in outs:
        io.bind_output(o, dev)
    row["step"] = "run"
    sess.run_with_iobinding(io)
    row["rel_err"] = rel_err(dict(zip(outs, io.copy_outputs_to_cpu())), want)
    row["step"] = "time"
    row.update(hot_cold(lambda: sess.run_with_iobinding(io), clock, flush, spec["runs"], spec["warmup"]))


def _torch():
    try:
        import torch
    except ImportError:
        raise Skip("torch not installed") from None
    return torch


def _torch_reference(spec: dict, row: dict) -> tuple:
    """torch, the model's reference feeds and outputs, whether the row runs on CUDA, and its torch device (a
    Skip where the row asks for CUDA and torch sees none)."""
    torch = _torch()
    row["step"] = "reference"
    feeds, want = reference(spec["model"])
    cuda = spec["device"] == "cuda"
    if cuda and not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    dev = "cuda" if cuda else "cpu"
    return torch, feeds, want, cuda, dev


def _time_torch(torch, spec: dict, row: dict, call, cuda: bool) -> None:
    """The row's hot and cold times of ``call`` (CUDA events and an L2 flush on a GPU, wall clock on the CPU)."""
    row["step"] = "time"
    clock = TorchClock() if cuda else WallClock()
    flush = torch_flush(l2_bytes(spec, torch.cuda.get_device_properties(0).L2_cache_size)) if cuda else \
        host_flush(l2_bytes(spec, None))
    row.update(hot_cold(call, clock, flush, spec["runs"], spec["warmup"]))


def torch_model(spec: dict, row: dict) -> None:
    import onnx
    torch, feeds, want, cuda, dev = _torch_reference(spec, row)
    from .torch_onnx import TorchGraph
    row["step"] = "convert"
    g = TorchGraph(onnx.load(spec["model"]), dev)
    xs = {k: torch.from_numpy(v).to(dev) for k, v in feeds.items()}
    call = lambda: g(**xs)  # noqa: E731
    mode = spec["mode"]
    with torch.inference_mode():
        if mode != "eager":
            row["step"] = "torch.compile"
            call = _compiled(torch, g, xs, mode, row, cuda)
        row["step"] = "run"
        got = {n: t.float().cpu().numpy() for n, t in zip(g.outputs, call())}
        row["rel_err"] = rel_err(got, want)
        _time_torch(torch, spec, row, call, cuda)


def _compiled(torch, g, xs: dict, mode: str, row: dict, cuda: bool):
    """``torch.compile(mode=mode)`` of the graph, compiled by a first call (its time is ``compile_s``). Inductor's
    attention pattern matcher has failed on these graphs (a 0-d scale, BERT's mask broadcast): retried without."""
    import torch._inductor.config as inductor_config
    errors = []
    for matcher in (True, False):
        try:
            torch._dynamo.reset()
            inductor_config.pattern_matcher = matcher
            fn = torch.compile(lambda **kw: g(**kw), mode=mode)
            graphs = cuda and mode in ("max-autotune", "reduce-overhead")
            t0 = time.perf_counter()
            fn(**xs)
            if cuda:
                torch.cuda.synchronize()
            row.update(compile_s=round(time.perf_counter() - t0, 1), pattern_matcher=matcher, cuda_graph=graphs)
            if errors:
                row["first_error"] = errors[0]

            def call():
                if graphs:  # CUDA-graph trees: a new iteration (the previous outputs may be overwritten)
                    torch.compiler.cudagraph_mark_step_begin()
                return fn(**xs)
            return call
        except Exception as e:  # noqa: BLE001
            errors.append(error_line(e))
    raise RuntimeError("; ".join(errors))


def sdpa(spec: dict, row: dict) -> None:
    """O = softmax(Q Kᵀ · scale) V of an attention model (inputs ``q``, ``kt`` [.., d, keys], ``v``; the
    initializer ``scale`` divides) by torch's SDPA: FlashAttention's kernel on a GPU, the default on the CPU."""
    import onnx
    from onnx import numpy_helper
    torch, feeds, want, cuda, dev = _torch_reference(spec, row)
    model = onnx.load(spec["model"])
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    scale = 1.0 / float(np.asarray(init["scale"], np.float64).reshape(-1)[0])
    q, kt, v = (torch.from_numpy(feeds[n]).to(dev) for n in ("q", "kt", "v"))
    k = kt.transpose(-1, -2).contiguous()   # SDPA takes K as [.., keys, d]: laid out before timing
    ctx, row["provider"] = contextlib.nullcontext(), "torch SDPA (CPU default)"
    if cuda:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        ctx, row["provider"] = sdpa_kernel([SDPBackend.FLASH_ATTENTION]), "torch SDPA (FlashAttention)"
    call = lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)  # noqa: E731
    with torch.inference_mode(), ctx:
        row["step"] = "run"
        row["rel_err"] = rel_err({model.graph.output[0].name: call().float().cpu().numpy()}, want)
        _time_torch(torch, spec, row, call, cuda)


TOLERANCE = {"f32": 1e-4, "tf32": 5e-3, "f16": 1e-2, "bf16": 2e-2}  # relative, vs an f64 product


def cublas(spec: dict, row: dict) -> None:
    torch = _torch()
    from ..analysis.hardware import get_arch
    cuda = spec["device"] == "cuda"
    if cuda and not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    dev, n, dtype = ("cuda" if cuda else "cpu"), spec["n"], spec["dtype"]
    torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    tdt = {"f32": torch.float32, "tf32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16}[dtype]
    gen = torch.Generator(device=dev).manual_seed(0)
    a = torch.randn(n, n, device=dev, dtype=tdt, generator=gen)
    b = torch.randn(n, n, device=dev, dtype=tdt, generator=gen)
    c = torch.empty(n, n, device=dev, dtype=tdt)
    fn = lambda: torch.matmul(a, b, out=c)  # noqa: E731
    row["step"] = "run"
    fn()
    rows = min(n, 256)
    want = a[:rows].double() @ b.double()
    row["rel_err"] = float((c[:rows].double() - want).abs().max() / want.abs().max())
    row["tol"] = TOLERANCE[dtype]
    _time_torch(torch, spec, row, fn, cuda)
    row["arch"] = device_arch(spec)
    hw = get_arch(row["arch"])
    peak = hw.fp32_flops if dtype == "f32" else hw.tensor_core_flops(dtype)
    flops = 2.0 * n ** 3
    row["gflop"] = flops / 1e9
    _reached(row, flops, peak)
