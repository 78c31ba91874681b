"""Recurrent samples exported from torch (issue #7): the fused ONNX ``LSTM`` / ``GRU`` / ``RNN`` ops that
``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` export, which tilec imports as a ``cf.loop`` over time.

- ``torch_lstm.onnx``: ``nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)``, x 2x5x3 and
  explicit h0 / c0 (4x2x4); outputs y 2x5x8, hn, cn.
- ``torch_gru.onnx``: ``nn.GRU(3, 4, bidirectional=True, batch_first=True)``, zero initial state; y, hn.
- ``torch_rnn.onnx``: ``nn.RNN(3, 4, num_layers=2, nonlinearity="relu")`` (sequence first); y, hn.

Beside each, ``<name>.io.npz`` holds the seeded inputs and torch's outputs (keys are the ONNX names), so
tests need no torch. Exported with ``torch.onnx.export(..., dynamo=False, opset_version=17)`` at static
shapes; needs ``torch`` (2.13.0 gave the committed files)::

    python samples/control/build_rnn.py [--out DIR]
"""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
OPSET = 17


def _models(torch):
    nn = torch.nn
    torch.manual_seed(7)
    lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    gru = nn.GRU(3, 4, bidirectional=True, batch_first=True)
    rnn = nn.RNN(3, 4, num_layers=2, nonlinearity="relu")
    g = torch.Generator().manual_seed(8)
    return {
        "torch_lstm": (lstm, {"x": torch.randn(2, 5, 3, generator=g), "h0": torch.randn(4, 2, 4, generator=g),
                              "c0": torch.randn(4, 2, 4, generator=g)}, ["y", "hn", "cn"]),
        "torch_gru": (gru, {"x": torch.randn(2, 5, 3, generator=g)}, ["y", "hn"]),
        "torch_rnn": (rnn, {"x": torch.randn(5, 2, 3, generator=g)}, ["y", "hn"]),
    }


def _flat(torch, module):
    """nn.LSTM takes (x, (h0, c0)) and returns (y, (hn, cn)); the exporter wants flat tuples."""
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, x, *state):
            y, hn = self.m(x, *([tuple(state)] if len(state) > 1 else state))
            return (y, *hn) if isinstance(hn, tuple) else (y, hn)
    return Flat().eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(HERE))
    args = ap.parse_args(argv)
    import torch
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, (module, inputs, outputs) in _models(torch).items():
        wrapped = _flat(torch, module)
        xs = tuple(inputs.values())
        buf = io.BytesIO()
        torch.onnx.export(wrapped, xs, buf, dynamo=False, opset_version=OPSET, input_names=list(inputs),
                          output_names=outputs)
        (out / f"{name}.onnx").write_bytes(buf.getvalue())
        with torch.no_grad():
            ys = wrapped(*xs)
        arrays = {k: v.numpy() for k, v in inputs.items()}
        arrays.update({k: v.numpy() for k, v in zip(outputs, ys)})
        np.savez(out / f"{name}.io.npz", **arrays)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
