"""NAFNet (Chen et al. 2022, the GoPro width-32 configuration), from the Welder evaluation.

NAFBlocks: LayerNorm2d spelled with ReduceMean/Sub/Pow/Sqrt/Div (no LayerNormalization
over channels in ONNX), 1x1 expand, 3x3 depthwise, SimpleGate (Split channels, Mul),
simplified channel attention (GlobalAveragePool, 1x1 conv, Mul), and the learned
beta/gamma residual scales. A U-Net of encoders (2x2 stride-2 conv down), middle blocks
and decoders (1x1 conv + PixelShuffle as Reshape/Transpose up, additive skips), with a
global residual. Full size: 256^2 RGB image.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(width=32, enc=(1, 1, 1, 28), middle=1, dec=(1, 1, 1, 1), image=256),
    "small": dict(width=8, enc=(1, 1), middle=1, dec=(1, 1), image=32),
}
SEED = 109


def _layernorm2d(b, x, p, c, eps=1e-6):
    mu = b.op("ReduceMean", [x], axes=[1], keepdims=1)
    d = b.op("Sub", [x, mu])
    var = b.op("ReduceMean", [b.op("Pow", [d, b.const(2.0)])], axes=[1], keepdims=1)
    y = b.op("Div", [d, b.op("Sqrt", [b.op("Add", [var, b.const(eps)])])])
    w = b.gain(f"{p}.weight", (c, 1, 1))
    return b.op("Add", [b.op("Mul", [y, w]), b.tensor(f"{p}.bias", (c, 1, 1),
                                                      lambda: 0.1 * b.rng.standard_normal((c, 1, 1)))])


def _simple_gate(b, x, c):
    x1, x2 = b.split(x, [c, c], axis=1)
    return b.op("Mul", [x1, x2])


def _nafblock(b, x, p, c):
    h = _layernorm2d(b, x, f"{p}.norm1", c)
    h = b.conv(h, f"{p}.conv1", c, 2 * c, 1, bias=True)
    h = b.conv(h, f"{p}.conv2", 2 * c, 2 * c, 3, group=2 * c, bias=True)
    h = _simple_gate(b, h, c)
    sca = b.conv(b.op("GlobalAveragePool", [h]), f"{p}.sca", c, c, 1, bias=True)
    h = b.conv(b.op("Mul", [h, sca]), f"{p}.conv3", c, c, 1, bias=True)
    scale = (lambda: 0.5 * b.rng.standard_normal((1, c, 1, 1)))
    y = b.op("Add", [x, b.op("Mul", [h, b.tensor(f"{p}.beta", (1, c, 1, 1), scale)])])
    h = b.conv(_layernorm2d(b, y, f"{p}.norm2", c), f"{p}.conv4", c, 2 * c, 1, bias=True)
    h = b.conv(_simple_gate(b, h, c), f"{p}.conv5", c, c, 1, bias=True)
    return b.op("Add", [y, b.op("Mul", [h, b.tensor(f"{p}.gamma", (1, c, 1, 1), scale)])])


def _pixel_shuffle(b, x, c, hw):
    """PixelShuffle(2): [1, 4c, h, w] -> [1, c, 2h, 2w] as Reshape/Transpose/Reshape."""
    h = b.op("Reshape", [x, b.ints([1, c, 2, 2, hw, hw])])
    h = b.op("Transpose", [h], perm=[0, 1, 4, 2, 5, 3])
    return b.op("Reshape", [h, b.ints([1, c, 2 * hw, 2 * hw])])


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    ch, hw = c["width"], c["image"]
    h = b.conv("image", "intro", 3, ch, 3, bias=True)
    skips = []
    for ei, n in enumerate(c["enc"]):
        for i in range(n):
            h = _nafblock(b, h, f"encoders{ei}.{i}", ch)
        skips.append(h)
        h = b.conv(h, f"downs{ei}", ch, 2 * ch, 2, stride=2, pad=0, bias=True)
        ch, hw = ch * 2, hw // 2
    for i in range(c["middle"]):
        h = _nafblock(b, h, f"middle.{i}", ch)
    for di, n in enumerate(c["dec"]):
        h = b.conv(h, f"ups{di}", ch, 2 * ch, 1)
        ch, hw = ch // 2, hw * 2
        h = b.op("Add", [_pixel_shuffle(b, h, ch, hw // 2), skips.pop()])
        for i in range(n):
            h = _nafblock(b, h, f"decoders{di}.{i}", ch)
    h = b.conv(h, "ending", ch, 3, 3, bias=True)
    b.op("Add", [h, "image"], out="restored")
    img = (1, 3, c["image"], c["image"])
    return b.finish("nafnet", [f32("image", img)], [f32("restored", img)],
                    f"NAFNet ({size}): {c}")
