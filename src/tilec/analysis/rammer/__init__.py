"""Rammer (OSDI'20, DESIGN §5) analyses: the launch graph of ``@main`` and its waves (``graph``), the
rTask/vEU cost model under the arch's resident-block limits (``cost``), and wavefront scheduling with
earliest-idle vEU placement and wave merging (``schedule``). The pass (``passes/rammer.py``) turns the
chosen groups into rPrograms; ``backend/lower/persistent.py`` renders them."""
from .cost import Member, resident_blocks
from .graph import LaunchGraph
from .schedule import Placement, choose_groups, place

__all__ = ["LaunchGraph", "Member", "Placement", "choose_groups", "place", "resident_blocks"]
