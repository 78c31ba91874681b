"""ONNX's node tests of the contractions (MatMul, Gemm, Conv, ConvTranspose) in each precision mode: the numpy
reference of the decomposed module after the ``precision`` pass, and (a few here, all with ``-m slow``) the
emulator on a compiled build, against the test's f32 outputs at the mode's tolerance (``checks.py``)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "frontend"))
import node_harness  # noqa: E402

from checks import TOLERANCE, scaled_error  # noqa: E402

OPS = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
MODES = ("tf32", "fp16", "bf16")
# The fast tests: one case per op kind and mode in numpy; under the emulator one per op kind, and one per
# mode for the convolutions.
NUMPY_FAST = ("test_matmul_4d", "test_gemm_all_attributes", "test_conv_with_strides_and_asymmetric_padding",
              "test_convtranspose_group_2")
EMU_FAST = {("test_matmul_3d", "fp16"), ("test_gemm_all_attributes", "bf16"), ("test_matmul_2d", "tf32"),
            ("test_conv_with_strides_padding", "fp16"), ("test_conv_with_strides_padding", "bf16"),
            ("test_conv_with_strides_padding", "tf32"), ("test_convtranspose", "fp16"), ("test_convtranspose", "bf16"),
            ("test_convtranspose", "tf32")}   # Conv and ConvTranspose: one case per mode


def _cases() -> list:
    excluded = node_harness.exclusions()
    return [c for c in node_harness.supported_cases() if set(node_harness.case_ops(c)) <= OPS
            and c.name not in excluded]


CASES = _cases()


def _data(case):
    graph = case.model.graph
    init = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in init]
    for inputs, outputs in case.data_sets:
        yield (dict(zip(names, (node_harness._array(v) for v in inputs))),
               {o.name: node_harness._array(w) for o, w in zip(graph.output, outputs)})


def _check(got: dict, want: dict, mode: str) -> None:
    for name, ref in want.items():
        assert np.asarray(got[name]).dtype == ref.dtype, name
        err = scaled_error(got[name], ref)
        assert err <= TOLERANCE[mode], f"{name}: {err:.3g} > {TOLERANCE[mode]} ({mode})"


def test_the_cases_are_there():
    ops = {op for c in CASES for op in node_harness.case_ops(c)}
    assert ops == OPS and len(CASES) >= 30, (ops, len(CASES))


def _by_name(name: str):
    return next(c for c in CASES if c.name == name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", NUMPY_FAST)
def test_numpy_fast(case, mode):
    _numpy(_by_name(case), mode)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_numpy(case, mode):
    _numpy(case, mode)


def _numpy(case, mode):
    from tilec.ir.precision import set_precision
    from tilec.passes import get_pass
    from tilec.runtime.interpreter import run_module
    for feeds, want in _data(case):
        module = node_harness._import(case, feeds)
        set_precision(module, mode)
        for name in ("decompose", "precision"):
            get_pass(name).apply(module)
        text = "\n".join(op.name + str(op.attributes.get("precision", "")) + str([r.type for r in op.results])
                         for op in module.walk())
        host = "ConvTranspose" in node_harness.case_ops(case)   # computes in f32 on the host under tf32
        assert ("tf32" in text or host) if mode == "tf32" else (("f16" if mode == "fp16" else "bf16") in text)
        _check(run_module(module, feeds), want, mode)


def _emu(case, mode, tmp_path):
    from tilec.driver import compile_model, make_executor
    path = tmp_path / "case.onnx"
    onnx.save(case.model, str(path))
    for i, (feeds, want) in enumerate(_data(case)):
        shapes = {k: tuple(v.shape) for k, v in feeds.items()}
        build = tmp_path / f"build{i}"
        compile_model(str(path), str(build), input_shapes=shapes, precision=mode)
        _check(make_executor(str(build), "emu").run(feeds), want, mode)


@pytest.mark.parametrize("case,mode", sorted(EMU_FAST))
def test_emu_fast(case, mode, tmp_path):
    _emu(_by_name(case), mode, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_emu(case, mode, tmp_path):
    _emu(case, mode, tmp_path)
