"""The numpy evaluator against hand-written numpy."""
import math

import ml_dtypes
import numpy as np
import pytest

from tilec.ir.texpr import TexprError, evaluate, parse_texpr

RNG = np.random.default_rng(0)


def ev(text, inputs, shape, dtype="f32", **kw):
    return evaluate(parse_texpr(text), inputs, shape, dtype, **kw)


def conv_ref(x, w, stride, dil, pad):
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh = (h + 2 * pad - dil * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dil * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, f, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dil: i * dil + stride * oh: stride, j * dil: j * dil + stride * ow: stride]
            y += np.einsum("nchw,fc->nfhw", patch, w[:, :, i, j])
    return y


def test_matmul_and_batched_matmul():
    a, b = RNG.standard_normal((7, 5)), RNG.standard_normal((5, 3))
    np.testing.assert_allclose(ev("C[m, n] += A[m, k] * B[k, n]", [a, b], (7, 3), "f64"), a @ b)
    a, b = RNG.standard_normal((2, 4, 6)), RNG.standard_normal((2, 6, 3))
    y = ev("C[b, m, n] += A[b, m, k] * B[b, k, n] * 0.5", [a, b], (2, 4, 3), "f64")
    np.testing.assert_allclose(y, 0.5 * a @ b)
    # a broadcast weight read with a constant index takes the chunked (non-einsum-whole) path
    y = ev("C[b, m, n] += A[b, m, k] * B[0, k, n]", [a, b[:1]], (2, 4, 3), "f64")
    np.testing.assert_allclose(y, a @ b[0])


@pytest.mark.parametrize("stride, dil, pad", [(1, 1, 1), (2, 1, 3), (1, 2, 2), (2, 2, 0)])
def test_conv(stride, dil, pad):
    x, w = RNG.standard_normal((2, 3, 9, 9)), RNG.standard_normal((4, 3, 3, 3))
    ref = conv_ref(x, w, stride, dil, pad)
    text = (f"Y[n, f, h, w] += X[n, c, h * {stride} + kh * {dil} - {pad}, w * {stride} + kw * {dil} - {pad}]"
            " * W[f, c, kh, kw]")
    np.testing.assert_allclose(ev(text, [x, w], ref.shape, "f64"), ref, atol=1e-12)


def test_conv_resnet_size_runs_chunked():
    # 1x64x56x56, 3x3: one GEMM-sized einsum per reduce chunk, never a 115M-element product.
    x = RNG.standard_normal((1, 64, 56, 56)).astype(np.float32)
    w = RNG.standard_normal((64, 64, 3, 3)).astype(np.float32)
    y = ev("Y[n, f, h, w] += X[n, c, h + kh - 1, w + kw - 1] * W[f, c, kh, kw]", [x, w], (1, 64, 56, 56))
    ref = conv_ref(x.astype(np.float64), w.astype(np.float64), 1, 1, 1)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)


def test_max_pool_pads_with_minus_inf():
    x = -np.abs(RNG.standard_normal((1, 2, 5, 5))) - 1.0  # all negative: a 0 pad would win
    y = ev("Y[n, c, h, w] max= X[n, c, h * 2 + kh - 1, w * 2 + kw - 1]", [x], (1, 2, 3, 3), "f64",
           pad=-math.inf, hints={"kh": 3, "kw": 3})
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    ref = np.stack([xp[:, :, i:i + 5:2, j:j + 5:2] for i in range(3) for j in range(3)]).max(0)
    np.testing.assert_allclose(y, ref)


def test_average_pool_excluding_padding_with_valid():
    x = RNG.standard_normal((1, 1, 4, 4))
    hints = {"kh": 3, "kw": 3}
    s = ev("S[n, c, h, w] += X[n, c, h + kh - 1, w + kw - 1]", [x], (1, 1, 4, 4), "f64", hints=hints)
    cnt = ev("K[n, c, h, w] += f64(valid(X[n, c, h + kh - 1, w + kw - 1]))", [x], (1, 1, 4, 4), "f64",
             hints=hints)
    y = ev("Y[n, c, h, w] = S[n, c, h, w] / K[n, c, h, w]", [s, cnt], (1, 1, 4, 4), "f64")
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ones = np.pad(np.ones_like(x), ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = lambda a: sum(a[:, :, i:i + 4, j:j + 4] for i in range(3) for j in range(3))
    np.testing.assert_allclose(cnt[0, 0, 0], [4, 6, 6, 4])
    np.testing.assert_allclose(y, win(xp) / win(ones))


def test_softmax_as_four_expressions():
    x = RNG.standard_normal((3, 7)).astype(np.float32)
    m = ev("M[i, z] max= X[i, j]", [x], (3, 1))
    e = ev("E[i, j] = exp(X[i, j] - M[i, 0])", [x, m], (3, 7))
    s = ev("S[i, z] += E[i, j]", [e], (3, 1))
    y = ev("Y[i, j] = E[i, j] / S[i, 0]", [e, s], (3, 7))
    ref = np.exp(x - x.max(1, keepdims=True))
    np.testing.assert_allclose(y, ref / ref.sum(1, keepdims=True), rtol=1e-6)
    assert y.dtype == np.float32


def test_layernorm():
    x = RNG.standard_normal((4, 16))
    mean = ev("M[i] += X[i, j] / 16.0", [x], (4,), "f64")
    var = ev("V[i] += (X[i, j] - M[i]) * (X[i, j] - M[i]) / 16.0", [x, mean], (4,), "f64")
    y = ev("Y[i, j] = (X[i, j] - M[i]) * rsqrt(V[i] + 1e-05)", [x, mean, var], (4, 16), "f64")
    ref = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_trilu_with_axis_values():
    x = RNG.standard_normal((4, 5))
    np.testing.assert_allclose(ev("Y[i, j] = select(j >= i, X[i, j], 0.0)", [x], (4, 5), "f64"), np.triu(x))
    np.testing.assert_array_equal(ev("Y[i] = i * 2 + 1", [], (4,), "i64"), [1, 3, 5, 7])


def test_casts_and_dtypes():
    x = np.array([1.7, -1.7, 300.5, 0.5], dtype=np.float32)
    np.testing.assert_array_equal(ev("Y[i] = i32(X[i])", [x], (4,), "i32"), [1, -1, 300, 0])
    np.testing.assert_array_equal(ev("Y[i] = u8(X[i])", [x], (4,), "u8"), [1, 255, 44, 0])
    np.testing.assert_array_equal(ev("Y[i] = bool(X[i] - 0.5)", [x], (4,), "bool"), [True, True, True, False])
    y = ev("Y[i] = f16(X[i] * 10.0) / 10.0", [x.astype(np.float64)], (4,), "f64")
    np.testing.assert_array_equal(y, (x.astype(np.float64) * 10).astype(np.float16).astype(np.float64) / 10)
    y = ev("Y[i] = X[i] * 2.0", [x.astype(ml_dtypes.bfloat16)], (4,), "bf16")
    assert y.dtype == ml_dtypes.bfloat16
    # integer / and % follow C; the index / and % floor
    a = np.array([7, -7, 7, -7], dtype=np.int64)
    b = np.array([2, 2, -2, -2], dtype=np.int64)
    np.testing.assert_array_equal(ev("Y[i] = A[i] / B[i]", [a, b], (4,), "i64"), [3, -3, -3, 3])
    np.testing.assert_array_equal(ev("Y[i] = A[i] % B[i]", [a, b], (4,), "i64"), [1, -1, 1, -1])


def test_reshape_and_depth_to_space_with_div_mod():
    x = np.arange(24.0).reshape(2, 12)
    y = ev("Y[a, b, c] = X[a, b * 4 + c]", [x], (2, 3, 4), "f64")
    np.testing.assert_array_equal(y, x.reshape(2, 3, 4))
    y = ev("Y[i, j] = X[(i * 4 + j) / 12, (i * 4 + j) % 12]", [x], (6, 4), "f64")
    np.testing.assert_array_equal(y, x.reshape(6, 4))
    # depth-to-space (DCR, blocksize 2): Y[n, c, h, w] = X[n, ((h%2)*2 + w%2)*C + c, h/2, w/2]
    x = RNG.standard_normal((1, 8, 2, 3))
    y = ev("Y[n, c, h, w] = X[n, ((h % 2) * 2 + w % 2) * 2 + c, h / 2, w / 2]", [x], (1, 2, 4, 6), "f64")
    ref = x.reshape(1, 2, 2, 2, 2, 3).transpose(0, 3, 4, 1, 5, 2).reshape(1, 2, 4, 6)
    np.testing.assert_array_equal(y, ref)


def test_out_of_bounds_reads_pad_and_int_pads_clamp():
    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(ev("Y[i] = X[i - 1]", [x], (3,), "f64", pad=9.0), [9, 1, 2])
    xi = np.array([-5, -6], dtype=np.int8)
    y = ev("Y[i] max= X[i + k - 1]", [xi], (2,), "i8", pad=-math.inf, hints={"k": 3})
    np.testing.assert_array_equal(y, [-5, -5])


def test_concat_and_slice_read_past_or_within_inputs():
    a, b = np.arange(2.0), np.arange(10.0, 13.0)
    y = ev("Y[d0] = select(d0 < 2, X0[d0], X1[d0 - 2])", [a, b], (5,), "f64")
    np.testing.assert_array_equal(y, [0, 1, 10, 11, 12])
    x, w = RNG.standard_normal((4, 6)), RNG.standard_normal((6, 3))
    np.testing.assert_allclose(ev("C[m, n] += A[m, k] * B[k, n]", [x, w], (2, 3), "f64"), x[:2] @ w)


def test_scalar_output_and_other_combiners():
    x = RNG.standard_normal((3, 4))
    np.testing.assert_allclose(ev("Y[] += X[i, j]", [x], (), "f64"), x.sum())
    np.testing.assert_allclose(ev("Y[j] *= X[i, j]", [x], (4,), "f64"), x.prod(0))
    np.testing.assert_allclose(ev("Y[i] min= X[i, j] * X[i, j]", [x], (3,), "f64"), (x * x).min(1))
    np.testing.assert_allclose(ev("Y[i] += X[i, j] * X[i, j] + 1.0", [x], (3,), "f64"), (x * x + 1).sum(1))


def test_functions():
    x = RNG.uniform(0.1, 2.0, 6)
    for fn, ref in [("erf", np.vectorize(math.erf)(x)), ("sigmoid", 1 / (1 + np.exp(-x))),
                    ("rsqrt", 1 / np.sqrt(x)), ("round", np.rint(x)), ("tanh", np.tanh(x))]:
        np.testing.assert_allclose(ev(f"Y[i] = {fn}(X[i])", [x], (6,), "f64"), ref, err_msg=fn)
    np.testing.assert_allclose(ev("Y[i] = pow(X[i], 2.0) + max(X[i], 1.0)", [x], (6,), "f64"),
                               x ** 2 + np.maximum(x, 1))


def test_evaluate_errors():
    with pytest.raises(TexprError, match="2 arrays"):
        ev("Y[i] = X[i]", [np.ones(2), np.ones(2)], (2,))
    with pytest.raises(TexprError, match="unknown output dtype"):
        ev("Y[i] = X[i]", [np.ones(2)], (2,), "float32")
    with pytest.raises(TexprError, match="has rank 2"):
        ev("Y[i] = X[i]", [np.ones(2)], (3, 1))


def test_empty_reduce_gives_identity_in_output_range():
    x = np.zeros((2, 0), dtype=bool)
    np.testing.assert_array_equal(ev("Y[i] max= X[i, j]", [x], (2,), "bool"), [False, False])
    np.testing.assert_array_equal(ev("Y[i] min= X[i, j]", [x.astype(np.int8)], (2,), "i8"), [127, 127])
    np.testing.assert_array_equal(ev("Y[i] += X[i, j]", [x.astype(np.float32)], (2,), "f32"), [0, 0])
