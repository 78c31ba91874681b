"""ViT-S/32 (Dosovitskiy et al. 2021; timm ``vit_small_patch32_224``), from the Welder
evaluation.

Patchify is a stride-32 Conv, then flatten to tokens, prepend the class token, add the
learned position embedding, 12 pre-LN blocks (fused qkv projection, exact GELU MLP),
final LayerNorm and a Gemm head on the class token. 22,878,952 parameters at full size.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(image=224, patch=32, hidden=384, heads=6, layers=12, mlp=1536, classes=1000),
    "small": dict(image=32, patch=8, hidden=64, heads=4, layers=2, mlp=128, classes=10),
}
SEED = 102


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    hid, heads = c["hidden"], c["heads"]
    grid = c["image"] // c["patch"]
    tokens = grid * grid + 1
    b = ZooBuilder(SEED, weights)
    eps = 1e-6

    h = b.conv("pixel_values", "patch_embed", 3, hid, c["patch"], stride=c["patch"], pad=0,
               bias=True)                                            # [1, hid, g, g]
    h = b.op("Transpose", [b.op("Reshape", [h, b.ints([1, hid, grid * grid])])],
             perm=[0, 2, 1])                                         # [1, g*g, hid]
    cls = b.tensor("cls_token", (1, 1, hid), lambda: b.rng.standard_normal((1, 1, hid)))
    h = b.op("Concat", [cls, h], axis=1)
    pos = b.tensor("pos_embed", (1, tokens, hid),
                   lambda: 0.1 * b.rng.standard_normal((1, tokens, hid)))
    h = b.op("Add", [h, pos])
    for li in range(c["layers"]):
        p = f"blocks{li}"
        a = b.attention(b.layernorm(h, f"{p}.norm1", hid, eps), f"{p}.attn", 1, tokens, hid,
                        heads, fused_qkv=True)
        h = b.op("Add", [h, a])
        m = b.gelu(b.linear(b.layernorm(h, f"{p}.norm2", hid, eps), f"{p}.fc1", hid, c["mlp"]))
        h = b.op("Add", [h, b.linear(m, f"{p}.fc2", c["mlp"], hid)])
    h = b.layernorm(h, "norm", hid, eps)
    cls_out = b.op("Gather", [h, b.ints(0)], axis=1)                 # [1, hid]
    b.gemm(cls_out, "head", hid, c["classes"])
    b.nodes[-1].output[0] = "logits"
    img = c["image"]
    return b.finish("vit_s32", [f32("pixel_values", (1, 3, img, img))],
                    [f32("logits", (1, c["classes"]))], f"ViT ({size}): {c}")
