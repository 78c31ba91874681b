"""The Roller operator suite: ~100 single operators with the shapes that occur in ResNet-50, MobileNetV2,
BERT-base and ViT, written as ``tile.compute`` IR (the form Roller consumes).

``suite()`` returns ``[(name, ir_text)]``; ``make bench-roller`` compiles each one.
"""
from __future__ import annotations


def _module(expr: str, ins: list, out: str, attrs: str = "") -> str:
    args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(ins))
    ops = ", ".join(f"%a{i}" for i in range(len(ins)))
    a = f" {{{attrs}}}" if attrs else ""
    return (f"module {{\n  func.func @main({args}) -> ({out}) {{\n"
            f"    %0 = tile.compute \"{expr}\" ({ops}){a} : ({', '.join(ins)}) -> {out}\n"
            f"    return %0 : {out}\n  }}\n}}\n")


def t(shape, dtype="f32") -> str:
    return "tensor<" + "".join(f"{d}x" for d in shape) + dtype + ">"


def matmul(m, k, n, dtype="f32"):
    return _module("C[m, n] += A[m, k] * B[k, n]", [t((m, k), dtype), t((k, n), dtype)], t((m, n), dtype))


def bmm(b, m, k, n, dtype="f32"):
    return _module("C[b, m, n] += A[b, m, k] * B[b, k, n]", [t((b, m, k), dtype), t((b, k, n), dtype)],
                   t((b, m, n), dtype))


def conv(n, c, h, f, k, stride, pad, dtype="f32"):
    o = (h + 2 * pad - k) // stride + 1
    expr = (f"Y[n, f, h, w] += X[n, c, h*{stride} + kh - {pad}, w*{stride} + kw - {pad}] * W[f, c, kh, kw]"
            if k > 1 or stride > 1 or pad else "Y[n, f, h, w] += X[n, c, h, w] * W[f, c, 0, 0]")
    if k == 1 and stride == 1 and not pad:
        expr = "Y[n, f, h, w] += X[n, c, h, w] * W[f, c]"
        return _module(expr, [t((n, c, h, h), dtype), t((f, c), dtype)], t((n, f, o, o), dtype))
    return _module(expr, [t((n, c, h, h), dtype), t((f, c, k, k), dtype)], t((n, f, o, o), dtype))


def dwconv(n, c, h, k, stride, pad):
    o = (h + 2 * pad - k) // stride + 1
    expr = f"Y[n, c, h, w] += X[n, c, h*{stride} + kh - {pad}, w*{stride} + kw - {pad}] * W[c, kh, kw]"
    return _module(expr, [t((n, c, h, h)), t((c, k, k))], t((n, c, o, o)))


def maxpool(n, c, h, k, stride, pad):
    o = (h + 2 * pad - k) // stride + 1
    expr = f"Y[n, c, h, w] max= X[n, c, h*{stride} + kh - {pad}, w*{stride} + kw - {pad}]"
    return _module(expr, [t((n, c, h, h))], t((n, c, o, o)), f"pad = -inf, axes = {{kh = {k}, kw = {k}}}")


def avgpool_global(n, c, h):
    return _module("Y[n, c] += X[n, c, h, w]", [t((n, c, h, h))], t((n, c)))


def elementwise(shape, fn):
    idx = ", ".join(f"d{i}" for i in range(len(shape)))
    return _module(f"Y[{idx}] = {fn.replace('@', f'X[{idx}]')}", [t(shape)], t(shape))


def bias_add(shape):
    idx = ", ".join(f"d{i}" for i in range(len(shape)))
    return _module(f"Y[{idx}] = X[{idx}] + B[d{len(shape) - 1}]", [t(shape), t((shape[-1],))], t(shape))


def row_reduce(rows, cols, comb):
    return _module(f"Y[i] {comb} X[i, j]", [t((rows, cols))], t((rows,)))


def suite() -> list:
    ops = []
    # ResNet-50 convolutions (batch 1, 224²): stem, bottleneck 1x1/3x3, downsampling.
    for c, h, f, k, s, p in [(3, 224, 64, 7, 2, 3), (64, 56, 64, 1, 1, 0), (64, 56, 64, 3, 1, 1),
                             (64, 56, 256, 1, 1, 0), (256, 56, 64, 1, 1, 0), (256, 56, 128, 1, 1, 0),
                             (128, 56, 128, 3, 2, 1), (128, 28, 512, 1, 1, 0), (512, 28, 128, 1, 1, 0),
                             (128, 28, 128, 3, 1, 1), (512, 28, 256, 1, 1, 0), (256, 28, 256, 3, 2, 1),
                             (256, 14, 1024, 1, 1, 0), (1024, 14, 256, 1, 1, 0), (256, 14, 256, 3, 1, 1),
                             (1024, 14, 512, 1, 1, 0), (512, 14, 512, 3, 2, 1), (512, 7, 2048, 1, 1, 0),
                             (2048, 7, 512, 1, 1, 0), (512, 7, 512, 3, 1, 1)]:
        ops.append((f"resnet50_conv_c{c}_h{h}_f{f}_k{k}_s{s}", conv(1, c, h, f, k, s, p)))
    # The same convolutions in f16 (CUDA cores: the mma kernel covers matrix products only), one per kind:
    # stem 7x7/2, 3x3, 3x3/2, 1x1 expand and 1x1 reduce.
    for c, h, f, k, s, p in [(3, 224, 64, 7, 2, 3), (64, 56, 64, 3, 1, 1), (256, 28, 256, 3, 2, 1),
                             (64, 56, 256, 1, 1, 0), (1024, 14, 256, 1, 1, 0)]:
        ops.append((f"resnet50_conv_c{c}_h{h}_f{f}_k{k}_s{s}_f16", conv(1, c, h, f, k, s, p, "f16")))
    ops.append(("resnet50_maxpool", maxpool(1, 64, 112, 3, 2, 1)))
    ops.append(("resnet50_gap", avgpool_global(1, 2048, 7)))
    ops.append(("resnet50_fc", matmul(1, 2048, 1000)))
    for shape in [(1, 64, 112, 112), (1, 256, 56, 56), (1, 512, 28, 28), (1, 1024, 14, 14), (1, 2048, 7, 7)]:
        ops.append((f"resnet50_relu_{shape[1]}x{shape[2]}", elementwise(shape, "max(@, 0.0)")))
    # MobileNetV2: depthwise 3x3 and pointwise 1x1 at each stage, ReLU6.
    for c, h, s in [(32, 112, 1), (96, 112, 2), (144, 56, 1), (144, 56, 2), (192, 28, 1), (192, 28, 2),
                    (384, 14, 1), (576, 14, 1), (576, 14, 2), (960, 7, 1)]:
        ops.append((f"mbv2_dw_c{c}_h{h}_s{s}", dwconv(1, c, h, 3, s, 1)))
    for c, h, f in [(32, 112, 16), (16, 112, 96), (24, 56, 144), (144, 56, 24), (32, 28, 192), (192, 28, 32),
                    (64, 14, 384), (384, 14, 64), (96, 14, 576), (160, 7, 960), (960, 7, 320), (320, 7, 1280)]:
        ops.append((f"mbv2_pw_c{c}_h{h}_f{f}", conv(1, c, h, f, 1, 1, 0)))
    for shape in [(1, 96, 112, 112), (1, 144, 56, 56), (1, 384, 14, 14)]:
        ops.append((f"mbv2_relu6_{shape[1]}x{shape[2]}", elementwise(shape, "min(max(@, 0.0), 6.0)")))
    # BERT-base (seq 128): projections, FFN, attention batched matmuls, softmax/layernorm reductions, GELU.
    for m, k, n in [(128, 768, 768), (128, 768, 2304), (128, 768, 3072), (128, 3072, 768), (512, 768, 768),
                    (512, 768, 3072), (512, 3072, 768), (1, 768, 768), (128, 768, 30522 // 6)]:
        ops.append((f"bert_matmul_{m}x{k}x{n}", matmul(m, k, n)))
        if (m, k, n) in [(128, 768, 768), (128, 768, 3072)]:
            ops.append((f"bert_matmul_{m}x{k}x{n}_f16", matmul(m, k, n, "f16")))
    for b, m, k, n in [(12, 128, 64, 128), (12, 128, 128, 64), (48, 128, 64, 128), (48, 128, 128, 64)]:
        ops.append((f"bert_bmm_{b}x{m}x{k}x{n}", bmm(b, m, k, n)))
    ops.append(("bert_bmm_12x128x64x128_f16", bmm(12, 128, 64, 128, "f16")))
    ops.append(("bert_softmax_max", row_reduce(12 * 128, 128, "max=")))
    ops.append(("bert_softmax_sum", row_reduce(12 * 128, 128, "+=")))
    ops.append(("bert_layernorm_mean", row_reduce(128, 768, "+=")))
    ops.append(("bert_gelu", elementwise((128, 3072), "@ * 0.5 * (1.0 + erf(@ * 0.7071067811865476))")))
    ops.append(("bert_bias_add", bias_add((128, 3072))))
    ops.append(("bert_exp", elementwise((12, 128, 128), "exp(@)")))
    # ViT-B/16 and ViT-S/32 (197 and 50 tokens).
    for m, k, n in [(197, 768, 768), (197, 768, 2304), (197, 768, 3072), (197, 3072, 768), (50, 384, 384),
                    (50, 384, 1152), (50, 384, 1536), (50, 1536, 384)]:
        ops.append((f"vit_matmul_{m}x{k}x{n}", matmul(m, k, n)))
    ops.append(("vit_matmul_197x768x768_f16", matmul(197, 768, 768, "f16")))   # 197 rows: ragged mma tiles
    for b, m, k, n in [(12, 197, 64, 197), (12, 197, 197, 64), (6, 50, 64, 50), (6, 50, 50, 64)]:
        ops.append((f"vit_bmm_{b}x{m}x{k}x{n}", bmm(b, m, k, n)))
    ops.append(("vit_patch_embed_s16", conv(1, 3, 224, 768, 16, 16, 0)))
    ops.append(("vit_patch_embed_s32", conv(1, 3, 224, 384, 32, 32, 0)))
    ops.append(("vit_layernorm_mean", row_reduce(197, 768, "+=")))
    ops.append(("vit_softmax_max", row_reduce(12 * 197, 197, "max=")))
    ops.append(("vit_gelu", elementwise((197, 3072), "@ * 0.5 * (1.0 + erf(@ * 0.7071067811865476))")))
    return ops


if __name__ == "__main__":
    for name, _ in suite():
        print(name)
    print(len(suite()), "operators")
