"""The tilec model zoo: ONNX builders for the models the Welder, Rammer and Cocktailer
papers evaluate on.

``ZOO`` maps a model name to a ``ZooEntry``; ``entry.build(size, weights)`` returns an
``onnx.ModelProto`` (opset 17, static shapes, seeded weights). ``size`` is ``"full"`` (the
real architecture; generated on demand by ``build_zoo.py``, never committed) or
``"small"`` (same structure, a few layers and small widths, for tests). ``weights`` is
``"random"`` (the default), ``"zeros"`` or ``"meta"`` (learned tensors without data, for
counting parameters and shape inference; see ``_common.ZooBuilder``). Every model records
its parameter count in ``metadata_props["tilec.zoo.params"]``.

Import as ``samples.models`` with the repository root on ``sys.path``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import onnx

from . import (bert, blockdrop, conformer, mobilenet, nafnet, nasnet, nerf, resnet, resnext,
               rnn, swin, vit)
from ._common import ALLOWED_OPS, WEIGHT_MODES

SIZES = ("small", "full")


@dataclass(frozen=True)
class ZooEntry:
    name: str
    build: Callable[..., onnx.ModelProto]  # build(size="small", weights="random")
    module: str         # source module (its text keys the build cache)
    source: str         # the paper the architecture comes from
    evaluated_in: str   # which of Welder / Rammer / Cocktailer evaluates it
    stresses: str       # what part of tilec it exercises
    full_shape: str     # the full model's input and configuration, in words
    # Exact full-size parameter count (the published one where it exists: torchvision,
    # timm, HF; otherwise the closed form for the configuration).
    reference_params: int | None = None


def _e(name, build, module, source, evaluated_in, stresses, full_shape, ref=None):
    return ZooEntry(name, build, module.__name__, source, evaluated_in, stresses, full_shape,
                    ref)


_ENTRIES = [
    _e("bert_base", bert.build, bert, "Devlin et al. 2019 (BERT)", "Welder",
       "Welder: attention/LayerNorm/GELU fusion, large GEMMs",
       "seq 128, 12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522", 109_482_240),
    _e("vit_s32", vit.build, vit, "Dosovitskiy et al. 2021 (ViT)", "Welder",
       "Welder: patchify conv + transformer, short sequence (50 tokens)",
       "224^2, patch 32, 12 layers, hidden 384, 6 heads, MLP 1536", 22_878_952),
    _e("swin_t", swin.build, swin, "Liu et al. 2021 (Swin Transformer)", "Welder",
       "Welder: window partition/shift as Reshape/Transpose/Slice chains around attention",
       "224^2, patch 4, depths 2-2-6-2, heads 3-6-12-24, window 7, dim 96", 28_288_354),
    _e("mobilenet_v2", mobilenet.build, mobilenet, "Sandler et al. 2018 (MobileNetV2)",
       "Welder", "Welder: memory-bound depthwise convs, conv+BN+Clip fusion",
       "224^2, width 1.0", 3_504_872),
    _e("resnet18", resnet.build_resnet18, resnet, "He et al. 2016 (ResNet)", "Rammer/Welder",
       "Roller: conv tiles; Welder: conv+BN+Relu+Add fusion", "224^2, basic blocks 2-2-2-2",
       11_689_512),
    _e("resnet50", resnet.build_resnet50, resnet, "He et al. 2016 (ResNet)", "Rammer/Welder",
       "Roller: conv tiles; Welder: bottleneck fusion", "224^2, bottlenecks 3-4-6-3",
       25_557_032),
    _e("nafnet", nafnet.build, nafnet, "Chen et al. 2022 (NAFNet)", "Welder",
       "Welder: high-resolution elementwise/reduction chains (LayerNorm2d, SimpleGate, SCA)",
       "256^2 RGB, width 32, encoders 1-1-1-28, middle 1, decoders 1-1-1-1", 17_111_907),
    _e("conformer", conformer.build, conformer, "Gulati et al. 2020 (Conformer)", "Welder",
       "Welder: attention plus 1-D depthwise conv, GLU, Swish, BN fusion",
       "256 frames, 16 blocks, dim 256, 4 heads, kernel 31 (Conformer-M encoder)"),
    _e("nerf_mlp", nerf.build, nerf, "Mildenhall et al. 2020 (NeRF)", "Welder",
       "Welder: skinny GEMM chains fused through Concat skips",
       "4096 samples, 8x256 + skip, encoded xyz 63 / dirs 27", 595_844),
    _e("nasnet", nasnet.build, nasnet, "Zoph et al. 2018 (NASNet-A)", "Rammer",
       "Rammer: many small parallel branches (separable convs, pools) per cell",
       "CIFAR 32^2, NASNet-A 6@768 (F=32, 6 normal cells per stage)"),
    _e("resnext29", resnext.build, resnext, "Xie et al. 2017 (ResNeXt)", "Rammer",
       "Rammer: 8 independent branches per block to co-schedule",
       "CIFAR 32^2, 29 layers, cardinality 8, width 64d"),
    _e("lstm", rnn.build_lstm, rnn, "Hochreiter & Schmidhuber 1997 (LSTM)",
       "Rammer/Cocktailer", "Cocktailer: one ONNX LSTM (a loop over time) per layer",
       "10 layers, hidden 256, 100 steps, batch 1 (nn.LSTM(256, 256, num_layers=10))",
       5_263_360),
    _e("nasrnn", rnn.build_nasrnn, rnn, "Zoph & Le 2017 (NAS RNN cell)", "Rammer/Cocktailer",
       "Cocktailer: a Loop over time whose body is 10 stacked NAS cells of tiny ops",
       "10 layers, hidden 256, 100 steps, batch 1", 10_506_240),
    _e("seq2seq", rnn.build_seq2seq, rnn, "Sutskever et al. 2014 / Cho et al. 2014 (GRU)",
       "Rammer/Cocktailer",
       "Cocktailer: GRU encoder loop, greedy decoder Loop with a data-dependent (EOS) exit",
       "vocab 8000, embed 512, hidden 512, 16 source steps, at most 16 decoded"),
    _e("blockdrop", blockdrop.build, blockdrop, "Wu et al. 2018 (BlockDrop)", "Cocktailer",
       "Cocktailer: data-dependent block skipping, one If per residual block",
       "CIFAR 32^2, ResNet-110 (3 x 18 basic blocks), linear policy head"),
]
ZOO: dict[str, ZooEntry] = {e.name: e for e in _ENTRIES}

__all__ = ["ZOO", "ZooEntry", "SIZES", "WEIGHT_MODES", "ALLOWED_OPS", "build", "param_count"]


def build(name: str, size: str = "small", weights: str = "random") -> onnx.ModelProto:
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    return ZOO[name].build(size, weights)


def param_count(model: onnx.ModelProto) -> int:
    """The learned-parameter count a zoo builder recorded in the model's metadata."""
    return int({p.key: p.value for p in model.metadata_props}["tilec.zoo.params"])
