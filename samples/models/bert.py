"""BERT-base (Devlin et al. 2019), the Welder evaluation's transformer encoder.

Inputs are what a tokenizer gives: ``input_ids``, ``token_type_ids`` and the 0/1
``attention_mask`` (all int64 [1, seq]). Word, position and token-type embeddings are
``Gather`` lookups; the mask becomes the additive ``(1 - mask) * -10000`` term in-graph, as
HF's exporter writes it. 12 post-LN layers with exact (Erf) GELU, then the Tanh pooler on
the [CLS] token. With vocab 30522 and 512 positions the parameter count matches
``bert-base-uncased``: 109,482,240.
"""

from __future__ import annotations

import numpy as np

from ._common import ZooBuilder, f32, i64

CONFIGS = {
    "full": dict(layers=12, seq=128, hidden=768, heads=12, ffn=3072, vocab=30522,
                 max_pos=512, type_vocab=2),
    "small": dict(layers=2, seq=16, hidden=64, heads=4, ffn=128, vocab=512, max_pos=32,
                  type_vocab=2),
}
SEED = 101


def build(size: str = "small", weights: str = "random"):
    c = CONFIGS[size]
    seq, hidden, heads = c["seq"], c["hidden"], c["heads"]
    b = ZooBuilder(SEED, weights)
    eps = 1e-12

    def table(name, rows):
        # BERT initialises embeddings with std 0.02; scale up so LayerNorm input is O(1).
        return b.tensor(name, (rows, hidden), lambda: b.rng.standard_normal((rows, hidden)))

    word = b.op("Gather", [table("embeddings.word", c["vocab"]), "input_ids"], axis=0)
    pos_ids = b.ints(np.arange(seq, dtype=np.int64)[None, :])
    pos = b.op("Gather", [table("embeddings.position", c["max_pos"]), pos_ids], axis=0)
    typ = b.op("Gather", [table("embeddings.token_type", c["type_vocab"]), "token_type_ids"],
               axis=0)
    h = b.op("Add", [b.op("Add", [word, typ]), pos])
    h = b.layernorm(h, "embeddings.ln", hidden, eps)

    m = b.op("Cast", ["attention_mask"], to=1)                      # float
    m = b.op("Unsqueeze", [m, b.ints([1, 2])])                      # [1, 1, 1, seq]
    mask = b.op("Mul", [b.op("Sub", [b.const(1.0), m]), b.const(-10000.0)])

    for li in range(c["layers"]):
        p = f"layer{li}"
        a = b.attention(h, f"{p}.attn", 1, seq, hidden, heads, adds=[mask])
        h = b.layernorm(b.op("Add", [a, h]), f"{p}.ln1", hidden, eps)
        f = b.linear(b.gelu(b.linear(h, f"{p}.ffn_in", hidden, c["ffn"])), f"{p}.ffn_out",
                     c["ffn"], hidden)
        h = b.layernorm(b.op("Add", [f, h]), f"{p}.ln2", hidden, eps)
    b.op("Identity", [h], out="last_hidden_state")
    cls = b.op("Gather", [h, b.ints(0)], axis=1)                    # [1, hidden]
    b.op("Tanh", [b.gemm(cls, "pooler", hidden, hidden)], out="pooler_output")
    return b.finish(
        "bert_base",
        [i64("input_ids", (1, seq)), i64("token_type_ids", (1, seq)),
         i64("attention_mask", (1, seq))],
        [f32("last_hidden_state", (1, seq, hidden)), f32("pooler_output", (1, hidden))],
        f"BERT ({size}): {c}")
