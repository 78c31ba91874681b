#!/usr/bin/env python3
"""Export real models to ONNX with torch (random weights, batch 1) for ``make realworld``-style checks.

    /opt/exportenv/bin/python scripts/export_real.py --out /tmp/realworld [--models convnext_tiny gpt2 ...]

Writes ``OUT/<name>.onnx`` (with external data beside it when the model is over 2 GB) and
``OUT/<name>.inputs.npz`` (seeded inputs keyed by the ONNX input names). torch, torchvision, transformers and
onnxscript are optional dependencies of tilec (``pip install -e ".[export]"``); tilec itself never imports this
script, and the exported files are too big to commit.

Models (``MODELS``; each with the exporter tutorials use for it, ``dynamic_axes`` on the batch and, for text,
the sequence, so ``tilec compile`` needs ``--input-shape NAME=DIMS`` from the ``.inputs.npz``: ``realworld.py``
passes them):

- CNNs (torchvision, 1x3x224x224): ``resnet50`` and ``mobilenet_v3_small`` (TorchScript exporter, opset 17,
  dynamic batch), ``efficientnet_b0`` and ``convnext_tiny`` (dynamo exporter).
- Vision transformers (torchvision, 1x3x224x224): ``vit_b_16`` (dynamo; its zero-initialised classifier head
  gets normal(0, 0.02) weights, or every logit would be 0), ``swin_t`` (TorchScript, dynamic batch: the
  Shape -> Gather -> Mod chains and ScatterND of its windows).
- Encoders (transformers, built from their configs): ``bert`` (BERT-base, ``input_ids`` + ``attention_mask``
  1x64, TorchScript, dynamic batch and sequence), ``distilbert`` (DistilBERT-base, the same inputs, dynamo,
  dynamic batch and sequence), ``whisper_tiny_encoder`` (Whisper-tiny's audio encoder, 80 mel bins x 3000
  frames, dynamo).
- Decoders: ``gpt2`` (``GPT2LMHeadModel(GPT2Config())``, 1x64 token ids, no KV cache, logits only, dynamo;
  ``--gpt2-legacy`` asks for the TorchScript exporter, which fails on recent transformers: ``aten::diff`` has
  no ONNX symbolic at opset 17).
- Encoder-decoder: ``t5_small`` (``T5ForConditionalGeneration(T5Config())``, t5-small's sizes: encoder
  ``input_ids`` 1x32 and ``decoder_input_ids`` 1x16, logits, TorchScript, dynamic batch and sequences).
- ``attention_f16``: 12-head self-attention at seq 512, d_model 768, in f16: q/k/v projections,
  softmax(QK^T / sqrt(d)) V and an output projection (dynamo).
"""
from __future__ import annotations

import argparse
import inspect
import math
import sys
import time
from pathlib import Path

MODELS = ("resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t", "bert",
          "distilbert", "whisper_tiny_encoder", "gpt2", "t5_small", "attention_f16")


def _attention_module(torch, d_model: int = 768, heads: int = 12):
    class Attention(torch.nn.Module):
        """Multi-head self-attention as written by hand: the plain softmax(QK^T/sqrt(d))V graph."""

        def __init__(self):
            super().__init__()
            self.q = torch.nn.Linear(d_model, d_model)
            self.k = torch.nn.Linear(d_model, d_model)
            self.v = torch.nn.Linear(d_model, d_model)
            self.o = torch.nn.Linear(d_model, d_model)

        def forward(self, x):
            b, s, _ = x.shape
            d = d_model // heads

            def split(t):
                return t.reshape(b, s, heads, d).transpose(1, 2)
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
            return self.o((att @ v).transpose(1, 2).reshape(b, s, d_model))
    return Attention()


def _first_output(torch, model, names, **extra):
    """Wrap a transformers model so that it takes ``names`` positionally (plus the keyword arguments ``extra``,
    e.g. ``use_cache=False``) and returns its first output only, no dict: what an inference export keeps."""
    class First(torch.nn.Module):
        """``model(**dict(zip(names, args)), **extra)[0]``."""

        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, *args):
            return self.m(**dict(zip(names, args)), **extra, return_dict=False)[0]
    return First()


BATCH = {0: "batch"}
TEXT = {0: "batch", 1: "sequence"}
DECODER = {0: "batch", 1: "decoder_sequence"}


def build(name: str, torch, gpt2_legacy: bool):
    """``(module, example inputs tuple, input names, use dynamo, dynamic_axes or None)`` for model ``name``."""
    image = (torch.randn(1, 3, 224, 224),)
    if name in ("resnet50", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "vit_b_16", "swin_t"):
        import torchvision
        model = getattr(torchvision.models, name)(weights=None)
        if name == "vit_b_16":
            # torchvision zero-initialises the classifier head: every logit would be 0 and any comparison vacuous.
            torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        legacy = name in ("resnet50", "mobilenet_v3_small", "swin_t")
        return model, image, ["x"], not legacy, {"x": BATCH, "y": BATCH} if legacy else None
    if name in ("bert", "distilbert"):
        import transformers
        cfg = transformers.BertConfig() if name == "bert" else transformers.DistilBertConfig()
        cfg._attn_implementation = "eager"
        model = transformers.BertModel(cfg) if name == "bert" else transformers.DistilBertModel(cfg)
        ids = torch.randint(0, cfg.vocab_size, (1, 64), dtype=torch.int64)
        mask = torch.ones(1, 64, dtype=torch.int64)
        mask[0, 48:] = 0   # padding at the end, as a batch of unequal sentences has
        names = ["input_ids", "attention_mask"]
        return (_first_output(torch, model, names), (ids, mask), names, name == "distilbert",
                {"input_ids": TEXT, "attention_mask": TEXT, "y": TEXT})
    if name == "whisper_tiny_encoder":
        from transformers import WhisperConfig, WhisperModel
        cfg = WhisperConfig(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                            decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536)
        cfg._attn_implementation = "eager"
        encoder = WhisperModel(cfg).get_encoder()
        feats = torch.randn(1, cfg.num_mel_bins, 2 * cfg.max_source_positions)
        return _first_output(torch, encoder, ["input_features"]), (feats,), ["input_features"], True, None
    if name == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(use_cache=False)
        cfg._attn_implementation = "eager"
        model = GPT2LMHeadModel(cfg)
        ids = torch.randint(0, cfg.vocab_size, (1, 64), dtype=torch.int64)
        return (_first_output(torch, model, ["input_ids"], use_cache=False), (ids,), ["input_ids"], not gpt2_legacy,
                None)
    if name == "t5_small":
        from transformers import T5Config, T5ForConditionalGeneration
        cfg = T5Config(use_cache=False)   # the defaults are t5-small's sizes
        cfg._attn_implementation = "eager"
        model = T5ForConditionalGeneration(cfg)
        ids = torch.randint(0, cfg.vocab_size, (1, 32), dtype=torch.int64)
        dec = torch.randint(0, cfg.vocab_size, (1, 16), dtype=torch.int64)
        names = ["input_ids", "decoder_input_ids"]
        return (_first_output(torch, model, names, use_cache=False), (ids, dec), names, False,
                {"input_ids": TEXT, "decoder_input_ids": DECODER, "y": DECODER})
    if name == "attention_f16":
        return _attention_module(torch).half(), (torch.randn(1, 512, 768).half(),), ["x"], True, None
    raise SystemExit(f"unknown model '{name}' (choose from {', '.join(MODELS)})")


def export_one(name: str, out: Path, gpt2_legacy: bool, seed: int) -> float:
    """Export ``name`` to ``out/<name>.onnx`` and its inputs to ``out/<name>.inputs.npz``; seconds taken."""
    import numpy as np
    import torch
    torch.manual_seed(seed)
    module, args, names, dynamo, dynamic_axes = build(name, torch, gpt2_legacy)
    module.eval()
    path = out / f"{name}.onnx"
    t0 = time.perf_counter()
    with torch.no_grad():
        if dynamo:
            # The dynamo exporter cannot always turn dynamic_axes into torch.export's dynamic_shapes (DistilBERT):
            # give them as such, Dim.AUTO on each dynamic axis (a batch of 1 specialises to 1, as torch.export
            # does with any size-1 dim; the sequence stays symbolic), grouped as forward's parameters are.
            shapes = None if not dynamic_axes else tuple(
                {ax: torch.export.Dim.AUTO for ax in dynamic_axes.get(n, {})} for n in names)
            if shapes and any(p.kind is p.VAR_POSITIONAL
                              for p in inspect.signature(module.forward).parameters.values()):
                shapes = (shapes,)
            prog = torch.onnx.export(module, args, dynamo=True, input_names=names, output_names=["y"],
                                     dynamic_shapes=shapes)
            prog.save(str(path))
        else:
            torch.onnx.export(module, args, str(path), dynamo=False, input_names=names, output_names=["y"],
                              opset_version=17, dynamic_axes=dynamic_axes)
    np.savez(out / f"{name}.inputs.npz", **{n: a.numpy() for n, a in zip(names, args)})
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for the .onnx and .inputs.npz files")
    ap.add_argument("--models", nargs="*", default=list(MODELS), choices=MODELS)
    ap.add_argument("--gpt2-legacy", action="store_true", help="export GPT-2 with the TorchScript exporter")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("export_real.py needs torch (pip install -e '.[export]' plus torchvision, transformers)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.models:
        try:
            secs = export_one(name, out, args.gpt2_legacy, args.seed)
            print(f"{name}: exported in {secs:.1f} s -> {out / (name + '.onnx')}", flush=True)
        except Exception as e:  # noqa: BLE001 - one model's exporter failure must not stop the others
            failed += 1
            print(f"{name}: export failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
