#!/usr/bin/env python3
"""Export real models to ONNX with torch (random weights, batch 1) for ``make realworld``-style checks.

    /opt/exportenv/bin/python scripts/export_real.py --out /tmp/realworld [--models convnext_tiny gpt2 ...]

Writes ``OUT/<name>.onnx`` (with external data beside it when the model is over 2 GB) and
``OUT/<name>.inputs.npz`` (seeded inputs keyed by the ONNX input names). torch, torchvision, transformers and
onnxscript are optional dependencies of tilec (``pip install -e ".[export]"``); tilec itself never imports this
script, and the exported files are too big to commit.

Models:
- ``convnext_tiny``: torchvision ConvNeXt-tiny, 1x3x224x224, dynamo exporter.
- ``vit_b_16``: torchvision ViT-B/16, 1x3x224x224, dynamo exporter.
- ``gpt2``: transformers ``GPT2LMHeadModel(GPT2Config())``, 1x64 token ids, no KV cache, dynamo exporter
  (its attention mask uses ops such as GatherND); ``--gpt2-legacy`` asks for the TorchScript exporter, which
  fails on recent transformers (``aten::diff`` has no ONNX symbolic at opset 17).
- ``attention_f16``: 12-head self-attention at seq 512, d_model 768, in f16: q/k/v projections,
  softmax(QK^T / sqrt(d)) V and an output projection.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

MODELS = ("convnext_tiny", "vit_b_16", "gpt2", "attention_f16")


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


def build(name: str, torch, gpt2_legacy: bool):
    """``(module, example inputs tuple, input names, use dynamo)`` for model ``name``."""
    if name == "convnext_tiny":
        import torchvision
        return torchvision.models.convnext_tiny(weights=None), (torch.randn(1, 3, 224, 224),), ["x"], True
    if name == "vit_b_16":
        import torchvision
        model = torchvision.models.vit_b_16(weights=None)
        # torchvision zero-initialises the classifier head: every logit would be 0 and any comparison vacuous.
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        return model, (torch.randn(1, 3, 224, 224),), ["x"], True
    if name == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel
        cfg = GPT2Config(use_cache=False)
        cfg._attn_implementation = "eager"
        model = GPT2LMHeadModel(cfg)
        ids = torch.randint(0, cfg.vocab_size, (1, 64), dtype=torch.int64)

        class Logits(torch.nn.Module):
            """Only the logits: no cache, no dict output."""

            def __init__(self):
                super().__init__()
                self.m = model

            def forward(self, input_ids):
                return self.m(input_ids=input_ids, use_cache=False, return_dict=False)[0]
        return Logits(), (ids,), ["input_ids"], not gpt2_legacy
    if name == "attention_f16":
        return _attention_module(torch).half(), (torch.randn(1, 512, 768).half(),), ["x"], True
    raise SystemExit(f"unknown model '{name}' (choose from {', '.join(MODELS)})")


def export_one(name: str, out: Path, gpt2_legacy: bool, seed: int) -> float:
    """Export ``name`` to ``out/<name>.onnx`` and its inputs to ``out/<name>.inputs.npz``; seconds taken."""
    import numpy as np
    import torch
    torch.manual_seed(seed)
    module, args, names, dynamo = build(name, torch, gpt2_legacy)
    module.eval()
    path = out / f"{name}.onnx"
    t0 = time.perf_counter()
    with torch.no_grad():
        if dynamo:
            prog = torch.onnx.export(module, args, dynamo=True, input_names=names, output_names=["y"])
            prog.save(str(path))
        else:
            torch.onnx.export(module, args, str(path), dynamo=False, input_names=names, output_names=["y"],
                              opset_version=17)
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
