"""MobileNetV2 (Sandler et al. 2018; torchvision ``mobilenet_v2``), from the Welder
evaluation.

Inverted residuals: 1x1 expand + BN + ReLU6 (Clip 0..6), 3x3 depthwise (group = channels)
+ BN + ReLU6, 1x1 linear projection + BN, residual Add when shapes allow. Full size
(width 1.0, 224^2) has torchvision's 3,504,872 parameters.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

# (expansion t, channels c, repeats n, first stride s), torchvision's table.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
            (6, 160, 3, 2), (6, 320, 1, 1))
CONFIGS = {
    "full": dict(width=1.0, settings=SETTINGS, last=1280, image=224, classes=1000),
    "small": dict(width=0.25, settings=SETTINGS[:4], last=128, image=32, classes=10),
}
SEED = 106


def _divisible(v: float, d: int = 8) -> int:
    """torchvision's _make_divisible: round to a multiple of 8, never dropping > 10%."""
    n = max(d, int(v + d / 2) // d * d)
    return n + d if n < 0.9 * v else n


def _conv_bn(b, x, p, c_in, c_out, k, stride=1, group=1, act=True):
    h = b.conv(x, f"{p}.conv", c_in, c_out, k, stride=stride, group=group)
    h = b.batchnorm(h, f"{p}.bn", c_out)
    return b.relu6(h) if act else h


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    c_in = _divisible(32 * c["width"])
    h = _conv_bn(b, "pixel_values", "features0", 3, c_in, 3, stride=2)
    idx = 1
    for t, ch, n, s in c["settings"]:
        c_out = _divisible(ch * c["width"])
        for i in range(n):
            p = f"features{idx}"
            stride = s if i == 0 else 1
            hidden = c_in * t
            y = h
            if t != 1:
                y = _conv_bn(b, y, f"{p}.expand", c_in, hidden, 1)
            y = _conv_bn(b, y, f"{p}.dw", hidden, hidden, 3, stride, group=hidden)
            y = _conv_bn(b, y, f"{p}.project", hidden, c_out, 1, act=False)
            h = b.op("Add", [h, y]) if stride == 1 and c_in == c_out else y
            c_in = c_out
            idx += 1
    last = _divisible(c["last"] * max(1.0, c["width"]))
    h = _conv_bn(b, h, f"features{idx}", c_in, last, 1)
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.gemm(h, "classifier", last, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("mobilenet_v2", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"MobileNetV2 ({size}): {c}")
