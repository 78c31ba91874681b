"""``welder``: fuse ``tile.compute`` ops into ``tile.kernel`` regions (Welder, OSDI'23; DESIGN §4).

The search (``analysis/welder``) walks the tile-graph in topological order and grows each group consumer by
consumer while the grown group connects its internal edges at a legal memory level and scores better than
its parts apart; which groups are legal is the registered fusion patterns' answer (``tilec.fusion``), which
this pass hands to the search. Then every ``rewrite`` pattern edits the grouped body (a conv chain whose
result is only summed over some dims takes a pooling tail, ``fusion/conv_pool``). Every accepted
group of two or more ops becomes one ``tile.kernel``: its operands are the group's outside inputs (block
arguments inside, so the region is isolated from above), its region holds the member computes and a
``tile.yield`` of the results used outside. ``lower-cuda`` emits one kernel for it.

Then every group whose anchor is a tiled contraction or convolution (a lone op too) has its tile chosen
again for the whole group (``fusion/retile.py``): the anchor's ``rtile`` is replaced by the tile
the latency model times fastest above a parallelism floor, and ``welder_tile`` on the anchor records
the choice, Roller's bytes and the best rejected candidates' scores. ``max-level=global`` (``--no-fusion``)
leaves the module exactly as Roller left it.

The search scores groups by bytes; a fused kernel can still be slower than its members apart (a conv chain
that recomputes its producer's halo behind a barrier per reduce step, on 16 blocks). So every group of two or
more ops is checked by the latency model (``analysis/latency``, issue #18): it is built, re-tiled and lowered
as lower-cuda would, its modelled time compared with the sum of its members' kernels lowered alone (each
re-tiled as the pass would), and undone. A group whose fused kernel models slower is banned (by subgraph
hash, so its repeats too) and the search runs again without it: the members then form smaller groups, or
kernels of their own. ``timed=false`` skips the check (groups by bytes only).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..analysis import latency
from ..analysis.hardware import target_spec
from ..analysis.welder import TileGraph, search
from ..analysis.welder.graph import outside_values
from ..fusion.retile import MIN_BLOCK_OUTPUTS, Retiler, retileable
from ..analysis.welder.search import classify_group, group_outputs, group_signature, single_group
from ..analysis.welder.views import fold_views
from ..backend.lower.context import ComputeContext
from ..backend.lower.fused import FusedContext
from ..backend.launch_resources import LaunchLimitError, launch_resources
from ..backend.lower import lower_compute
from ..fusion import lower_kernel, pattern, patterns
from ..ir.core import Block, Operation, Region, functions
from ..ir.diagnostics import CompileError
from .base import ModulePass


@dataclass
class Welder(ModulePass):
    """Group tile.compute ops into fused tile.kernel regions, connecting internal edges in registers
    (elementwise epilogues/prologues) or shared memory (row-wise reduction chains), then re-choose each
    group's anchor tile by the latency model; a group whose fused kernel models slower than its members
    apart is not taken (``timed``). ``max-level`` caps the level (global = no fusion and
    no re-tiling, the ablation); ``retile=false`` keeps Roller's tiles; ``min-block-outputs`` sets the
    parallelism floor (a group keeps at least min(#SM, outputs / min-block-outputs) blocks)."""

    name = "welder"
    arch: str = ""   # empty: the module's target (tilec.target)
    max_level: str = "register"
    retile: bool = True
    min_block_outputs: int = MIN_BLOCK_OUTPUTS
    timed: bool = True

    def apply(self, module: Operation) -> None:
        if self.max_level not in ("global", "shared", "register"):
            raise CompileError(f"welder: max-level must be global, shared or register, not '{self.max_level}'")
        if self.min_block_outputs < 1:
            raise CompileError(f"welder: min-block-outputs must be positive, not {self.min_block_outputs}")
        if self.max_level == "global":
            return   # no fusion: Roller's one kernel per op, untouched
        spec = target_spec(module, self.arch)
        cache: dict = {}
        tiles: dict = {}
        found = patterns()
        rewrites = [p for p in found if p.stage == "rewrite" and p.allowed(self.max_level)]
        times: dict = {}
        for fn in functions(module):
            fold_views(fn.body)
            banned: set = set()
            while True:   # each round bans at least one new subgraph, so this ends
                graph = TileGraph(fn.body)
                groups = search(graph, spec, found, self.max_level, cache, frozenset(banned))
                if not self.timed:
                    break
                slow = {sig for g in groups if len(g.members) > 1
                        for sig in [group_signature(graph, g.members)]
                        if not self._fused_faster(fn.body, graph, g, spec, times, sig, tiles)}
                if not slow:
                    break
                banned |= slow
            for p in rewrites:   # e.g. a conv chain's pooled result kept on chip (fusion/conv_pool)
                graph, groups = p.rewrite(fn.body, graph, groups, spec,
                                          lambda g, members: classify_group(g, members, spec, found))
            for group in groups:
                kernel = _build_kernel(fn.body, graph, group, spec) if len(group.members) > 1 else None
                if self.retile and (group.kind == "single" or pattern(group.kind).retile):
                    key = (group.kind, group_signature(graph, group.members))
                    _retile(graph.nodes[group.members[0]].op, kernel, spec, self.min_block_outputs, tiles, key)

    def _fused_faster(self, block, graph, group, spec, memo: dict, sig: str, tiles: dict) -> bool:
        """Whether ``group``'s fused kernel models no slower than its members' kernels apart (memoised by
        kind and subgraph; the tiles it re-chooses go to the pass' ``tiles`` cache, under the keys the pass
        uses). The module is left exactly as it was."""
        key = (group.kind, sig)
        if key not in memo:
            parts = pattern(group.kind).apart_parts(group.plan, group.members)
            if parts is None:
                apart = self._members_alone_seconds(graph, group.members, spec, tiles, memo)
            else:   # the pattern names the grouping it replaces (an mlp kernel on wgmma: its two GEMM groups)
                apart = sum(self._part_seconds(block, graph, part, spec, tiles, memo) for part in parts)
            memo[key] = self._group_seconds(block, graph, group, spec, tiles, key) <= apart
        return memo[key]

    def _part_seconds(self, block, graph, members: list, spec, tiles: dict, memo: dict) -> float:
        """Modelled seconds of ``members`` as the group the search would make of them alone, or of each member
        alone where none matches."""
        g = classify_group(graph, members, spec, patterns()) if len(members) > 1 else None
        if g is None:
            return self._members_alone_seconds(graph, members, spec, tiles, memo)
        return self._group_seconds(block, graph, g, spec, tiles, (g.kind, group_signature(graph, members)))

    def _members_alone_seconds(self, graph, members: list, spec, tiles: dict, memo: dict) -> float:
        """Modelled seconds of ``members``, each in its own kernel."""
        return sum(self._alone_seconds(graph.nodes[m].op, spec, tiles, memo, ("single", group_signature(graph, [m])))
                   for m in members)

    def _group_seconds(self, block, graph, group, spec, tiles: dict, key) -> float:
        """Modelled seconds of ``group``'s fused kernel: built, re-tiled (cached under ``key``) and lowered as
        lower-cuda would, then undone (the module is left exactly as it was)."""
        ops = [graph.nodes[m].op for m in group.members]
        saved = [dict(op.attributes) for op in ops]
        inside = {id(op) for op in ops}
        after = [next(o for o in block.ops[block.ops.index(op) + 1:] if id(o) not in inside) for op in ops]
        kernel = _build_kernel(block, graph, group, spec)
        try:
            if self.retile and pattern(group.kind).retile:
                _retile(ops[0], kernel, spec, self.min_block_outputs, tiles, key)
            return modelled_seconds(spec, lower_kernel(kernel, 0, spec))
        finally:
            _dissolve(block, kernel, ops, after)
            for op, attrs in zip(ops, saved):
                op.attributes.clear()
                op.attributes.update(attrs)

    def _alone_seconds(self, op, spec, tiles: dict, memo: dict, key) -> float:
        """Modelled seconds of ``op``'s own kernel, with the tile the pass would re-choose for it alone.

        Memoised in ``memo`` by the op's subgraph hash, result type and attributes (its rtile, pad, ...):
        the lowering is a function of these, and one op is priced again in every candidate group that holds
        it and in every search round (EfficientNet-B0: 298 pricings, 113 distinct)."""
        mkey = ("alone", key, repr(op.result.type), repr(op.attributes))
        if mkey in memo:
            return memo[mkey]
        saved = dict(op.attributes)
        try:
            if self.retile:
                _retile(op, None, spec, self.min_block_outputs, tiles, key)
            memo[mkey] = modelled_seconds(spec, lower_compute(op, 0))
        finally:
            op.attributes.clear()
            op.attributes.update(saved)
        return memo[mkey]


def modelled_seconds(spec, func) -> float:
    """The latency model's seconds for one launch of a lowered ``kernel.func`` (its report.json row's
    ``modelled_us``); Rammer's baseline too (``passes/rammer``)."""
    try:
        res = launch_resources(func, arch=spec.arch)
    except LaunchLimitError:
        return math.inf
    row = {"smem_static": res.smem_static, "smem_dynamic": int(func.attributes.get("smem", 0)),
           "registers": res.registers}
    return latency.kernel_seconds(spec, func, row)


def _dissolve(block, kernel, ops: list, after: list) -> None:
    """Undo :func:`_build_kernel`: ``ops`` back in ``block`` each before its old next non-member op (so
    the order is the original one), their operands and their outside uses rewired, ``kernel`` gone."""
    body = kernel.regions[0].blocks[0]
    externals = list(kernel.operands)
    yielded = body.ops[-1]
    outs = list(yielded.operands)
    yielded.drop_operands()
    for res, v in zip(kernel.results, outs):
        res.replace_all_uses_with(v)
    for op in ops:
        body.remove(op)
        _substitute(op, body.args, externals)
    for op, nxt in zip(ops, after):
        block.insert_before(nxt, op)
    kernel.drop_operands()
    block.remove(kernel)


def _substitute(op, old: list, new: list) -> None:
    """Point ``op``'s operands that are ``old[i]`` at ``new[i]`` (a kernel's outside values <-> its block args)."""
    for i, v in enumerate(op.operands):
        for a, b in zip(old, new):
            if v is a:
                op.set_operand(i, b)
                break


def _build_kernel(block, graph, group, spec) -> Operation:
    nodes = [graph.nodes[m] for m in group.members]
    ops = [n.op for n in nodes]
    inside = {id(op) for op in ops}
    externals = outside_values(ops)
    outs = [graph.nodes[m].op for m in group_outputs(graph, group.members)]
    body = Block([v.type for v in externals])
    pos = {m: i for i, m in enumerate(group.members)}
    fusion = pattern(group.kind)
    edges = [(pos[p], pos[n.index]) for n in nodes for p in sorted(set(n.producers.values())) if p in pos]
    apart = getattr(group.plan, "apart", None) or sum(single_group(graph, m, spec).score for m in group.members)
    attrs = {
        "kind": group.kind,
        "members": [n.label() for n in nodes],
        "tile": fusion.tile_attr(group.plan, nodes),
        "levels": fusion.edge_levels(group.plan, edges, len(nodes)),
        "smem": group.smem,
        "estimate": {"score": group.score, "apart": apart, "traffic_bytes": group.traffic, "waves": group.waves},
    }
    kernel = Operation("tile.kernel", list(externals), [op.result.type for op in outs], attrs,
                       regions=[Region([body])], loc=ops[-1].loc)
    block.insert_before(ops[-1], kernel)
    for op, res in zip(outs, kernel.results):
        for user, i in list(op.result.uses):
            if id(user) not in inside:
                user.set_operand(i, res)
    for op in ops:
        block.remove(op)
        _substitute(op, externals, body.args)
        body.append(op)
    body.append(Operation("tile.yield", [op.result for op in outs], []))
    return kernel


def _retile(anchor, kernel, spec, min_block_outputs: int, cache: dict, key) -> None:
    """Replace ``anchor``'s rtile by the group's best tile (cached by the group's subgraph hash)."""
    rtile = anchor.attributes.get("rtile")
    if not rtile:
        return
    key = key + (repr(rtile),)
    if key not in cache:
        ctx = FusedContext(kernel) if kernel is not None else ComputeContext(anchor)
        choice = None
        if retileable(ctx):
            extra = ctx.epilogue_bytes if kernel is not None else 0
            choice = Retiler(ctx, spec, extra, min_block_outputs).choose(rtile, anchor.attributes.get("alternatives"))
        cache[key] = choice
    choice = cache[key]
    if choice is None:
        return
    anchor.attributes["rtile"] = {k: dict(v) for k, v in choice.config.items()}
    anchor.attributes["welder_tile"] = choice.as_attr()
    if kernel is not None:
        kernel.attributes["tile"] = dict(choice.config["block"])
