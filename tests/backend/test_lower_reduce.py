"""Reduction kernels (block and serial) and the decomposed softmax / layernorm chains."""
import numpy as np
import pytest

from lower_harness import check_compute, function_module, kernels, lower, random_inputs, reference, run_lowered
from tilec.ir import TensorType
from tilec.ir.core import lookup_symbol


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


@pytest.mark.parametrize("expr,ins,out,kind", [
    ("M[i] max= X[i, j]", [T(6, 1000)], T(6), "reduce"),
    ("S[i] += X[i, j] * X[i, j]", [T(5, 300)], T(5), "reduce"),
    ("S[j] += X[i, j]", [T(40, 33)], T(33), "reduce_serial"),
    ("M[i] min= X[i, j, k]", [T(4, 5, 6)], T(4), "reduce_serial"),
    ("P[i] *= X[i, j] * 0.5 + 1.0", [T(3, 100)], T(3), "reduce"),
    ("S[] += X[i, j]", [T(50, 70)], T(), "reduce"),
])
def test_reduce(expr, ins, out, kind):
    k = check_compute(expr, ins, out, rtol=1e-4, atol=1e-3)
    assert k.attributes["kind"] == kind


def softmax(b, args):
    (x,) = args
    rows = T(x.type.shape[0])
    m = b.compute("M[i] max= X[i, j]", [x], rows)
    e = b.compute("E[i, j] = exp(X[i, j] - M[i])", [x, m], x.type)
    s = b.compute("S[i] += E[i, j]", [e], rows)
    return b.compute("Y[i, j] = E[i, j] / S[i]", [e, s], x.type)


def layernorm(b, args):
    x, g, beta = args
    n = x.type.shape[1]
    rows = T(x.type.shape[0])
    mean = b.compute(f"M[i] += X[i, j] / {float(n)}", [x], rows)
    var = b.compute(f"V[i] += (X[i, j] - M[i]) * (X[i, j] - M[i]) / {float(n)}", [x, mean], rows)
    return b.compute("Y[i, j] = (X[i, j] - M[i]) * rsqrt(V[i] + 1e-05) * G[j] + B[j]", [x, mean, var, g, beta],
                     x.type)


@pytest.mark.parametrize("build,ins", [(softmax, [T(7, 300)]), (layernorm, [T(5, 96), T(96), T(96)])])
def test_decomposed_chains(build, ins):
    ref_m = function_module(ins, ins[0], build)
    inputs = random_inputs(ref_m)
    want = reference(ref_m, inputs)
    m = lower(function_module(ins, ins[0], build))
    assert not [op for op in lookup_symbol(m, "main").body.ops if op.name == "tile.compute"]
    assert len(kernels(m)) == (4 if build is softmax else 3)
    for order in ("normal", "reverse"):
        got, _ = run_lowered(m, inputs, order)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-5)
