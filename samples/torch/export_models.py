"""Export tiny, self-defined torch models to ONNX with both torch exporters.

These are the importer's "real models": graphs exactly as torch writes them, with the
exporters' naming, constant handling, shape arithmetic and metadata, rather than the tidy
hand-built graphs of ``samples/build_samples.py``. The models are defined here in plain
torch (no ``transformers``/``torchvision`` download) and kept tiny so the files can be
committed:

- ``bert``:   2 layers, hidden 64, 4 heads, FFN 256, seq 16, word + token-type + position
              embeddings, padding attention mask input, exact GELU, tanh pooler.
- ``gpt2``:   2 pre-LN layers, hidden 64, 4 heads, seq 16, causal mask, GELU (tanh
              approximation), LM head tied to the token embedding.
- ``resnet``: stem Conv3x3+BN+ReLU+MaxPool, two basic-block stages (16, 32 channels, the
              second with a strided 1x1 downsample), global AvgPool, fc -> 10, on 3x32x32.
- ``vit``:    4x4 patch Conv, cls token, learned position embedding, 2 pre-LN layers
              (F.scaled_dot_product_attention), final LN, head on the cls token -> 10.

Written layout (relative to this folder)::

    legacy/<name>.onnx        torch.onnx.export(dynamo=False, opset_version=17)
    dynamo/<name>.onnx        torch.onnx.export(dynamo=True) at the exporter's default opset
    external_data/bert/bert.onnx (+ bert.onnx.data)   the legacy bert, weights in a side file
    <same folder>/<name>.io.npz   seeded inputs (keys = ONNX input names) and torch's outputs
                                  (keys = ONNX output names), so tests need no torch

Everything is seeded and in eval mode with static shapes; token-id inputs are int64. The
dynamo exporter records a Python stack trace per node (``pkg.torch.onnx.stack_trace``) with
absolute paths of this machine; that one metadata key is dropped so the committed files do
not depend on where they were built. All other metadata is kept as exported.

Usage::

    python samples/torch/export_models.py [--out DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import warnings
import zipfile

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
LEGACY_OPSET = 17
SEQ = 16
VOCAB = 100
SEED = 0


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

class BertSelfAttention(nn.Module):
    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.d = heads, hidden // heads
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        b, s, _ = t.shape
        return t.view(b, s, self.heads, self.d).transpose(1, 2)

    def forward(self, x: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d) + ext_mask
        ctx = scores.softmax(-1) @ v
        b, _, s, _ = ctx.shape
        return self.out(ctx.transpose(1, 2).reshape(b, s, -1))


class BertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int):
        super().__init__()
        self.attn = BertSelfAttention(hidden, heads)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, ext_mask: torch.Tensor) -> torch.Tensor:
        x = self.ln1(x + self.attn(x, ext_mask))
        return self.ln2(x + self.ffn_out(F.gelu(self.ffn_in(x))))


class TinyBert(nn.Module):
    def __init__(self, vocab=VOCAB, seq=SEQ, hidden=64, heads=4, ffn=256, layers=2, types=2):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(seq, hidden)
        self.token_type = nn.Embedding(types, hidden)
        self.ln = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(BertLayer(hidden, heads, ffn) for _ in range(layers))
        self.pooler = nn.Linear(hidden, hidden)
        self.register_buffer("position_ids", torch.arange(seq)[None], persistent=False)

    def forward(self, input_ids, token_type_ids, attention_mask):
        s = input_ids.shape[1]
        x = self.word(input_ids) + self.token_type(token_type_ids) + \
            self.position(self.position_ids[:, :s])
        x = self.ln(x)
        # BERT's additive mask: 0 where attended, -10000 at padding, broadcast over heads/rows.
        ext = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -10000.0
        for layer in self.layers:
            x = layer(x, ext)
        return x, torch.tanh(self.pooler(x[:, 0]))


class GPT2Block(nn.Module):
    def __init__(self, hidden: int, heads: int, seq: int):
        super().__init__()
        self.heads, self.d = heads, hidden // heads
        self.ln1 = nn.LayerNorm(hidden)
        self.c_attn = nn.Linear(hidden, 3 * hidden)      # fused QKV, as GPT-2 does
        self.c_proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.fc = nn.Linear(hidden, 4 * hidden)
        self.proj = nn.Linear(4 * hidden, hidden)
        self.register_buffer("causal", torch.tril(torch.ones(seq, seq, dtype=torch.bool))[None, None],
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.c_attn(self.ln1(x)).split(h, dim=2)
        q, k, v = (t.view(b, s, self.heads, self.d).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.d)
        scores = scores.masked_fill(~self.causal[:, :, :s, :s], torch.finfo(scores.dtype).min)
        a = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, h)
        x = x + self.c_proj(a)
        return x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class TinyGPT2(nn.Module):
    def __init__(self, vocab=VOCAB, seq=SEQ, hidden=64, heads=4, layers=2):
        super().__init__()
        self.wte = nn.Embedding(vocab, hidden)
        self.wpe = nn.Embedding(seq, hidden)
        self.blocks = nn.ModuleList(GPT2Block(hidden, heads, seq) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)
        self.lm_head = nn.Linear(hidden, vocab, bias=False)
        self.lm_head.weight = self.wte.weight            # tied embeddings
        self.register_buffer("position_ids", torch.arange(seq)[None], persistent=False)

    def forward(self, input_ids):
        x = self.wte(input_ids) + self.wpe(self.position_ids[:, : input_ids.shape[1]])
        for blk in self.blocks:
            x = blk(x)
        return self.lm_head(self.ln_f(x))


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.down = None
        if stride != 1 or c_in != c_out:
            self.down = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.down is None else self.down(x)))


class TinyResNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(BasicBlock(16, 16, 1), BasicBlock(16, 16, 1))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, 2), BasicBlock(32, 32, 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class ViTBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp: int):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(hidden, eps=1e-6)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-6)
        self.fc1 = nn.Linear(hidden, mlp)
        self.fc2 = nn.Linear(mlp, hidden)

    def forward(self, x):
        b, s, h = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyViT(nn.Module):
    def __init__(self, image=32, patch=4, hidden=64, heads=4, mlp=128, layers=2, classes=10):
        super().__init__()
        n = (image // patch) ** 2
        self.patch = nn.Conv2d(3, hidden, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, hidden) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(hidden, heads, mlp) for _ in range(layers))
        self.ln = nn.LayerNorm(hidden, eps=1e-6)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)              # [B, N, hidden]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x)[:, 0])


# --------------------------------------------------------------------------------------
# Specs: model, seeded inputs, ONNX input/output names
# --------------------------------------------------------------------------------------

def _randomize_bn(model: nn.Module, g: torch.Generator) -> None:
    # Fresh BN layers have mean 0 / var 1 / affine identity, which would hide a wrong BN
    # lowering; give them seeded, non-trivial statistics.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
            m.running_var.copy_(0.5 + torch.rand(c, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(c, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=g))


def make_specs():
    """name -> (model, inputs tuple, input names, output names); all seeded."""
    specs = {}
    g = torch.Generator().manual_seed(SEED)

    torch.manual_seed(SEED)
    bert = TinyBert().eval()
    ids = torch.randint(0, VOCAB, (1, SEQ), generator=g, dtype=torch.int64)
    types = torch.cat([torch.zeros(1, SEQ // 2, dtype=torch.int64),
                       torch.ones(1, SEQ - SEQ // 2, dtype=torch.int64)], 1)
    mask = torch.ones(1, SEQ, dtype=torch.int64)
    mask[:, -3:] = 0                                       # three padding positions
    specs["bert"] = (bert, (ids, types, mask), ["input_ids", "token_type_ids", "attention_mask"],
                     ["last_hidden_state", "pooler_output"])

    torch.manual_seed(SEED + 1)
    gpt2 = TinyGPT2().eval()
    ids = torch.randint(0, VOCAB, (1, SEQ), generator=g, dtype=torch.int64)
    specs["gpt2"] = (gpt2, (ids,), ["input_ids"], ["logits"])

    torch.manual_seed(SEED + 2)
    resnet = TinyResNet().eval()
    with torch.no_grad():
        _randomize_bn(resnet, g)
    specs["resnet"] = (resnet, (torch.randn(1, 3, 32, 32, generator=g),), ["x"], ["logits"])

    torch.manual_seed(SEED + 3)
    vit = TinyViT().eval()
    specs["vit"] = (vit, (torch.randn(1, 3, 32, 32, generator=g),), ["x"], ["logits"])
    return specs


# --------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------

def _strip_stack_traces(model: onnx.ModelProto) -> None:
    def strip(graph: onnx.GraphProto) -> None:
        for node in graph.node:
            keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    strip(attr.g)
                for sub in attr.graphs:
                    strip(sub)
    strip(model.graph)


def export_legacy(model, inputs, in_names, out_names, path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, inputs, path, dynamo=False, opset_version=LEGACY_OPSET,
                          input_names=in_names, output_names=out_names,
                          do_constant_folding=True)


def export_dynamo(model, inputs, in_names, out_names, path) -> None:
    prog = torch.onnx.export(model, inputs, dynamo=True, input_names=in_names,
                             output_names=out_names, verbose=False)
    proto = prog.model_proto
    _strip_stack_traces(proto)
    # Weights inline (the dynamo exporter would otherwise write a separate .data file).
    onnx.save_model(proto, path)


def save_io(path: str, inputs, outputs, in_names, out_names) -> None:
    """Write an ``.npz`` that ``np.load`` reads, byte-identical from run to run.

    ``np.savez`` stamps each member with the current time, so re-running the export would
    churn the committed files; members here get a fixed timestamp and a fixed order.
    """
    arrays = {n: t.numpy() for n, t in zip(in_names, inputs)}
    arrays.update({n: t.detach().numpy() for n, t in zip(out_names, outputs)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)


def export_all(out_dir: str) -> list[str]:
    specs = make_specs()
    written = []
    for sub in ("legacy", "dynamo"):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    for name, (model, inputs, in_names, out_names) in specs.items():
        with torch.no_grad():
            outputs = model(*inputs)
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        for sub, fn in (("legacy", export_legacy), ("dynamo", export_dynamo)):
            path = os.path.join(out_dir, sub, f"{name}.onnx")
            with torch.no_grad():
                fn(model, inputs, in_names, out_names, path)
            onnx.checker.check_model(onnx.load(path), full_check=True)
            save_io(os.path.join(out_dir, sub, f"{name}.io.npz"), inputs, outputs, in_names, out_names)
            written.append(path)
        if name == "bert":
            # The same legacy graph with its weights in one side file, in a folder of its own,
            # for the importer's external-data path.
            ext_dir = os.path.join(out_dir, "external_data", name)
            if os.path.isdir(ext_dir):
                shutil.rmtree(ext_dir)
            os.makedirs(ext_dir)
            m = onnx.load(os.path.join(out_dir, "legacy", f"{name}.onnx"))
            path = os.path.join(ext_dir, f"{name}.onnx")
            onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location=f"{name}.onnx.data", size_threshold=1024)
            onnx.checker.check_model(path, full_check=True)
            save_io(os.path.join(ext_dir, f"{name}.io.npz"), inputs, outputs, in_names, out_names)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=HERE, help="output folder (default: samples/torch)")
    args = ap.parse_args(argv)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)       # fixed reduction order for the saved reference outputs
    for p in export_all(args.out):
        print(p, os.path.getsize(p))
    return 0


if __name__ == "__main__":
    sys.exit(main())
