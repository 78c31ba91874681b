"""A BlockDrop ResNet (Wu et al. 2018, ``R110_C10``), from the Cocktailer evaluation.

The backbone is the CIFAR ResNet-110 (3 stages x 18 basic blocks, 16/32/64 channels,
stride-2 downsampling as AvgPool + zero channels, as BlockDrop's ``DownsampleB``). The
policy network's per-block keep decision is replaced by a constant 0/1 mask, applied the
way BlockDrop's forward does it: ``x = relu(residual + f(x)) * m + residual * (1 - m)``.
A compiler that folds the mask can skip dropped blocks; one that does not runs them all.
"""

from __future__ import annotations

import numpy as np

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(blocks=18, widths=(16, 32, 64), image=32, classes=10, keep=0.6),
    "small": dict(blocks=2, widths=(8, 16, 32), image=16, classes=10, keep=0.5),
}
SEED = 108


def _conv_bn(b, x, p, c_in, c_out, stride=1):
    return b.batchnorm(b.conv(x, f"{p}.conv", c_in, c_out, 3, stride=stride), f"{p}.bn", c_out)


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    # The policy comes from its own generator so it is the same in every weight mode.
    n_blocks = c["blocks"] * len(c["widths"])
    policy = (np.random.default_rng(SEED).random(n_blocks) < c["keep"]).astype(np.float32)
    c_in = c["widths"][0]
    h = b.op("Relu", [_conv_bn(b, "pixel_values", "stem", 3, c_in)])
    t = 0
    for si, c_out in enumerate(c["widths"]):
        for bi in range(c["blocks"]):
            p = f"layer{si + 1}.{bi}"
            stride = 2 if si and not bi else 1
            residual = h
            if stride != 1 or c_in != c_out:
                pooled = b.op("AveragePool", [h], kernel_shape=[stride, stride],
                              strides=[stride, stride])
                residual = b.op("Concat", [pooled, b.op("Mul", [pooled, b.const(0.0)])],
                                axis=1)
            f = b.op("Relu", [_conv_bn(b, h, f"{p}.1", c_in, c_out, stride)])
            f = _conv_bn(b, f, f"{p}.2", c_out, c_out)
            fx = b.op("Relu", [b.op("Add", [residual, f])])
            m = b.const(np.full((1, 1, 1, 1), policy[t], np.float32))
            keep = b.op("Mul", [fx, m])
            skip = b.op("Mul", [residual, b.op("Sub", [b.const(1.0), m])])
            h = b.op("Add", [keep, skip])
            c_in = c_out
            t += 1
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.gemm(h, "fc", c_in, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("blockdrop", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))],
                    f"BlockDrop ResNet ({size}): {c}, policy {policy.astype(int).tolist()}")
