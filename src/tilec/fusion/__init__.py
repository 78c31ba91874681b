"""Welder's fusion patterns (DESIGN §4, §11): one sub-package per fusion kind (``epilogue``, ``row``,
``attention``, ``conv_chain``, ``conv_pool``, ``mlp``), each holding its matcher (``match.py``: legality,
tile choice, a typed plan) and its kernel (``kernel.py``: the lowering of its ``tile.kernel``), declared
with :func:`~.registry.fusion_pattern` in its ``__init__.py`` and discovered by :mod:`.registry`.

Layering: this package imports ``analysis`` (the tile-graph, the generic search, cost helpers) and
``backend.lower`` (the kernel builder and contexts); neither imports it. The ``welder`` and ``lower-cuda``
passes connect them."""
from __future__ import annotations

from .registry import FusionPattern, classify, fusion_pattern, lower_kernel, pattern, patterns, search_groups

__all__ = ["FusionPattern", "classify", "fusion_pattern", "lower_kernel", "pattern", "patterns", "search_groups"]
