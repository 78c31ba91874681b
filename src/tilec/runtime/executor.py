"""Runs a build folder's ``plan.json`` on a device (emu, CuPy, or a test fake): the same code for all.

Memory: one allocation per input, weight and output, one arena for the temporaries (offsets from the plan),
and views share their root's bytes. Before every launch the kernel's outputs are filled with poison (NaN for
floats), so an element a kernel forgets to write shows up instead of passing by luck. Host steps (ops with no
kernel) copy their inputs to the host, run the numpy reference, and copy results back: each is a host sync.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir.diagnostics import CompileError
from ..ir.row_counts import ROWS_ATTR, trim_rows
from ..ir.types import np_dtype
from .device import Device
from .device_arrays import is_device_array


@dataclass
class KernelStats:
    """Per kernel, summed over its launches."""

    launches: int = 0
    bytes_loaded: int = 0
    bytes_stored: int = 0
    bytes_modelled: int = 0
    seconds: float = 0.0
    dram_bytes: int | None = None   # the emulator's L2 model, when it ran (LaunchRecord.dram_bytes)


@dataclass
class RunStats:
    """What RUN.json reports."""

    kernels: dict = field(default_factory=dict)
    host_syncs: int = 0
    device_copies: int = 0
    host_ops: int = 0
    seconds: float = 0.0

    def report(self, backend: str, counts_bytes: bool, extra: dict | None = None) -> dict:
        rows = [{"name": n, "launches": k.launches,
                 "bytes_loaded": k.bytes_loaded if counts_bytes else None,
                 "bytes_stored": k.bytes_stored if counts_bytes else None,
                 "bytes_modelled": k.bytes_modelled, "seconds": round(k.seconds, 9)}
                for n, k in self.kernels.items()]
        if counts_bytes:
            total = sum(k.bytes_loaded + k.bytes_stored for k in self.kernels.values())
        else:
            total = sum(k.bytes_modelled for k in self.kernels.values())
        totals = {"launches": sum(k.launches for k in self.kernels.values()), "global_bytes": total,
                  "global_bytes_source": "counted" if counts_bytes else "modelled",
                  "host_syncs": self.host_syncs, "host_ops": self.host_ops, "seconds": round(self.seconds, 9)}
        if self.device_copies:  # loop-carried values and branch results moving between buffers (cf steps)
            totals["device_copies"] = self.device_copies
        if counts_bytes and any(k.dram_bytes is not None for k in self.kernels.values()):
            # The L2 model: what reached the L2 (every counted byte) and what reached DRAM (misses, write-backs).
            for row, k in zip(rows, self.kernels.values()):
                row.update(l2_bytes=k.bytes_loaded + k.bytes_stored, dram_bytes=k.dram_bytes)
            totals.update(l2_bytes=total, dram_bytes=sum(k.dram_bytes or 0 for k in self.kernels.values()))
        return {"backend": backend, "totals": totals, "kernels": rows, **(extra or {})}


class _Buf:
    """Where one plan buffer lives: (allocation, offset) plus its dtype and shape."""

    __slots__ = ("raw", "offset", "dtype", "shape", "nbytes")

    def __init__(self, raw, offset, dtype, shape, nbytes):
        self.raw, self.offset, self.dtype, self.shape, self.nbytes = raw, offset, dtype, tuple(shape), nbytes


class Executor:
    """Drives ``plan`` on ``device``. ``sources`` maps kernel names to ``.cu`` text, ``weights`` the
    weights.npz keys to arrays; ``module`` (the build's model.tir, loaded lazily by ``load_module``) is needed
    only for host steps. ``cubin_dir`` offers prebuilt binaries to devices that can use them. ``ptxas`` maps
    kernel names to report.json's ptxas rows (registers, smem), for residency limits (``residency.py``)."""

    def __init__(self, plan: dict, device: Device, sources: dict, weights: dict, load_module=None,
                 cubin_dir: Path | None = None, poison: bool = True, ptxas: dict | None = None):
        self.plan, self.device, self.sources, self.weights = plan, device, sources, weights
        if "arch" in plan:   # the build's target: the device holds launches to its limits
            device.arch = plan["arch"]
        self.load_module, self.cubin_dir, self.poison = load_module, cubin_dir, poison
        from .residency import ResidencyGuard
        self.ptxas = ptxas or {}
        self.residency = ResidencyGuard(device)
        self.buffers = {b["name"]: b for b in plan["buffers"]}
        self.stats = RunStats()
        self._mem: dict | None = None
        self._kernels: dict = {}
        self._module = None
        self._values = None

    @classmethod
    def from_build(cls, build_dir: str, device: Device, **kwargs) -> "Executor":
        """An executor for a build folder written by ``tilec compile``."""
        from .array_files import load_arrays as load_npz
        root = Path(build_dir)
        if not (root / "plan.json").is_file():
            raise CompileError(f"'{build_dir}' is not a tilec build folder (no plan.json)")
        plan = json.loads((root / "plan.json").read_text())
        from ..backend.plan import walk_steps
        sources = {}
        for s in walk_steps(plan["steps"]):
            if s["kind"] == "launch" and s["kernel"] not in sources:
                cu = root / s["cu"]
                if not cu.is_file():
                    raise CompileError(f"kernel source '{cu}' is missing from the build folder")
                sources[s["kernel"]] = cu.read_text()
        from ..backend.plan import walk_fallbacks
        for s in walk_fallbacks(plan["steps"]):  # loaded only if a grid cannot be co-resident
            cu = root / s.get("cu", "")
            if s["kind"] == "launch" and s["kernel"] not in sources and cu.is_file():
                sources[s["kernel"]] = cu.read_text()
        weights = load_npz(str(root / "weights.npz")) if (root / "weights.npz").exists() else {}

        def load_module():
            from ..ir.io import read_ir
            return read_ir(str(root / "model.tir"))
        report = json.loads((root / "report.json").read_text()) if (root / "report.json").is_file() else {}
        ptxas = {k["name"]: k["ptxas"] for k in report.get("kernels", []) if k.get("ptxas")}
        return cls(plan, device, sources, weights, load_module=load_module, cubin_dir=root / "kernels",
                   ptxas=ptxas, **kwargs)

    # --- setup --------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Allocate every buffer, upload the weights and load the kernels (once)."""
        if self._mem is not None:
            return
        from ..backend.plan import const_key
        dev, mem = self.device, {}
        arena = dev.alloc(self.plan["arena_bytes"]) if self.plan["arena_bytes"] else None
        for b in self.plan["buffers"]:
            if b["kind"] == "view":
                continue
            if b["kind"] == "temp":
                mem[b["name"]] = _Buf(arena, b["offset"], b["dtype"], b["shape"], b["bytes"])
            else:
                mem[b["name"]] = _Buf(dev.alloc(b["bytes"]), 0, b["dtype"], b["shape"], b["bytes"])
            if b["kind"] == "weight":
                key = const_key(b["name"]) if b.get("const") else b["weight"]
                if key not in self.weights:
                    raise CompileError(f"weight '{key}' is missing from the build's weights.npz")
                dev.write(mem[b["name"]].raw, 0, self._conform(b, self.weights[key], f"weight '{key}'"))
        for b in self.plan["buffers"]:
            if b["kind"] == "view":
                root = mem[b["alias_of"]]
                mem[b["name"]] = _Buf(root.raw, root.offset, b["dtype"], b["shape"], b["bytes"])
        self._mem = mem
        from ..backend.plan import walk_steps
        for s in walk_steps(self.plan["steps"]):
            if s["kind"] == "launch":
                self._load(s["kernel"])
        self._args = {id(s): self._launch_args(s) for s in walk_steps(self.plan["steps"]) if s["kind"] == "launch"}

    def _load(self, name: str):
        """The device's handle for kernel ``name``, loaded once (a prebuilt .cubin where there is one)."""
        if name not in self._kernels:
            if name not in self.sources:
                raise CompileError(f"kernel source '{name}.cu' is missing from the build folder")
            cubin = self.cubin_dir / f"{name}.cubin" if self.cubin_dir is not None else None
            self._kernels[name] = self.device.load(name, self.sources[name],
                                                   cubin if cubin is not None and cubin.is_file() else None)
        return self._kernels[name]

    def _prepare_fallback(self, steps: list) -> None:
        """Load the kernels and bind the arguments of a fallback's launches (first use only)."""
        from ..backend.plan import walk_steps
        for f in walk_steps(steps):
            if f["kind"] == "launch" and id(f) not in self._args:
                self._load(f["kernel"])
                self._args[id(f)] = self._launch_args(f)

    def _arg(self, name: str):
        m = self._mem[name]
        return self.device.typed(m.raw, m.offset, m.dtype, m.shape)

    def _launch_args(self, step: dict) -> list:
        """A launch's arguments: its buffers, then the TMA tensor maps over them the kernel takes by value
        (``tensor_maps``: the wgmma engine's), built once, as the buffers never move."""
        args = [self._arg(n) for n in step["args"]]
        return args + [self.device.tensor_map(args[t["arg"]], t) for t in step.get("tensor_maps", ())]

    @staticmethod
    def _conform(b: dict, array, what: str) -> np.ndarray:
        if is_device_array(array):   # a CuPy array for the cupy device: checked here, copied on the device
            if tuple(array.shape) != tuple(b["shape"]):
                raise CompileError(f"{what} has shape {list(array.shape)}, expected {list(b['shape'])}")
            return array.astype(np_dtype(b["dtype"]), copy=False)
        arr = np.asarray(array)
        want = np_dtype(b["dtype"])
        if arr.dtype.kind == "V" and arr.dtype.itemsize == want.itemsize:
            arr = arr.view(want)  # .npz keeps bfloat16 as raw 2-byte records
        if tuple(arr.shape) != tuple(b["shape"]):
            raise CompileError(f"{what} has shape {list(arr.shape)}, expected {list(b['shape'])}")
        return np.asarray(arr.astype(np_dtype(b["dtype"]), copy=False), order="C")

    # --- running ------------------------------------------------------------------------------------------
    def run(self, inputs: dict) -> dict:
        """Run the plan on ``inputs`` (by model input name); returns the outputs by name."""
        self.set_inputs(inputs)
        timer = self.device.start_timer()
        self.run_steps(timed=True)
        self.stats.seconds = self.device.stop_timer(timer)
        return self.outputs(on_device=any(is_device_array(v) for v in inputs.values()))

    def set_inputs(self, inputs: dict) -> None:
        self.prepare()
        missing = [i["name"] for i in self.plan["inputs"] if i["name"] not in inputs]
        if missing:
            raise CompileError(f"missing input(s): {', '.join(missing)}")
        for i in self.plan["inputs"]:
            b = self.buffers[i["buffer"]]
            m = self._mem[i["buffer"]]
            self.device.write(m.raw, m.offset, self._conform(b, inputs[i["name"]], f"input '{i['name']}'"))

    def outputs(self, on_device: bool = False) -> dict:
        """The outputs by name: host arrays, or with ``on_device`` (a device that can: ``read_device``) arrays
        left on the GPU, for inputs that came as GPU arrays."""
        out = {}
        read = getattr(self.device, "read_device", None) if on_device else None
        for o in self.plan["outputs"]:
            m = self._mem[o["buffer"]]
            out[o["name"]] = (read or self.device.read)(m.raw, m.offset, m.dtype, m.shape)
        self.stats.host_syncs += 1  # one wait for the device before the results are read
        return trim_rows(out, self.plan.get(ROWS_ATTR), lambda a: int(a.get() if hasattr(a, "get") else a))

    def run_steps(self, timed: bool = False, poison: bool | None = None) -> None:
        """Enqueue every step. ``timed`` records per-kernel seconds (events on a GPU); with ``poison`` off
        nothing but the launches is enqueued, which is what timing runs and CUDA graphs want."""
        self.prepare()
        poison = self.poison if poison is None else poison
        dev, records = self.device, []
        self._run_list(self.plan["steps"], records, timed, poison)
        if timed and records:
            dev.synchronize()
        for s, rec in records:
            k = self.stats.kernels.setdefault(s["kernel"], KernelStats())
            k.launches += 1
            k.bytes_loaded += rec.load_bytes or 0
            k.bytes_stored += rec.store_bytes or 0
            if rec.dram_bytes is not None:
                k.dram_bytes = (k.dram_bytes or 0) + rec.dram_bytes
            k.bytes_modelled += s.get("bytes_modelled", 0)
            k.seconds += dev.elapsed(rec.timer) if timed else 0.0

    def _run_list(self, steps: list, records: list, timed: bool, poison: bool) -> None:
        dev = self.device
        for s in steps:
            if s["kind"] == "host":
                self._host_step(s)
                continue
            if s["kind"] in ("loop", "if"):
                from .control_steps import run_control
                run_control(self, s, lambda body: self._run_list(body, records, timed, poison))
                continue
            if s.get("concurrent") and not self.residency.co_resident(s, self._kernels[s["kernel"]]):
                self._prepare_fallback(s["fallback"])   # one warning per kernel (residency.py)
                self._run_list(s["fallback"], records, timed, poison)
                continue
            if poison:
                for name in s["outputs"]:
                    m = self._mem[name]
                    dev.fill(m.raw, m.offset, m.nbytes)
            for name in s.get("zero", ()):  # a persistent kernel's counters/flags: zero before every launch
                m = self._mem[name]
                dev.fill(m.raw, m.offset, m.nbytes, 0)
            extra = {"concurrent": True} if s.get("concurrent") else {}
            if s.get("concurrent") and getattr(dev, "resident_limit", False):  # the emulator's resident-limit mode
                from .residency import step_limit
                extra["resident"] = step_limit(s, self.ptxas.get(s["kernel"]), getattr(dev, "num_sms", None))
            rec = dev.launch(self._kernels[s["kernel"]], s["kernel"], s["grid"], s["block"], s["smem"],
                             self._args[id(s)], timed=timed, **extra)
            records.append((s, rec))

    def _host_step(self, s: dict) -> None:
        """Run one op with the numpy reference: a round trip through the host."""
        from .interpreter import run_op
        if self._module is None:
            if self.load_module is None:
                raise CompileError(f"host op '{s['op']}' needs the build's model.tir")
            from ..backend.plan import value_buffers
            self._module = self.load_module()
            self._values = value_buffers(self._module)[1]
        path = s.get("path", [s["index"]])  # op index, then (region, op index) pairs into nested bodies
        op = self._main().body.ops[path[0]]
        for r, i in zip(path[1::2], path[2::2]):
            op = op.regions[r].block.ops[i]
        env = _LazyEnv(self._fetch)
        ins = [env[v] for v in op.operands]
        outs = run_op(self._module, op, ins, env)
        self.stats.host_syncs += 1
        self.stats.host_ops += 1
        for name, arr in zip(s["outputs"], outs):
            b, m = self.buffers[name], self._mem[name]
            self.device.write(m.raw, m.offset, np.asarray(arr).astype(np_dtype(b["dtype"]), copy=False)
                              .reshape(b["shape"]))

    def _main(self):
        from ..ir.core import main_function
        return main_function(self._module)

    def _fetch(self, value):
        name = self._values.get(value)
        if name is None:
            raise CompileError("a host op reads a value that is not a buffer of @main")
        m = self._mem[name]
        return self.device.read(m.raw, m.offset, m.dtype, m.shape)

    # --- timing -------------------------------------------------------------------------------------------
    def time(self, inputs: dict, repeat: int = 10, warmup: int = 1, cuda_graph: bool = False) -> list:
        """Seconds of the whole plan per run (device timers), ``repeat`` runs after ``warmup``; no poison."""
        self.set_inputs(inputs)
        step = lambda: self.run_steps(timed=False, poison=False)  # noqa: E731
        if cuda_graph:
            if self.plan["host_ops"]:
                raise CompileError("--cuda-graph needs a plan without host ops "
                                   f"(this one runs {', '.join(sorted(set(self.plan['host_ops'])))} on the host)")
            if not hasattr(self.device, "capture"):
                raise CompileError(f"--cuda-graph needs the cupy backend, not {self.device.name}")
            self.prepare()
            why = self._read_back(self.plan["steps"])
            if why is not None:
                raise CompileError(f"--cuda-graph cannot capture this plan on this device: {why}")
            graph = self.device.capture(step)
            step = lambda: self.device.replay(graph)  # noqa: E731
        saved, self.stats = self.stats, RunStats()  # timing runs are not part of the measured run
        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeat):
            t = self.device.start_timer()
            step()
            times.append(self.device.stop_timer(t))
        self.stats = saved
        return times

    def _read_back(self, steps: list) -> str | None:
        """Why running ``steps`` reads the device back (which a CUDA graph cannot capture), or None: a host
        loop / if whose trip count, condition or predicate is not known to the plan, including those of a
        persistent step's fallback where this device cannot hold its grid (``residency.py``)."""
        for s in steps:
            if s["kind"] == "if" or (s["kind"] == "loop" and (s["trip_static"] is None or not s["cond_static"]
                                                                or s.get("cond_init") is None)):
                what = "predicate" if s["kind"] == "if" else "trip count or condition"
                return f"a host-driven {s['kind']} reads its {what} back"
            if s["kind"] == "loop":
                why = self._read_back(s["body"])
            elif s.get("concurrent") and not self.residency.co_resident(s, self._kernels[s["kernel"]]):
                why = self._read_back(s["fallback"])
                why = why and f"persistent kernel '{s['kernel']}' runs its fallback here, where {why}"
            else:
                continue
            if why is not None:
                return why
        return None

    def report(self, extra: dict | None = None) -> dict:
        """The RUN.json content for the runs so far."""
        if self.residency.fallbacks:  # persistent kernels whose grid the device could not hold at once
            extra = {**(extra or {}), "persistent_fallbacks": dict(sorted(self.residency.fallbacks.items()))}
        return self.stats.report(self.device.name, self.device.counts_bytes, extra)


class _LazyEnv(dict):
    """Value → host array, copied from the device on first use (host ops may read any value of @main)."""

    def __init__(self, fetch):
        super().__init__()
        self._fetch = fetch

    def __missing__(self, value):
        arr = self[value] = self._fetch(value)
        return arr


def median(xs: list) -> float:
    return statistics.median(xs) if xs else float("nan")
