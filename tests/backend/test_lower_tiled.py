"""The generic tiled kernel: matmul (partial tiles), batched matmul, conv (strided, dilated, padded, grouped,
depthwise), pooling; numerics under the emulator in two thread orders, and modelled vs measured bytes."""
import pytest

from lower_harness import check_compute
from tilec.ir import TensorType


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


CASES = {
    "matmul_partial": ("C[m, n] += A[m, k] * B[k, n]", [T(100, 70), T(70, 50)], T(100, 50), {}),
    "batched_matmul": ("C[b, m, n] += A[b, m, k] * B[b, k, n]", [T(3, 20, 33), T(3, 33, 17)], T(3, 20, 17), {}),
    "conv_stride2_pad1": ("Y[n, f, h, w] += X[n, c, h*2 + kh - 1, w*2 + kw - 1] * W[f, c, kh, kw]",
                          [T(2, 3, 15, 15), T(8, 3, 3, 3)], T(2, 8, 8, 8), {}),
    "conv_dilated": ("Y[n, f, h, w] += X[n, c, h + kh*2 - 2, w + kw*2 - 2] * W[f, c, kh, kw]",
                     [T(1, 4, 9, 9), T(5, 4, 3, 3)], T(1, 5, 9, 9), {}),
    "conv_grouped": ("Y[n, g, f, h, w] += X[n, g, c, h + kh - 1, w + kw - 1] * W[g, f, c, kh, kw]",
                     [T(1, 2, 3, 7, 7), T(2, 4, 3, 3, 3)], T(1, 2, 4, 7, 7), {}),
    "depthwise": ("Y[n, c, h, w] += X[n, c, h + kh - 1, w + kw - 1] * W[c, kh, kw]",
                  [T(2, 6, 10, 10), T(6, 3, 3)], T(2, 6, 10, 10), {}),
    "maxpool": ("Y[n, c, h, w] max= X[n, c, h*2 + kh - 1, w*2 + kw - 1]", [T(2, 3, 15, 15)], T(2, 3, 8, 8),
                {"pad": float("-inf"), "axes": {"kh": 3, "kw": 3}}),
    "avgpool": ("Y[n, c, h, w] += X[n, c, h*2 + kh, w*2 + kw] * 0.25", [T(1, 4, 8, 8)], T(1, 4, 4, 4),
                {"axes": {"kh": 2, "kw": 2}}),
    "matmul_rtile": ("C[m, n] += A[m, k] * B[k, n]", [T(64, 40), T(40, 48)], T(64, 48),
                     {"rtile": {"block": {"m": 32, "n": 16}, "thread": {"m": 4, "n": 2}, "step": {"k": 8}}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiled_numerics_and_bytes(case):
    expr, ins, out, attrs = CASES[case]
    k = check_compute(expr, ins, out, bytes_tol=0.05, **attrs)
    assert k.attributes["kind"] == "tiled"
    assert k.attributes["flops"] > 0


def test_tiled_fp16_inputs_fp32_accumulation():
    k = check_compute("C[m, n] += A[m, k] * B[k, n]", [T(33, 40, dtype="f16"), T(40, 24, dtype="f16")],
                      T(33, 24, dtype="f16"), rtol=2e-2, atol=2e-2, orders=("normal",))
    assert k.attributes["kind"] == "tiled"


def test_rtile_must_divide():
    from lower_harness import compute_module, lower
    from tilec.ir import CompileError
    m = compute_module("C[m, n] += A[m, k] * B[k, n]", [T(8, 8), T(8, 8)], T(8, 8),
                       rtile={"block": {"m": 8, "n": 8}, "thread": {"m": 3, "n": 1}, "step": {"k": 4}})
    with pytest.raises(CompileError, match="multiple of its thread tile"):
        lower(m)
