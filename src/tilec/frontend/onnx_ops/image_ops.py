"""Converters for ONNX image ops built from graph ops: LRN, CenterCropPad, Upsample, AffineGrid, Col2Im.

LRN's channel-window sum is a conv of ones over the channel axis; CenterCropPad is a slice and a pad;
Upsample is Resize with Resize-10's coordinate rules; AffineGrid multiplies theta with a constant grid of
normalised homogeneous coordinates; Col2Im gathers each position's covering column entries and sums them.
"""
from __future__ import annotations

import numpy as np

from ...ir.types import FLOAT_DTYPES
from ..registry import converter
from .compose import Emitter


@converter("LRN")
def lrn(ctx, node):
    """``x / (bias + alpha / size * sum of x^2 over channels c - (size-1)//2 .. c + ceil((size-1)/2))^beta``."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    if x.type.dtype not in FLOAT_DTYPES or x.type.rank < 3:
        raise ctx.error(node, "LRN takes a float tensor of rank 3 or more")
    size = int(ctx.attr(node, "size", 0))
    if size < 1:
        raise ctx.error(node, "LRN requires a positive size")
    alpha, beta = float(ctx.attr(node, "alpha", 1e-4)), float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    shape, dt = list(x.type.shape), x.type.dtype
    rest = int(np.prod(shape[2:], dtype=np.int64))
    sq = g.reshape(g.op("mul", [x, x]), [shape[0], 1, shape[1], rest])
    ones = g.const(np.ones((1, 1, size, 1)), dt)
    before, after = (size - 1) // 2, -(-(size - 1) // 2)
    window = g.op("conv", [sq, ones], strides=[1, 1], dilations=[1, 1], pads=[before, 0, after, 0], group=1)
    denom = g.op("add", [g.op("mul", [g.reshape(window, shape), g.const(alpha / size, dt)]), g.const(bias, dt)])
    return [g.op("div", [x, g.op("pow", [denom, g.const(beta, dt)])])]


@converter("CenterCropPad", since=18)
def center_crop_pad(ctx, node):
    """Each named axis cut or zero-padded to its new size, centred (the odd element at the end)."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    rank = x.type.rank
    sizes = [int(s) for s in ctx.const_input(node, 1, "shape").reshape(-1)]
    axes = ctx.attr(node, "axes", None)
    axes = list(range(rank)) if axes is None else [int(a) % rank if -rank <= int(a) < rank else None for a in axes]
    if None in axes or len(axes) != len(sizes) or any(s < 0 for s in sizes):
        raise ctx.error(node, f"CenterCropPad shape {sizes} does not match axes {axes} of rank {rank}")
    starts, ends, cut_axes, pads = [], [], [], [0] * (2 * rank)
    for a, s in zip(axes, sizes):
        dim = x.type.shape[a]
        if s < dim:
            begin = (dim - s) // 2
            starts.append(begin)
            ends.append(begin + s)
            cut_axes.append(a)
        elif s > dim:
            pads[a] = (s - dim) // 2
            pads[rank + a] = s - dim - pads[a]
    y = x
    if cut_axes:
        y = g.op("slice", [y], starts=starts, ends=ends, axes=cut_axes, steps=[1] * len(cut_axes))
    if any(pads):
        y = g.op("pad", [y], pads=pads, mode="constant", value=0.0)
    return [y]


@converter("Upsample", since=7)
def upsample(ctx, node):
    """Resize with ``floor(dim * scale)`` outputs, asymmetric coordinates and floor rounding for nearest
    (what Upsample meant, and how Resize-10 reads)."""
    x = ctx.input(node, 0)
    mode = ctx.attr(node, "mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear"):
        raise ctx.error(node, f"unknown Upsample mode '{mode}'")
    if ctx.opset >= 9:
        scales = [float(s) for s in ctx.const_input(node, 1, "scales").reshape(-1)]
    else:
        scales = [float(s) for s in ctx.attr(node, "scales", [])]
    if len(scales) != x.type.rank or any(s < 1 for s in scales):
        raise ctx.error(node, f"Upsample needs one scale >= 1 per input dim, got {scales}")
    attrs = {"mode": "linear" if mode == "bilinear" else mode, "coordinate_transformation_mode": "asymmetric",
             "nearest_mode": "floor", "scales": scales,
             "sizes": [int(np.floor(d * s)) for d, s in zip(x.type.shape, scales)]}
    return ctx.emit("graph.resize", [x], attrs)


def _normalised(n: int, align_corners: bool) -> np.ndarray:
    """The n sample positions of [-1, 1]: the ends themselves (align_corners) or the pixel centres."""
    if align_corners:
        return np.linspace(-1.0, 1.0, n) if n > 1 else np.zeros(1)
    return -1.0 + (2.0 * np.arange(n) + 1.0) / n


@converter("AffineGrid", since=20)
def affine_grid(ctx, node):
    """``grid[n, ..., :] = theta[n] @ (x, y[, z], 1)`` at every output position (2-D: ``[N, H, W, 2]``;
    3-D: ``[N, D, H, W, 3]``)."""
    g = Emitter(ctx)
    theta = ctx.input(node, 0)
    size = [int(s) for s in ctx.const_input(node, 1, "size").reshape(-1)]
    align = bool(int(ctx.attr(node, "align_corners", 0)))
    dims = len(size) - 2
    if dims not in (2, 3) or theta.type.shape != (size[0], dims, dims + 1) or theta.type.dtype not in FLOAT_DTYPES:
        raise ctx.error(node, f"AffineGrid theta {list(theta.type.shape)} does not fit size {size}")
    spatial = size[2:]
    axes = np.meshgrid(*(_normalised(n, align) for n in spatial), indexing="ij")
    # Homogeneous (x, y[, z], 1): the last spatial axis is x.
    coords = [a.reshape(-1) for a in reversed(axes)] + [np.ones(int(np.prod(spatial)))]
    base = g.const(np.stack(coords, axis=0), "f64")            # [dims + 1, positions]
    grid = g.op("matmul", [g.cast(theta, "f64"), base])          # [N, dims, positions]
    grid = g.transpose(grid, [0, 2, 1])
    return [g.cast(g.reshape(grid, [size[0]] + spatial + [dims]), theta.type.dtype)]


def _col2im_sources(image, block, dilations, pads, strides):
    """For each image position p (rows) and block offset k (columns), the sliding-block index l whose
    column holds x[.., k, l] for p, or -1 when none does. ``[prod(image), prod(block)]``."""
    n = len(image)
    blocks = [(d + pads[i] + pads[n + i] - dilations[i] * (b - 1) - 1) // strides[i] + 1
              for i, (d, b) in enumerate(zip(image, block))]
    if any(b < 1 for b in blocks):
        return None, blocks
    p = np.stack(np.meshgrid(*(np.arange(d) for d in image), indexing="ij"), -1).reshape(-1, 1, n)
    k = np.stack(np.meshgrid(*(np.arange(b) for b in block), indexing="ij"), -1).reshape(1, -1, n)
    q = p + np.asarray(pads[:n]) - k * np.asarray(dilations)            # [P, K, n] in block-stride units
    s = np.asarray(strides)
    ok = np.all((q % s == 0) & (q >= 0) & (q // s < np.asarray(blocks)), axis=-1)
    l = np.ravel_multi_index(tuple(np.moveaxis(np.clip(q // s, 0, np.asarray(blocks) - 1), -1, 0)), blocks)
    return np.where(ok, l, -1), blocks


@converter("Col2Im", since=18)
def col2im(ctx, node):
    """Sum of the sliding blocks back into the image: each output position gathers, for every block
    offset, the one column entry that covers it (or a zero), then sums over the offsets."""
    g = Emitter(ctx)
    x = ctx.input(node, 0)
    image = [int(d) for d in ctx.const_input(node, 1, "image_shape").reshape(-1)]
    block = [int(d) for d in ctx.const_input(node, 2, "block_shape").reshape(-1)]
    n = len(image)
    dil = list(ctx.attr(node, "dilations", None) or [1] * n)
    pads = list(ctx.attr(node, "pads", None) or [0] * (2 * n))
    strides = list(ctx.attr(node, "strides", None) or [1] * n)
    kprod = int(np.prod(block, dtype=np.int64))
    if x.type.rank != 3 or n != len(block) or n < 1 or kprod < 1 or x.type.shape[1] % kprod:
        raise ctx.error(node, f"Col2Im input {list(x.type.shape)} does not fit block_shape {block}")
    src, blocks = _col2im_sources(image, block, dil, pads, strides)
    length = x.type.shape[2]
    if src is None or int(np.prod(blocks)) != length:
        raise ctx.error(node, f"Col2Im input has {length} blocks, the image {image} gives {blocks}")
    ctx.check_size(node, [x.type.shape[0], x.type.shape[1] // kprod, src.size], np.dtype(np.float32))
    batch, channels = x.type.shape[0], x.type.shape[1] // kprod
    cols = g.reshape(x, [batch, channels, kprod, length])
    cols = g.op("concat", [cols, g.const(np.zeros((batch, channels, kprod, 1)), x.type.dtype)], axis=3)
    flat = g.reshape(cols, [batch, channels, kprod * (length + 1)])
    k = np.arange(kprod).reshape(1, -1)
    idx = np.where(src >= 0, k * (length + 1) + src, k * (length + 1) + length)   # missing: the zero
    picked = g.op("gather", [flat, ctx.constant(idx.astype(np.int64))], axis=2)  # [N, C, P, K]
    summed = g.op("reduce_sum", [picked], axes=[3], keepdims=0)
    return [g.reshape(summed, [batch, channels] + image)]

