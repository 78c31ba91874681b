"""Benchmark helpers for ``make bench`` (``scripts/bench.py``) and ``make gpu-bench`` (``scripts/gpu_bench.py``).

``measure`` runs one (model, size, pipeline) row in its own process so a row can be timed out and killed
without losing the others; ``table`` renders the rows as markdown.
"""
