"""ResNeXt-29 for CIFAR (Xie et al. 2017, 8x64d), from the Rammer evaluation.

The grouped 3x3 convolution is written out as ``cardinality`` separate branches (form (a)
of the paper: each branch is 1x1 reduce -> 3x3 -> 1x1 expand, and the branches are
summed) so the graph has many small independent operators for an inter-operator scheduler
to pack. The parameter count equals the grouped form's: 34.4M at full size (the paper's
figure), 3 stages x 3 blocks, 32^2 input.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(cardinality=8, base_width=64, stem=64, widths=(256, 512, 1024), blocks=3,
                 image=32, classes=10),
    "small": dict(cardinality=4, base_width=4, stem=16, widths=(32, 64, 128), blocks=1,
                  image=16, classes=10),
}
SEED = 107


def _bn_relu(b, x, p, c):
    return b.op("Relu", [b.batchnorm(x, p, c)])


def _block(b, x, p, c_in, c_out, d, cardinality, stride):
    total = None
    for j in range(cardinality):
        q = f"{p}.branch{j}"
        h = _bn_relu(b, b.conv(x, f"{q}.reduce", c_in, d, 1), f"{q}.bn_reduce", d)
        h = _bn_relu(b, b.conv(h, f"{q}.conv", d, d, 3, stride=stride), f"{q}.bn", d)
        h = b.conv(h, f"{q}.expand", d, c_out, 1)
        total = h if total is None else b.op("Add", [total, h])
    total = b.batchnorm(total, f"{p}.bn_expand", c_out)
    short = x
    if stride != 1 or c_in != c_out:
        short = b.batchnorm(b.conv(x, f"{p}.shortcut", c_in, c_out, 1, stride=stride),
                            f"{p}.shortcut_bn", c_out)
    return b.op("Relu", [b.op("Add", [total, short])])


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    h = _bn_relu(b, b.conv("pixel_values", "stem", 3, c["stem"], 3), "stem_bn", c["stem"])
    c_in = c["stem"]
    for si, c_out in enumerate(c["widths"]):
        d = c["base_width"] * 2 ** si                    # per-branch width
        for bi in range(c["blocks"]):
            stride = 2 if si and not bi else 1
            h = _block(b, h, f"stage{si + 1}.{bi}", c_in, c_out, d, c["cardinality"], stride)
            c_in = c_out
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.gemm(h, "classifier", c_in, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("resnext29", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"ResNeXt-29 ({size}): {c}")
