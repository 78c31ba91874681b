"""Analyses: index maps (tile propagation), cost models, and hardware specs as data."""
