"""Frontends: ONNX → graph-level tile IR."""
