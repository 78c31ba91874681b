"""A NASNet-A CIFAR net (Zoph et al. 2018, "6@768"), from the Rammer evaluation.

Cells follow NASNet-A's topology: each cell first projects its two inputs (the previous
two cell outputs) with ReLU-Conv1x1-BN, using a factorized reduction (two offset stride-2
1x1 paths, Pad+Slice for the offset) when the older input is twice the resolution. A
normal cell combines five pairs of {separable 3x3/5x5, 3x3 avg pool, identity} by Add and
concatenates them with its input (6F channels); a reduction cell combines stride-2
separable 3x3/5x5/7x7 convs and max/avg pools (4F channels). Separable conv = twice
(ReLU, depthwise kxk, pointwise 1x1, BN). Lots of small parallel branches, which is what
makes NASNet a Rammer showcase.
"""

from __future__ import annotations

from ._common import ZooBuilder, f32

CONFIGS = {
    "full": dict(filters=32, cells=6, stem_mult=3, image=32, classes=10),
    "small": dict(filters=8, cells=1, stem_mult=3, image=16, classes=10),
}
SEED = 110


class _Cells:
    """Cell builders sharing one ZooBuilder; ``F`` is the cell's filter count."""

    def __init__(self, b: ZooBuilder):
        self.b = b

    def sep(self, x, p, c, k, stride=1):
        b = self.b
        for i, s in enumerate((stride, 1)):
            x = b.op("Relu", [x])
            x = b.conv(x, f"{p}.dw{i}", c, c, k, stride=s, group=c)
            x = b.batchnorm(b.conv(x, f"{p}.pw{i}", c, c, 1), f"{p}.bn{i}", c)
        return x

    def pool(self, kind, x, stride=1):
        attrs = dict(kernel_shape=[3, 3], strides=[stride, stride], pads=[1, 1, 1, 1])
        if kind == "avg":
            attrs["count_include_pad"] = 0
        return self.b.op("AveragePool" if kind == "avg" else "MaxPool", [x], **attrs)

    def project(self, x, p, c_in, c_out):
        b = self.b
        return b.batchnorm(b.conv(b.op("Relu", [x]), f"{p}.conv", c_in, c_out, 1), f"{p}.bn",
                           c_out)

    def factorized_reduce(self, x, p, c_in, c_out, hw):
        """Halve resolution without losing pixels: 1x1/s2 on x and on x shifted by one."""
        b = self.b
        x = b.op("Relu", [x])
        a = b.conv(x, f"{p}.path1", c_in, c_out // 2, 1, stride=2)
        shifted = b.op("Pad", [x, b.ints([0, 0, 0, 0, 0, 0, 1, 1])])
        shifted = b.op("Slice", [shifted, b.ints([1, 1]), b.ints([hw + 1, hw + 1]),
                                 b.ints([2, 3])])
        s = b.conv(shifted, f"{p}.path2", c_in, c_out - c_out // 2, 1, stride=2)
        return b.batchnorm(b.op("Concat", [a, s], axis=1), f"{p}.bn", c_out)

    def normal(self, p, prev, cur, f):
        b, add = self.b, (lambda x, y: self.b.op("Add", [x, y]))
        c0 = add(self.sep(prev, f"{p}.comb0_left", f, 5), self.sep(cur, f"{p}.comb0_right", f, 3))
        c1 = add(self.sep(cur, f"{p}.comb1_left", f, 5), self.sep(cur, f"{p}.comb1_right", f, 3))
        c2 = add(self.pool("avg", prev), cur)
        c3 = add(self.pool("avg", cur), self.pool("avg", cur))
        c4 = add(self.sep(prev, f"{p}.comb4_left", f, 3), prev)
        return b.op("Concat", [cur, c0, c1, c2, c3, c4], axis=1)

    def reduction(self, p, prev, cur, f):
        b, add = self.b, (lambda x, y: self.b.op("Add", [x, y]))
        c0 = add(self.sep(prev, f"{p}.comb0_left", f, 5, 2), self.sep(cur, f"{p}.comb0_right", f, 7, 2))
        c1 = add(self.pool("max", prev, 2), self.sep(cur, f"{p}.comb1_right", f, 7, 2))
        c2 = add(self.pool("avg", prev, 2), self.sep(cur, f"{p}.comb2_right", f, 5, 2))
        c3 = add(c1, self.pool("avg", c0))
        c4 = add(self.sep(c0, f"{p}.comb4_left", f, 3), self.pool("max", prev, 2))
        return b.op("Concat", [c1, c2, c3, c4], axis=1)


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    b = ZooBuilder(SEED, weights)
    cells = _Cells(b)
    f, hw = c["filters"], c["image"]
    stem_c = f * c["stem_mult"]
    stem = b.batchnorm(b.conv("pixel_values", "stem", 3, stem_c, 3), "stem_bn", stem_c)
    # (tensor, channels, resolution) of the previous two cell outputs.
    prev, cur = (stem, stem_c, hw), (stem, stem_c, hw)
    idx = 0
    for stage in range(3):
        kinds = (["reduction"] if stage else []) + ["normal"] * c["cells"]
        for kind in kinds:
            if kind == "reduction":
                f *= 2
            p = f"cell{idx}"
            if prev[2] != cur[2]:
                pp = cells.factorized_reduce(prev[0], f"{p}.prev", prev[1], f, prev[2])
            else:
                pp = cells.project(prev[0], f"{p}.prev", prev[1], f)
            cp = cells.project(cur[0], f"{p}.cur", cur[1], f)
            out = getattr(cells, kind)(p, pp, cp, f)
            res = cur[2] // 2 if kind == "reduction" else cur[2]
            prev, cur = cur, (out, f * (4 if kind == "reduction" else 6), res)
            idx += 1
    h = b.op("Flatten", [b.op("GlobalAveragePool", [b.op("Relu", [cur[0]])])], axis=1)
    b.gemm(h, "classifier", cur[1], c["classes"])
    b.nodes[-1].output[0] = "logits"
    return b.finish("nasnet", [f32("pixel_values", (1, 3, c["image"], c["image"]))],
                    [f32("logits", (1, c["classes"]))], f"NASNet-A ({size}): {c}")
