"""Hand-written kernels for opaque graph ops (gather, resize nearest/linear), against their numpy
references; skipped while the graph op specs are not there."""
import numpy as np
import pytest

from lower_harness import function_module, kernels, lower, nvcc_compile, random_inputs, reference, run_lowered
from tilec.backend.emit import emit_kernel
from tilec.ir import TensorType
from tilec.ir.opspec import get_spec


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


def _need(op_name):
    spec = get_spec(op_name)
    if spec is None or spec.lowering != "opaque":
        pytest.skip(f"{op_name} has no opaque spec yet")


def gather(b, args):
    return b.create("graph.gather", args, [T(10, 3, 4)], {"axis": 1}).result


def resize(mode, ctm):
    def build(b, args):
        return b.create("graph.resize", args[:1], [T(1, 2, 12, 10)],
                        {"mode": mode, "coordinate_transformation_mode": ctm,
                         "sizes": [1, 2, 12, 10]}).result
    return build


@pytest.mark.parametrize("name,build,ins", [
    ("graph.gather", gather, [T(10, 20), T(3, 4, dtype="i64")]),
    ("graph.resize", resize("nearest", "asymmetric"), [T(1, 2, 6, 5)]),
    ("graph.resize", resize("linear", "half_pixel"), [T(1, 2, 6, 5)]),
    ("graph.resize", resize("linear", "align_corners"), [T(1, 2, 6, 5)]),
])
def test_opaque(name, build, ins, tmp_path):
    _need(name)
    ref_m = function_module(ins, _out(build, ins), build)
    inputs = random_inputs(ref_m)
    want = reference(ref_m, inputs)
    m = lower(function_module(ins, _out(build, ins), build))
    (k,) = kernels(m)
    assert k.attributes["kind"] == "opaque" and "source" in k.attributes
    nvcc_compile(emit_kernel(k), tmp_path)
    for order in ("normal", "reverse"):
        got, _ = run_lowered(m, inputs, order)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


def _out(build, ins):
    return T(10, 3, 4) if build is gather else T(1, 2, 12, 10)
