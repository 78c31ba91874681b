"""Welder (OSDI'23, DESIGN §4): the tile-graph of a function's ``tile.compute`` ops, backward tile
propagation through index maps, memory-level legality (register | shared), shared-memory planning, and the
greedy group search. The ``welder`` pass (``passes/welder.py``) turns the chosen groups into ``tile.kernel``
ops; ``backend/lower/fused*.py`` lowers them to one CUDA kernel each."""
from .graph import Node, TileGraph
from .propagate import propagate
from .search import Group, search

__all__ = ["Group", "Node", "TileGraph", "propagate", "search"]
