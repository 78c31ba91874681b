"""Elementwise / broadcast kernels: scalar and float4 paths, padded (out-of-bounds) reads, f16 and ints."""
import math

import pytest

from lower_harness import check_compute
from tilec.ir import TensorType


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


@pytest.mark.parametrize("expr,ins,out,attrs,vec", [
    # float4 where the launch fills the SMs anyway (>= 132 blocks of 256 x 4 on the h200)
    ("Y[i, j] = exp(X[i, j] - M[i])", [T(384, 384), T(384)], T(384, 384), {}, True),
    ("Y[i, j] = A[i, j] + B[j]", [T(7, 13), T(13)], T(7, 13), {}, False),
    ("Y[i, j] = A[i, j] * B[i, j] + 1.0", [T(30, 70), T(30, 70)], T(30, 70), {}, False),
    ("Y[i] = X[i - 1] + X[i + 1]", [T(1000)], T(1000), {"pad": 0.5}, False),
    ("Y[i, j] = X[j, i]", [T(33, 65)], T(65, 33), {}, False),
    ("Y[i, j] = max(X[i, j], 0.0)", [T(384, 384)], T(384, 384), {}, True),
    # 4096 elements: float4 would be 4 blocks of 256; one element a thread spreads them over 16 SMs (issue #18)
    ("Y[i, j] = max(X[i, j], 0.0)", [T(16, 256)], T(16, 256), {}, False),
])
def test_elementwise(expr, ins, out, attrs, vec):
    k = check_compute(expr, ins, out, rtol=1e-5, atol=1e-6, **attrs)
    assert k.attributes["kind"] == "elementwise"
    assert any(op.attributes.get("vec") == 4 for op in k.walk() if op.name == "kernel.store") == vec
    grid, threads = math.prod(k.attributes["grid"]), math.prod(k.attributes["block"])
    assert grid * threads * (4 if vec else 1) >= math.prod(out.shape) > (grid - 1) * threads * (4 if vec else 1)


def test_elementwise_bytes_exact_without_padding():
    check_compute("Y[i, j] = A[i, j] + B[j]", [T(64, 128), T(128)], T(64, 128), bytes_tol=0.0)


def test_f16_in_and_out():
    check_compute("Y[i, j] = A[i, j] * B[i, j]", [T(9, 40, dtype="f16"), T(9, 40, dtype="f16")],
                  T(9, 40, dtype="f16"), rtol=1e-2, atol=1e-2)


def test_int64():
    check_compute("Y[i] = A[i] * 3 + B[i]", [T(100, dtype="i64"), T(100, dtype="i64")], T(100, dtype="i64"))
