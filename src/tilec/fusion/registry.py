"""The fusion-pattern registry (DESIGN §4 and §11): every Welder fusion kind is one :class:`FusionPattern`,
declared with :func:`fusion_pattern` in its own sub-package of ``tilec.fusion`` and discovered by importing
those sub-packages (as ``backend/opaque`` discovers its kernels).

A pattern says, as data, at which memory level its internal edges connect (``level``), the lowest
``max-level`` cap that still allows it (``enabled_at``), when the search asks it (``stage``) and in which
order (``priority``); as code, how it matches (a typed, frozen plan inside a scored
:class:`~tilec.analysis.welder.search.Group`), how that plan prints into the ``tile.kernel`` (its
``tile`` attribute and edge levels) and how the kernel lowers to a ``kernel.func``.

Stages:
- ``grow``: :meth:`FusionPattern.match` classifies a candidate member list while the search grows a group;
  patterns of the lowest priority that match compete by score, higher priorities are asked only when no
  lower one matched.
- ``seed``: :meth:`FusionPattern.seed` takes a whole chain from one node before the group grows from it.
- ``rewrite``: :meth:`FusionPattern.rewrite` edits the function body after the search (a conv chain's
  pooling tail)."""
from __future__ import annotations

import importlib
import pkgutil
import sys

from ..analysis.welder.search import LEVELS, Group, classify_group, search
from ..backend.lower import kernel_symbol
from ..ir.diagnostics import CompileError

STAGES = ("grow", "seed", "rewrite")

_PATTERNS: dict = {}


class FusionPattern:
    """One fusion kind. Subclasses are declared with :func:`fusion_pattern`, which sets the data fields."""

    name: str = ""
    level: str = "shared"          # the level its internal edges print at (``levels`` of the tile.kernel)
    enabled_at: str = "register"   # the lowest welder max-level at which the search may choose it
    stage: str = "grow"
    priority: int = 0
    retile: bool = False           # the welder pass re-chooses the anchor's tile for the whole group

    def allowed(self, max_level: str) -> bool:
        """Whether the search may choose this pattern under the cap ``max_level``."""
        return LEVELS.index(max_level) >= LEVELS.index(self.enabled_at)

    def match(self, graph, members: list, spec) -> Group | None:
        """``grow`` stage: the scored group (its ``plan`` typed) when ``members`` fuse this way, else None."""
        return None

    def seed(self, graph, idx: int, spec, apart, cache: dict) -> Group | None:
        """``seed`` stage: the group of the chain starting at node ``idx`` when it beats ``apart(segment)``
        summed over its unfused segments, else None."""
        return None

    def rewrite(self, block, graph, groups: list, spec, classify) -> tuple:
        """``rewrite`` stage: ``(graph, groups)`` of ``block`` after this pattern's rewrite;
        ``classify(graph, members)`` scores a member list as the search would."""
        return graph, groups

    def tile_attr(self, plan, nodes: list) -> dict:
        """The ``tile`` attribute of the group's ``tile.kernel``: by default the anchor's Roller block tile."""
        return dict((nodes[0].op.attributes.get("rtile") or {}).get("block", {}))

    def edge_levels(self, plan, edges: list, count: int) -> list:
        """``[[producer, consumer, level]]`` of the internal ``edges`` (member positions; ``count`` members)."""
        return [[p, c, self.level] for p, c in edges]

    def apart_parts(self, plan, members: list) -> list | None:
        """The member lists the welder pass' latency check times the group against (each classified and lowered
        as the search would group it alone); None: every member as its own kernel."""
        return None

    def lower(self, kernel, name: str, spec, kind: str | None = None):
        """The ``kernel.func`` named ``name`` for a ``tile.kernel`` of this kind on ``spec``."""
        raise NotImplementedError(f"fusion pattern '{self.name}' has no lowering")


def fusion_pattern(name: str, level: str, enabled_at: str, stage: str = "grow", priority: int = 0,
                   retile: bool = False):
    """Register the decorated :class:`FusionPattern` subclass (one instance) under ``name``."""
    if level not in LEVELS or enabled_at not in LEVELS or stage not in STAGES:
        raise ValueError(f"fusion pattern '{name}': bad level, enabled_at or stage")

    def deco(cls):
        cls.name, cls.level, cls.enabled_at, cls.stage = name, level, enabled_at, stage
        cls.priority, cls.retile = priority, retile
        if name in _PATTERNS:
            raise ValueError(f"fusion pattern '{name}' registered twice")
        _PATTERNS[name] = cls()
        return cls
    return deco


_LOADED: list = []


def _load() -> None:
    # Once per process, every sub-package, even when some were imported on their own before (a pattern's
    # matcher imports another's): registration happens at import, so importing them all is idempotent.
    if not _LOADED:
        package = sys.modules[__package__]
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
            if info.ispkg:
                importlib.import_module(f"{__package__}.{info.name}")
        _LOADED.append(True)


def patterns() -> list:
    """Every registered pattern, by (priority, name): the order the search asks them in."""
    _load()
    return sorted(_PATTERNS.values(), key=lambda p: (p.priority, p.name))


def pattern(name: str) -> FusionPattern | None:
    """The pattern registered under ``name`` (a ``tile.kernel``'s ``kind``), or None."""
    _load()
    return _PATTERNS.get(name)


def lower_kernel(kernel, index: int, spec, kind: str | None = None):
    """The ``kernel.func`` for one welder ``tile.kernel``, by its pattern (``kind`` forces the anchor's kernel
    kind where the pattern lowers through it)."""
    name = kernel.attributes["kind"]
    found = pattern(name)
    if found is None:
        raise CompileError.at(f"lower-cuda: tile.kernel of unknown fusion kind '{name}' "
                              f"(known: {', '.join(p.name for p in patterns())})", kernel.loc)
    func = found.lower(kernel, kernel_symbol(index, "fused_" + name, "fused"), spec, kind)
    func.loc = kernel.loc
    return func


def classify(graph, members: list, spec) -> Group | None:
    """The best legal group over ``members`` with every registered pattern (no level cap)."""
    return classify_group(graph, members, spec, patterns())


def search_groups(graph, spec, max_level: str = "register", cache: dict | None = None) -> list:
    """Welder's group search over ``graph`` with every registered pattern (the ``seed`` and ``grow`` stages;
    ``rewrite`` patterns run after it, in the welder pass)."""
    return search(graph, spec, patterns(), max_level, cache)
