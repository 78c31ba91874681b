"""The control-flow samples (samples/control): numpy interpreter vs onnxruntime, then the host-driven
schedule under the CUDA emulator vs numpy, with the launches and device→host syncs it takes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tilec.bench.measure import model_feeds
from tilec.frontend.importer import import_onnx
from tilec.ir.parser import parse_module
from tilec.ir.printer import print_module
from tilec.runtime.interpreter import run_module

SAMPLES = Path(__file__).parents[2] / "samples" / "control"


def _inputs(name: str, seed: int = 0) -> dict:
    """Seeded inputs: normal floats; integers in [1, 6), so trip counts and token ids make loops run."""
    return model_feeds(onnx.load(str(SAMPLES / f"{name}.onnx")), seed, ints=(1, 6))


def _ort(name: str, inputs: dict) -> list:
    return ort.InferenceSession(str(SAMPLES / f"{name}.onnx")).run(None, inputs)


@pytest.mark.parametrize("name", ["lstm_loop", "greedy_decoder", "skipnet_if"])
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_matches_onnxruntime(name, seed):
    module = import_onnx(str(SAMPLES / f"{name}.onnx"))
    text = print_module(module)
    assert print_module(parse_module(text)) == text  # regions round-trip
    inputs = _inputs(name, seed)
    got = list(run_module(module, inputs).values())
    for g, r in zip(got, _ort(name, inputs)):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)


def test_samples_are_reproducible(tmp_path):
    import sys
    sys.path.insert(0, str(SAMPLES))
    from build_control import main
    main(["--out", str(tmp_path)])
    for p in tmp_path.glob("*.onnx"):
        assert p.read_bytes() == (SAMPLES / p.name).read_bytes(), p.name


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    from tilec.driver import compile_model
    root = tmp_path_factory.mktemp("control")
    # Host-side control flow (loops and branches as plan steps): the pipeline just before Grinder moves
    # them onto the device (tests/grinder/test_grinder_pass.py covers that one).
    for name in ("lstm_loop", "greedy_decoder", "skipnet_if"):
        compile_model(str(SAMPLES / f"{name}.onnx"), str(root / name), pipeline="rammer")
    return root


def _emu(builds, name, inputs):
    from tilec.driver import make_executor
    ex = make_executor(str(builds / name), "emu")
    out = ex.run(inputs)
    return out, ex.report()["totals"], json.loads((builds / name / "plan.json").read_text())


def test_lstm_loop_under_emu(builds):
    inputs = _inputs("lstm_loop")
    out, totals, plan = _emu(builds, "lstm_loop", inputs)
    for g, r in zip(out.values(), run_module(import_onnx(str(SAMPLES / "lstm_loop.onnx")), inputs).values()):
        np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5)
    loop = next(s for s in plan["steps"] if s["kind"] == "loop")
    per_iter = sum(1 for s in loop["body"] if s["kind"] == "launch")
    # Constant trip count and condition: the host never waits inside the loop, only for the results.
    assert loop["trip_static"] == 4 and loop["cond_static"]
    assert totals["launches"] == 4 * per_iter + sum(1 for s in plan["steps"] if s["kind"] == "launch")
    assert totals["host_syncs"] == 1


@pytest.mark.parametrize("seed", [0, 3])
def test_greedy_decoder_under_emu(builds, seed):
    inputs = _inputs("greedy_decoder", seed)
    ref = run_module(import_onnx(str(SAMPLES / "greedy_decoder.onnx")), inputs)
    out, totals, plan = _emu(builds, "greedy_decoder", inputs)
    for k in ref:
        np.testing.assert_allclose(out[k], ref[k], rtol=1e-5, atol=1e-5)
    steps = int(ref["steps"][0])
    loop = next(s for s in plan["steps"] if s["kind"] == "loop")
    host = sum(1 for s in loop["body"] if s["kind"] == "host")  # host ops in the body (none since ArgMax has a kernel)
    # Data-dependent exit: one condition read back per iteration (and one per host op), plus the results.
    assert not loop["cond_static"]
    assert totals["host_syncs"] == steps * (1 + host) + 1 and totals["host_ops"] == steps * host


@pytest.mark.parametrize("seed", range(2))
def test_skipnet_if_under_emu(builds, seed):
    inputs = _inputs("skipnet_if", seed)
    inputs["x"] = inputs["x"] + (1.0 if seed % 2 else -1.0)  # both branches
    ref = run_module(import_onnx(str(SAMPLES / "skipnet_if.onnx")), inputs)
    out, totals, _ = _emu(builds, "skipnet_if", inputs)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=1e-5, atol=1e-5)
    assert totals["host_syncs"] == 2  # the predicate, then the results


@pytest.mark.slow  # ptxas on every kernel: about two minutes on two cores
@pytest.mark.skipif(__import__("shutil").which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_every_kernel_of_the_samples_passes_ptxas(tmp_path):
    from tilec.driver import compile_model
    for name in ("lstm_loop", "greedy_decoder", "skipnet_if"):
        compile_model(str(SAMPLES / f"{name}.onnx"), str(tmp_path / name), check_ptx=True)
        report = json.loads((tmp_path / name / "report.json").read_text())
        assert report["ptxas_checked"] and all("ptxas" in k for k in report["kernels"]), name


def test_report_counts_a_host_loop_per_inference(builds):
    """report.json counts a host-driven loop's body once per (constant) trip, as Grinder's device loops are
    counted, so its launches and modelled bytes are what the emulator measures for one inference."""
    _, totals, _ = _emu(builds, "lstm_loop", _inputs("lstm_loop"))
    report = json.loads((builds / "lstm_loop" / "report.json").read_text())["totals"]
    assert report["launches"] == totals["launches"]
    assert report["global_bytes_modelled"] == totals["global_bytes"]
