"""ResNet-18 and ResNet-50 (He et al. 2016; torchvision v1.5, stride on the 3x3 conv).

Conv (no bias) + BatchNormalization + Relu throughout, MaxPool stem, 1x1 projection
shortcuts, GlobalAveragePool, Flatten and a Gemm classifier, as torchvision exports them.
Full size matches torchvision: 11,689,512 and 25,557,032 parameters.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "resnet18": {
        "full": dict(block="basic", layers=(2, 2, 2, 2), width=64, image=224, classes=1000),
        "small": dict(block="basic", layers=(1, 1, 1, 1), width=8, image=32, classes=10),
    },
    "resnet50": {
        "full": dict(block="bottleneck", layers=(3, 4, 6, 3), width=64, image=224,
                     classes=1000),
        "small": dict(block="bottleneck", layers=(1, 1, 1, 1), width=8, image=32, classes=10),
    },
}
SEEDS = {"resnet18": 104, "resnet50": 105}


def conv_bn(b, x, p, c_in, c_out, k, stride=1, relu=True):
    h = b.batchnorm(b.conv(x, f"{p}.conv", c_in, c_out, k, stride=stride), f"{p}.bn", c_out)
    return b.op("Relu", [h]) if relu else h


def _basic(b, x, p, c_in, planes, stride):
    h = conv_bn(b, x, f"{p}.1", c_in, planes, 3, stride)
    h = conv_bn(b, h, f"{p}.2", planes, planes, 3, relu=False)
    return h, planes


def _bottleneck(b, x, p, c_in, planes, stride):
    h = conv_bn(b, x, f"{p}.1", c_in, planes, 1)
    h = conv_bn(b, h, f"{p}.2", planes, planes, 3, stride)
    h = conv_bn(b, h, f"{p}.3", planes, planes * 4, 1, relu=False)
    return h, planes * 4


def build_resnet(name: str, size: str = "small", weights: str = "random"):
    c = CONFIGS[name][size]
    b = ZooBuilder(SEEDS[name], weights)
    block = _basic if c["block"] == "basic" else _bottleneck
    w = c["width"]
    h = conv_bn(b, "pixel_values", "stem", 3, w, 7, stride=2)
    h = b.op("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    c_in = w
    for si, n in enumerate(c["layers"]):
        planes = w * 2 ** si
        for bi in range(n):
            p = f"layer{si + 1}.{bi}"
            stride = 2 if si and not bi else 1
            out, c_out = block(b, h, p, c_in, planes, stride)
            short = h
            if stride != 1 or c_in != c_out:
                short = conv_bn(b, h, f"{p}.downsample", c_in, c_out, 1, stride, relu=False)
            h = b.op("Relu", [b.op("Add", [out, short])])
            c_in = c_out
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.gemm(h, "fc", c_in, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish(name, [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"{name} ({size}): {c}")


def build_resnet18(size: str = "small", weights: str = "random"):
    return build_resnet("resnet18", size, weights)


def build_resnet50(size: str = "small", weights: str = "random"):
    return build_resnet("resnet50", size, weights)
