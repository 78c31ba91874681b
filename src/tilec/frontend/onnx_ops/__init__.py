"""Converters for ONNX ops, one module per op family; each module registers itself on import."""
