"""Checks shared by the tests of each Welder fusion kind (conv chains, pooling tails, back-to-back GEMMs):
a fused build is compared with the same model built without that fusion ("apart") and with onnxruntime."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tilec.driver import compile_model, run_target


def report(build: Path) -> dict:
    return json.load(open(build / "report.json"))


def launches(build: Path) -> list:
    """The ``kernel.launch`` lines of the build's final IR."""
    return [line for line in open(build / "model.tir").read().splitlines() if '"kernel.launch"' in line]


def assert_emu_matches(build: Path, root: Path, order: str, tol: float = 1e-4) -> None:
    """Under the emulator (``order``), output ``y`` matches ``root/ref.npy`` and every kernel moves exactly
    the bytes the compiler modelled."""
    out, rep = root / f"{build.name}-{order}.npz", root / f"{build.name}-{order}.json"
    run_target(str(build), str(root / "in.npz"), str(out), backend="emu", report_path=str(rep), emu_order=order)
    np.testing.assert_allclose(np.load(out)["y"], np.load(root / "ref.npy"), rtol=tol, atol=tol)
    run = json.load(open(rep))
    for k in run["kernels"]:
        assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k
    assert run["totals"]["global_bytes"] == report(build)["totals"]["global_bytes_modelled"]


def assert_fewer_bytes(fused: Path, apart: Path) -> None:
    got, without = (report(b)["totals"]["global_bytes_modelled"] for b in (fused, apart))
    assert got < without, (got, without)


def assert_no_spills(build: Path) -> None:
    """The build was compiled with ``check_ptx``, and ptxas (sm_90) spilled nothing in any kernel."""
    rep = report(build)
    assert rep["ptxas_checked"]
    for k in rep["kernels"]:
        assert k.get("ptxas"), k
        assert not k["ptxas"].get("spill_stores") and not k["ptxas"].get("spill_loads"), k


def assert_deterministic(model: Path, build: Path, again: Path) -> None:
    """Compiling the model again gives byte-identical IR and plan."""
    compile_model(str(model), str(again), pipeline="welder")
    for f in ("model.tir", "plan.json"):
        assert open(again / f).read() == open(build / f).read(), f


def build_pair(d: Path, model, rng, fused: str, switch_off) -> Path:
    """Save ``model`` (one input ``x``) and seeded inputs and onnxruntime's ``y`` under ``d``; compile it with
    the welder pipeline into ``d/fused`` (with ptxas) and, with ``switch_off(monkeypatch)`` applied, into
    ``d/apart`` (the best grouping Welder finds without the fusion under test)."""
    import onnx
    import onnxruntime as ort
    import pytest
    onnx.save(model, str(d / "m.onnx"))
    shape = [x.dim_value for x in model.graph.input[0].type.tensor_type.shape.dim]
    x = rng.standard_normal(shape).astype(np.float32)
    np.savez(d / "in.npz", x=x)
    np.save(d / "ref.npy", ort.InferenceSession(str(d / "m.onnx")).run(None, {"x": x})[0])
    compile_model(str(d / "m.onnx"), str(d / fused), pipeline="welder", check_ptx=True)
    with pytest.MonkeyPatch.context() as mp:
        switch_off(mp)
        compile_model(str(d / "m.onnx"), str(d / "apart"), pipeline="welder")
    return d
