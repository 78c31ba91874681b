"""The NeRF MLP (Mildenhall et al. 2020), from the Welder evaluation.

Inputs are already positionally encoded (ONNX has no Sin/Cos in tilec's op set):
``points`` [N, 63] = xyz with 10 frequencies, ``dirs`` [N, 27] = view direction with 4.
Eight 256-wide Gemm+Relu layers with the encoded points concatenated back in after the
fifth, a density head, a 256 feature layer, the direction branch (128 + Relu) and a
Sigmoid RGB head. Full size: 4096 samples (e.g. 64 rays x 64 samples), 595,844 parameters.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(samples=4096, width=256, depth=8, skip=4, pts=63, dirs=27),
    "small": dict(samples=64, width=32, depth=4, skip=2, pts=63, dirs=27),
}
SEED = 112


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    w = c["width"]
    h, n_in = "points", c["pts"]
    for i in range(c["depth"]):
        h = b.op("Relu", [b.gemm(h, f"pts_linears{i}", n_in, w)])
        n_in = w
        if i == c["skip"]:
            h = b.op("Concat", ["points", h], axis=-1)
            n_in = w + c["pts"]
    b.gemm(h, "alpha_linear", w, 1)
    b.nodes[-1].output[0] = "sigma"
    feat = b.gemm(h, "feature_linear", w, w)
    h = b.op("Relu", [b.gemm(b.op("Concat", [feat, "dirs"], axis=-1), "views_linear",
                             w + c["dirs"], w // 2)])
    b.op("Sigmoid", [b.gemm(h, "rgb_linear", w // 2, 3)], out="rgb")
    n = c["samples"]
    return b.finish("nerf_mlp", [f32("points", (n, c["pts"])), f32("dirs", (n, c["dirs"]))],
                    [f32("rgb", (n, 3)), f32("sigma", (n, 1))], f"NeRF MLP ({size}): {c}")
