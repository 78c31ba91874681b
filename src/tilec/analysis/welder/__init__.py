"""Welder (OSDI'23, DESIGN §4): the tile-graph of a function's ``tile.compute`` ops, backward tile
propagation through index maps, shared-memory planning, group re-tiling, and the greedy group search over
the fusion patterns it is given (``tilec.fusion`` holds them: each pattern's legality, plan and kernel). The
``welder`` pass (``passes/welder.py``) connects the two and turns the chosen groups into ``tile.kernel``
ops; ``lower-cuda`` lowers each through its pattern."""
from .graph import Node, TileGraph
from .propagate import propagate
from .search import Group, search

__all__ = ["Group", "Node", "TileGraph", "propagate", "search"]
