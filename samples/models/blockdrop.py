"""A BlockDrop ResNet (Wu et al. 2018, ``R110_C10``), from the Cocktailer evaluation.

The backbone is the CIFAR ResNet-110 (3 stages x 18 basic blocks, 16/32/64 channels,
stride-2 downsampling as AvgPool + zero channels, as BlockDrop's ``DownsampleB``). A policy
head decides per block whether it runs: ``keep = sigmoid(policy(x)) > 0.5``, and each block
is an ``If`` on its decision, ``x = relu(residual + f(x))`` when kept and ``x = residual``
when dropped - the data-dependent skipping Cocktailer evaluates (a dropped block costs
nothing). The policy network is reduced to one linear layer on the stem's pooled features
(BlockDrop's is a ResNet-8 on the image); it is what makes the decisions input-dependent.
"""

from __future__ import annotations

from onnx import TensorProto, helper

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(blocks=18, widths=(16, 32, 64), image=32, classes=10),
    "small": dict(blocks=2, widths=(8, 16, 32), image=16, classes=10),
}
SEED = 108


def _conv_bn(b, x, p, c_in, c_out, stride=1):
    return b.batchnorm(b.conv(x, f"{p}.conv", c_in, c_out, 3, stride=stride), f"{p}.bn", c_out)


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    n_blocks = c["blocks"] * len(c["widths"])
    c_in, res = c["widths"][0], c["image"]
    h = b.op("Relu", [_conv_bn(b, "pixel_values", "stem", 3, c_in)])
    pooled = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    probs = b.op("Sigmoid", [b.gemm(pooled, "policy.fc", c_in, n_blocks)])
    probs = b.op("Reshape", [probs, b.ints([n_blocks])])                   # [blocks]
    t = 0
    for si, c_out in enumerate(c["widths"]):
        for bi in range(c["blocks"]):
            p = f"layer{si + 1}.{bi}"
            stride = 2 if si and not bi else 1
            res //= stride
            residual = h
            if stride != 1 or c_in != c_out:
                pooled = b.op("AveragePool", [h], kernel_shape=[stride, stride],
                              strides=[stride, stride])
                residual = b.op("Concat", [pooled, b.op("Mul", [pooled, b.const(0.0)])],
                                axis=1)
            keep = b.op("Greater", [b.op("Gather", [probs, b.ints(t)], axis=0), b.const(0.5)])
            shape = (1, c_out, res, res)
            with b.subgraph() as run:
                f = b.op("Relu", [_conv_bn(b, h, f"{p}.1", c_in, c_out, stride)])
                f = _conv_bn(b, f, f"{p}.2", c_out, c_out)
                fx = b.op("Relu", [b.op("Add", [residual, f])])
            with b.subgraph() as skip:
                same = b.op("Identity", [residual])
            h = b.op("If", [keep], then_branch=helper.make_graph(
                run, f"{p}.run", [], [helper.make_tensor_value_info(fx, TensorProto.FLOAT, shape)]),
                else_branch=helper.make_graph(
                    skip, f"{p}.skip", [], [helper.make_tensor_value_info(same, TensorProto.FLOAT,
                                                                          shape)]))
            c_in = c_out
            t += 1
    h = b.op("Flatten", [b.op("GlobalAveragePool", [h])], axis=1)
    b.gemm(h, "fc", c_in, c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("blockdrop", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"BlockDrop ResNet ({size}): {c}")
