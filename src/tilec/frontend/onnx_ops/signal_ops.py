"""Converters for ONNX's signal-processing ops: the window generators, MelWeightMatrix, DFT and STFT.

The generators' outputs depend only on scalar inputs that fix their shape (the window size, the DFT
length), which tilec needs at compile time anyway; they become constants computed as ONNX's reference
computes them. DFT and STFT are matmuls of the signal with constant cos/sin matrices (in f64, so the sums
match the reference's FFT well inside f32's tolerance), which every pipeline compiles like any GEMM.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES, np_dtype
from ..registry import converter
from .compose import Emitter, attr_dtype


def _scalar(ctx, node, i: int, what: str):
    v = ctx.const_input(node, i, what).reshape(-1)
    if v.size != 1:
        raise ctx.error(node, f"{node.op_type} {what} must be a single value")
    return v[0]


def _window(ctx, node, formula):
    size = int(_scalar(ctx, node, 0, "size"))
    if size < 1:
        raise ctx.error(node, f"{node.op_type} size must be positive, not {size}")
    dt = attr_dtype(ctx, node, int(ctx.attr(node, "output_datatype", 1)), f"{node.op_type} output_datatype")
    n_1 = size if int(ctx.attr(node, "periodic", 1)) else size - 1
    n = np.arange(size, dtype=np_dtype(dt) if dt in FLOAT_DTYPES else np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return [ctx.constant(np.asarray(formula(n, n_1)).astype(np_dtype(dt)))]


@converter("HannWindow", since=17)
def hann_window(ctx, node):
    return _window(ctx, node, lambda n, m: np.sin(n * np.pi / m) ** 2)


@converter("HammingWindow", since=17)
def hamming_window(ctx, node):
    alpha = 25.0 / 46.0
    return _window(ctx, node, lambda n, m: alpha - np.cos(n * np.pi * 2 / m) * (1 - alpha))


@converter("BlackmanWindow", since=17)
def blackman_window(ctx, node):
    return _window(ctx, node, lambda n, m: np.cos(n * (np.pi * 2) / m) * -0.5
                   + np.cos(n * (np.pi * 4) / m) * 0.08 + 0.42)


@converter("MelWeightMatrix", since=17)
def mel_weight_matrix(ctx, node):
    """``[dft_length // 2 + 1, num_mel_bins]`` triangular filters between the two edge frequencies."""
    bins, dft, rate = (int(_scalar(ctx, node, i, w)) for i, w in
                       enumerate(("num_mel_bins", "dft_length", "sample_rate")))
    low, high = (float(_scalar(ctx, node, i, w)) for i, w in ((3, "lower_edge_hertz"), (4, "upper_edge_hertz")))
    if bins < 1 or dft < 1 or rate < 1:
        raise ctx.error(node, "MelWeightMatrix num_mel_bins, dft_length and sample_rate must be positive")
    dt = attr_dtype(ctx, node, int(ctx.attr(node, "output_datatype", 1)), "MelWeightMatrix output_datatype")
    low_mel = 2595 * np.log1p(low / 700) / np.log(10)
    high_mel = 2595 * np.log1p(high / 700) / np.log(10)
    edges = np.arange(0, bins + 2) * ((high_mel - low_mel) / (bins + 2)) + low_mel
    edges = (((dft + 1) * (700 * np.expm1(edges / 2595 * np.log(10)))) // rate).astype(int)
    out = np.zeros((dft // 2 + 1, bins))
    for i in range(bins):
        lo, mid, hi = edges[i], edges[i + 1], edges[i + 2]
        if mid == lo:
            out[mid, i] = 1
        else:
            out[lo:mid + 1, i] = (np.arange(lo, mid + 1) - lo) / float(mid - lo)
        if hi > mid:
            out[mid:hi, i] = (hi - np.arange(mid, hi)) / float(hi - mid)
    return [ctx.constant(out.astype(np_dtype(dt)))]


def _dft_matrices(n_in: int, length: int, n_out: int, inverse: bool):
    """cos and sin of 2 pi k m / length, ``[n_in, n_out]`` (m the input position, k the output one)."""
    m = np.arange(n_in).reshape(-1, 1)
    k = np.arange(n_out).reshape(1, -1)
    theta = 2 * np.pi * ((m * k) % length) / length
    return np.cos(theta), np.sin(theta) * (1 if inverse else -1)


def complex_matmul(g, re, im, cos, sin):
    """``(re + i im) @ (cos + i sin)`` over the last axis, f64 constants: (real, imag)."""
    c, s = g.const(cos, "f64"), g.const(sin, "f64")
    real = g.op("matmul", [re, c])
    imag = g.op("matmul", [re, s])
    if im is not None:
        real = g.op("sub", [real, g.op("matmul", [im, s])])
        imag = g.op("add", [imag, g.op("matmul", [im, c])])
    return real, imag


def _split_complex(g, x):
    """``[..., 1 or 2]`` -> (real, imag or None) without the last axis, in f64."""
    last = x.type.rank - 1
    xf = g.cast(x, "f64")
    part = (lambda k: g.op("squeeze", [g.op("slice", [xf], starts=[k], ends=[k + 1], axes=[last], steps=[1])],
                           axes=[last]))
    return part(0), (part(1) if x.type.shape[-1] == 2 else None)


@converter("DFT", since=17)
def dft(ctx, node):
    """The discrete Fourier transform along ``axis`` of a real ``[..., 1]`` or complex ``[..., 2]``
    signal (zero-padded or cut to dft_length); onesided keeps the first half (+1) of the spectrum, or with
    inverse, reads one and returns the real signal (irfft); inverse divides by the length."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    rank = x.type.rank
    if x.type.dtype not in FLOAT_DTYPES or rank < 2 or x.type.shape[-1] not in (1, 2):
        raise ctx.error(node, "DFT input must be a float [..., 1] (real) or [..., 2] (complex) tensor")
    if ctx.opset >= 20:
        axis = int(_scalar(ctx, node, 2, "axis")) if ctx.has_input(node, 2) else -2
    else:
        axis = int(ctx.attr(node, "axis", 1))
    if not -rank <= axis < rank - 1 or axis % rank == rank - 1:
        raise ctx.error(node, f"DFT axis {axis} must name a signal axis (not the last, complex one)")
    axis %= rank
    inverse, onesided = bool(int(ctx.attr(node, "inverse", 0))), bool(int(ctx.attr(node, "onesided", 0)))
    n = x.type.shape[axis]
    length = int(_scalar(ctx, node, 1, "dft_length")) if ctx.has_input(node, 1) else \
        (2 * (n - 1) if inverse and onesided else n)
    if length < 1:
        raise ctx.error(node, f"DFT dft_length must be positive, not {length}")
    perm = [d for d in range(rank - 1) if d != axis] + [axis]
    re, im = _split_complex(g, g.transpose(x, perm + [rank - 1]))
    if inverse and onesided:
        # irfft: the missing half is the conjugate mirror of the given one; weight each given bin by 1 or 2
        n_in = min(n, length // 2 + 1)
        re, im = (None if t is None else g.slice_last(t, 0, n_in) for t in (re, im))
        w = np.full(n_in, 2.0)
        w[0] = 1.0
        if length % 2 == 0 and n_in == length // 2 + 1:
            w[-1] = 1.0
        cos, sin = _dft_matrices(n_in, length, length, True)
        real, _ = complex_matmul(g, re, im, cos * w[:, None] / length, sin * w[:, None] / length)
        parts = [real]
    else:
        n_in = min(n, length)
        re, im = (None if t is None else g.slice_last(t, 0, n_in) for t in (re, im))
        n_out = length // 2 + 1 if onesided else length
        cos, sin = _dft_matrices(n_in, length, n_out, inverse)
        scale = 1.0 / length if inverse else 1.0
        parts = list(complex_matmul(g, re, im, cos * scale, sin * scale))
    y = g.op("concat", [g.op("unsqueeze", [p], axes=[rank - 1]) for p in parts], axis=rank - 1) \
        if len(parts) > 1 else g.op("unsqueeze", [parts[0]], axes=[rank - 1])
    back = [0] * rank
    for i, d in enumerate(perm + [rank - 1]):
        back[d] = i
    return [g.cast(g.transpose(y, back), x.type.dtype)]


@converter("STFT", since=17)
def stft(ctx, node):
    """Frames of ``frame_length`` every ``frame_step`` samples, times the window, each transformed:
    ``[batch, frames, bins, 2]`` (bins = length // 2 + 1 when onesided)."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    if x.type.dtype not in FLOAT_DTYPES or x.type.rank != 3 or x.type.shape[-1] not in (1, 2):
        raise ctx.error(node, "STFT signal must be a float [batch, length, 1 or 2] tensor")
    step = int(_scalar(ctx, node, 1, "frame_step"))
    window = ctx.input(node, 2)
    if ctx.has_input(node, 3):
        length = int(_scalar(ctx, node, 3, "frame_length"))
    elif window is not None:
        length = window.type.shape[0]
    else:
        raise ctx.error(node, "STFT needs frame_length or a window")
    n = x.type.shape[1]
    if step < 1 or not 1 <= length <= n or (window is not None and window.type.shape != (length,)):
        raise ctx.error(node, f"STFT frame_step {step} / frame_length {length} / window do not fit a signal of {n}")
    onesided = bool(int(ctx.attr(node, "onesided", 1)))
    frames = (n - length) // step + 1
    idx = (np.arange(frames).reshape(-1, 1) * step + np.arange(length).reshape(1, -1)).reshape(-1)
    re, im = _split_complex(g, x)
    framed = []
    for t in (re, im):
        if t is None:
            framed.append(None)
            continue
        f = g.reshape(g.op("gather", [t, ctx.constant(idx.astype(np.int64))], axis=1), [x.type.shape[0], frames, length])
        if window is not None:
            f = g.op("mul", [f, g.cast(window, "f64")])
        framed.append(f)
    n_out = length // 2 + 1 if onesided else length
    cos, sin = _dft_matrices(length, length, n_out, False)
    real, imag = complex_matmul(g, framed[0], framed[1], cos, sin)
    y = g.op("concat", [g.op("unsqueeze", [p], axes=[3]) for p in (real, imag)], axis=3)
    return [g.cast(y, x.type.dtype)]
