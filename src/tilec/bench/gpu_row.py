"""The child process of one GPU check / benchmark row (started by ``tilec.bench.rowrun.run_row``).

    python -m tilec.bench.gpu_row --id ROW_ID --spec JSON --out ROW.json

``spec["kind"]`` picks the measurement (``probe``, ``tilec``, ``ort``, ``torch``, ``cublas``, ``sdpa``: see
``tilec.bench.gpu_systems``). Writes ROW.json whenever Python survives: ``status`` is ``ok``, ``wrong``
(``rel_err`` over ``tol``), ``skipped`` (a package or the GPU is missing) or ``failed`` (``error`` names the step).
A crash or a hang leaves no ROW.json: the parent records that instead.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import time
import traceback
from pathlib import Path

from . import gpu_systems
from .measure import error_summary
from .rowrun import injected_fault


def probe(spec: dict, row: dict) -> None:
    """What the run is measured on: the GPU (name, L2, SMs; on CuPy's ROCm build the vendor ``amd``, the gfx ISA
    and the tilec arch it maps to, or why none), driver and library versions."""
    row["python"] = platform.python_version()
    versions = {}
    for mod in ("numpy", "onnx", "onnxruntime", "cupy", "torch", "triton"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception as e:  # noqa: BLE001 - a missing or broken package is a fact about the machine
            versions[mod] = f"n/a ({type(e).__name__})"
    row["versions"] = versions
    try:
        import onnxruntime
        row["ort_providers"] = onnxruntime.get_available_providers()
    except Exception:  # noqa: BLE001
        row["ort_providers"] = []
    if spec["device"] != "cuda":
        row["gpu"] = "dry-run"
        return
    import cupy
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    attrs = cupy.cuda.Device(0).attributes
    row.update(gpu=name, l2_bytes=attrs.get("L2CacheSize"), sms=attrs.get("MultiProcessorCount"),
               cc=f"{props['major']}.{props['minor']}", driver=cupy.cuda.runtime.driverGetVersion(),
               runtime=cupy.cuda.runtime.runtimeGetVersion())
    row["vendor"] = "amd" if getattr(cupy.cuda.runtime, "is_hip", False) else "nvidia"
    if row["vendor"] == "amd":  # CuPy's ROCm build: the ISA picks the arch spec (tilec.bench.gpu_mode)
        from .gpu_mode import UnknownGpu, arch_from_props, isa_of
        row["isa"] = isa_of(props)
        try:
            row["tilec_arch"] = arch_from_props(props)
        except UnknownGpu as e:
            row["arch_error"] = str(e)


KINDS = {"probe": probe, "tilec": gpu_systems.tilec, "ort": gpu_systems.ort, "torch": gpu_systems.torch_model,
         "cublas": gpu_systems.cublas, "sdpa": gpu_systems.sdpa}


def measure(row_id: str, spec: dict) -> dict:
    """Run one row; never raises."""
    row = {"status": "ok", "pid": os.getpid(), "kind": spec["kind"]}
    t0 = time.perf_counter()
    try:
        KINDS[spec["kind"]](spec, row)
        tol = row.get("tol", spec.get("tol"))
        if tol is not None and row.get("rel_err") is not None and not row["rel_err"] <= tol:
            row.update(status="wrong", error=f"relative error {row['rel_err']:.2e} > {tol:g}")
        row.pop("step", None)
    except gpu_systems.Skip as e:
        row.update(status="skipped", error=str(e))
    except BaseException as e:  # noqa: BLE001 - the row says why it failed; the run goes on
        row.update(status="failed", error=f"{row.pop('step', 'start')}: {type(e).__name__}: {error_summary(str(e))}",
                   traceback=traceback.format_exc()[-3000:])
    row["child_s"] = round(time.perf_counter() - t0, 2)
    return row


def die_with_parent() -> None:
    """Linux: SIGKILL this process when the parent dies. The child runs in its own session (so its timeout can
    kill its whole group), so nothing else would end a hung row whose parent was killed: on a lent GPU it would
    hold the GPU until the machine goes back."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the parent's timeout still applies while it lives
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


def main(argv=None) -> int:
    die_with_parent()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--id", required=True)
    ap.add_argument("--spec", required=True, help="the row's spec as JSON")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    fault = injected_fault(a.id)
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    row = measure(a.id, json.loads(a.spec))
    tmp = Path(a.out + ".tmp")
    tmp.write_text(json.dumps(row, indent=1, sort_keys=True, default=float) + "\n")
    tmp.replace(a.out)  # the parent never reads a half-written row
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
