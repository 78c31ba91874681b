"""Swin-T (Liu et al. 2021; timm ``swin_tiny_patch4_window7_224``), from the Welder
evaluation.

Windowing is Reshape/Transpose; the cyclic shift of shifted-window blocks is Slice+Concat
(no Roll op); patch merging is four strided Slices + Concat + LayerNorm + Linear. The
relative position bias is gathered from its learned table at build time and enters the
graph as a constant [1, heads, N, N] (what torch's exporter leaves after constant folding);
it is counted as the (2w-1)^2 x heads table it comes from, so the full model reports
timm's 28,288,354 parameters. The shifted-window attention mask is a constant as well.
"""

from __future__ import annotations

import numpy as np

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(image=224, patch=4, embed=96, depths=(2, 2, 6, 2), heads=(3, 6, 12, 24),
                 window=7, classes=1000),
    "small": dict(image=32, patch=2, embed=32, depths=(2, 2), heads=(2, 4), window=4,
                  classes=10),
}
SEED = 103


def _relative_index(w: int) -> np.ndarray:
    """Swin's relative_position_index: [N, N] indices into the (2w-1)^2 bias table."""
    coords = np.stack(np.meshgrid(np.arange(w), np.arange(w), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0) + (w - 1)
    return rel[..., 0] * (2 * w - 1) + rel[..., 1]


def _shift_mask(res: int, w: int, s: int) -> np.ndarray:
    """Swin's attention mask for shifted windows: [nW, 1, N, N], 0 or -100."""
    img = np.zeros((res, res), np.float32)
    cnt = 0
    for hs in (slice(0, -w), slice(-w, -s), slice(-s, None)):
        for ws in (slice(0, -w), slice(-w, -s), slice(-s, None)):
            img[hs, ws] = cnt
            cnt += 1
    win = img.reshape(res // w, w, res // w, w).transpose(0, 2, 1, 3).reshape(-1, w * w)
    diff = win[:, None, :] - win[:, :, None]
    return np.where(diff != 0, -100.0, 0.0).astype(np.float32)[:, None]


def _roll(b, x, shift, res):
    """torch.roll(x, (shift, shift), dims=(1, 2)) on [1, res, res, C] via Slice+Concat."""
    k = shift % res
    for axis in (1, 2):
        ax = b.ints([axis])
        tail = b.op("Slice", [x, b.ints([res - k]), b.ints([res]), ax])
        head = b.op("Slice", [x, b.ints([0]), b.ints([res - k]), ax])
        x = b.op("Concat", [tail, head], axis=axis)
    return x


def _block(b, x, p, res, dim, heads, w, shift):
    n, nw = w * w, (res // w) ** 2
    h = b.op("Reshape", [b.layernorm(x, f"{p}.norm1", dim), b.ints([1, res, res, dim])])
    if shift:
        h = _roll(b, h, -shift, res)
    h = b.op("Reshape", [h, b.ints([1, res // w, w, res // w, w, dim])])
    h = b.op("Reshape", [b.op("Transpose", [h], perm=[0, 1, 3, 2, 4, 5]),
                         b.ints([nw, n, dim])])                     # windows [nW, N, C]
    idx = _relative_index(w).reshape(-1)
    size = (2 * w - 1) ** 2

    def bias():
        table = 0.5 * b.rng.standard_normal((size, heads))
        return table[idx].reshape(n, n, heads).transpose(2, 0, 1)[None]

    adds = [b.tensor(f"{p}.attn.relative_position_bias", (1, heads, n, n), bias,
                     counted=size * heads)]
    if shift:
        adds.append(b.const(_shift_mask(res, w, shift)))
    h = b.attention(h, f"{p}.attn", nw, n, dim, heads, fused_qkv=True, adds=adds)
    h = b.op("Reshape", [h, b.ints([1, res // w, res // w, w, w, dim])])
    h = b.op("Reshape", [b.op("Transpose", [h], perm=[0, 1, 3, 2, 4, 5]),
                         b.ints([1, res, res, dim])])
    if shift:
        h = _roll(b, h, shift, res)
    x = b.op("Add", [x, b.op("Reshape", [h, b.ints([1, res * res, dim])])])
    m = b.gelu(b.linear(b.layernorm(x, f"{p}.norm2", dim), f"{p}.mlp.fc1", dim, 4 * dim))
    return b.op("Add", [x, b.linear(m, f"{p}.mlp.fc2", 4 * dim, dim)])


def _merge(b, x, p, res, dim):
    """PatchMerging: 2x2 neighbours to channels, LayerNorm(4C), Linear 4C -> 2C."""
    h = b.op("Reshape", [x, b.ints([1, res, res, dim])])
    parts = [b.op("Slice", [h, b.ints([i, j]), b.ints([res, res]), b.ints([1, 2]),
                            b.ints([2, 2])]) for i, j in ((0, 0), (1, 0), (0, 1), (1, 1))]
    h = b.op("Reshape", [b.op("Concat", parts, axis=-1),
                         b.ints([1, (res // 2) ** 2, 4 * dim])])
    return b.linear(b.layernorm(h, f"{p}.norm", 4 * dim), f"{p}.reduction", 4 * dim, 2 * dim,
                    bias=False)


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    dim, w = c["embed"], c["window"]
    res = c["image"] // c["patch"]
    h = b.conv("pixel_values", "patch_embed", 3, dim, c["patch"], stride=c["patch"], pad=0,
               bias=True)
    h = b.op("Transpose", [b.op("Reshape", [h, b.ints([1, dim, res * res])])], perm=[0, 2, 1])
    h = b.layernorm(h, "patch_embed.norm", dim)
    for si, (depth, heads) in enumerate(zip(c["depths"], c["heads"])):
        if si:
            h = _merge(b, h, f"layers{si - 1}.downsample", res, dim)
            res, dim = res // 2, dim * 2
        for bi in range(depth):
            # Swin drops the shift when one window covers the whole feature map.
            shift = w // 2 if bi % 2 and res > w else 0
            h = _block(b, h, f"layers{si}.blocks{bi}", res, dim, heads, w, shift)
    h = b.layernorm(h, "norm", dim)
    h = b.op("ReduceMean", [h], axes=[1], keepdims=0)               # [1, C]
    b.gemm(h, "head", dim, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("swin_t", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"Swin ({size}): {c}")
