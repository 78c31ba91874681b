"""Conformer encoder blocks (Gulati et al. 2020, Conformer-M), from the Welder evaluation.

Each block is the macaron stack x + FFN/2, x + MHSA, x + Conv, x + FFN/2, LayerNorm.
FFN: LayerNorm, Linear 4x, Swish (x * Sigmoid(x)), Linear. Conv module: LayerNorm,
pointwise Conv1d to 2C, GLU (Split + Sigmoid + Mul), depthwise Conv1d (kernel 31),
BatchNormalization, Swish, pointwise Conv1d. The MHSA uses absolute positions (the paper's
relative positional encoding is left out). Input: features already subsampled to
``[1, frames, dim]``. Note the convolutions are 1-D (``kernel_shape`` of length 1).
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(blocks=16, dim=256, heads=4, kernel=31, frames=256),
    "small": dict(blocks=1, dim=32, heads=4, kernel=7, frames=32),
}
SEED = 111


def _ffn(b, x, p, d):
    h = b.swish(b.linear(b.layernorm(x, f"{p}.norm", d), f"{p}.fc1", d, 4 * d))
    h = b.linear(h, f"{p}.fc2", 4 * d, d)
    return b.op("Add", [x, b.op("Mul", [h, b.const(0.5)])])


def _conv_module(b, x, p, d, k, t):
    h = b.op("Transpose", [b.layernorm(x, f"{p}.norm", d)], perm=[0, 2, 1])   # [1, d, T]
    h = b.conv(h, f"{p}.pointwise1", d, 2 * d, (1,), bias=True)
    a, g = b.split(h, [d, d], axis=1)
    h = b.op("Mul", [a, b.op("Sigmoid", [g])])                                # GLU
    h = b.conv(h, f"{p}.depthwise", d, d, (k,), group=d, bias=True)
    h = b.swish(b.batchnorm(h, f"{p}.bn", d))
    h = b.conv(h, f"{p}.pointwise2", d, d, (1,), bias=True)
    return b.op("Add", [x, b.op("Transpose", [h], perm=[0, 2, 1])])


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    d, t = c["dim"], c["frames"]
    h = "features"
    for i in range(c["blocks"]):
        p = f"blocks{i}"
        h = _ffn(b, h, f"{p}.ffn1", d)
        a = b.attention(b.layernorm(h, f"{p}.mhsa.norm", d), f"{p}.mhsa", 1, t, d, c["heads"])
        h = b.op("Add", [h, a])
        h = _conv_module(b, h, f"{p}.conv", d, c["kernel"], t)
        h = _ffn(b, h, f"{p}.ffn2", d)
        h = b.layernorm(h, f"{p}.norm_out", d)
    b.nodes[-1].output[0] = "encoded"
    return b.finish("conformer", [f32("features", (1, t, d))], [f32("encoded", (1, t, d))],
                    f"Conformer ({size}): {c}")
