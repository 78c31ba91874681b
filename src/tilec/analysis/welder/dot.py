"""The tile-graph as Graphviz DOT (``tilec viz --graph``): one node per op, one ``subgraph cluster_<i>``
per Welder ``tile.kernel`` (labelled with its kind and chosen tile), and every edge labelled with the
memory level its tensor lives at: ``register`` / ``shared`` inside a kernel (from the kernel's ``levels``),
``global`` between kernels. Labels are escaped, so model names cannot break the DOT text."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir.core import functions

SKIP = ("tile.yield", "func.return", "tile.weight", "tile.const")   # constants are not tile-graph edges
COLOURS = {"global": "black", "shared": "blue", "register": "darkgreen"}


def _q(text: str) -> str:
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _label(op) -> str:
    what = op.attributes.get("origin") or op.name
    expr = op.attributes.get("expr")
    return f"{what}\n{expr}" if isinstance(expr, str) and len(expr) <= 60 else what


def _tile_text(tile) -> str:
    return " ".join(f"{k}={v}" for k, v in tile.items()) if isinstance(tile, dict) else ""


@dataclass
class GraphView:
    """The tile-graph as drawing data: ``nodes`` (id, label, shape, cluster index or None), ``clusters``
    (label per Welder kernel) and ``edges`` (source id, target id, memory level), in a deterministic order.
    :func:`module_dot` prints it as DOT; ``cli/viz_svg.py`` lays it out as SVG without Graphviz."""

    nodes: list = field(default_factory=list)
    clusters: list = field(default_factory=list)
    edges: list = field(default_factory=list)


def tile_graph(module) -> GraphView:
    """The view of every function body of ``module`` (kernels as clusters)."""
    view = GraphView()
    ids: dict = {}        # id(value) -> node id of its producer
    levels: dict = {}     # (id(producer value), id(consumer op)) -> level inside a kernel
    pending: list = []

    def add_op(op, cluster):
        nid = f"n{len(view.nodes) + 1}"
        view.nodes.append((nid, _label(op), "box", cluster))
        for res in op.results:
            ids[id(res)] = nid
        for v in op.operands:
            pending.append((v, op, nid))

    for fn in functions(module):
        for arg in fn.body.args:
            nid = f"n{len(view.nodes) + 1}"
            ids[id(arg)] = nid
            view.nodes.append((nid, "input " + str(arg.type), "ellipse", None))
        kernels = 0
        for op in fn.body.ops:
            if op.name in SKIP:
                continue
            if op.name != "tile.kernel":
                add_op(op, None)
                continue
            body = op.regions[0].block
            inner = [m for m in body.ops if m.name not in SKIP]
            for arg, outer in zip(body.args, op.operands):
                ids[id(arg)] = None
                ids.setdefault(("alias", id(arg)), outer)
            kind, tile = op.attributes.get("kind", ""), _tile_text(op.attributes.get("tile"))
            view.clusters.append(f"kernel {kernels}: {kind} {tile}".strip())
            for m in inner:
                add_op(m, len(view.clusters) - 1)
            for lv in op.attributes.get("levels") or []:
                p, c, level = lv
                levels[(id(inner[p].result), id(inner[c]))] = level
            for res, y in zip(op.results, body.terminator.operands):
                ids[id(res)] = ids.get(id(y))
            kernels += 1
    for v, op, nid in pending:
        src, level = ids.get(id(v)), levels.get((id(v), id(op)), "global")
        alias = ids.get(("alias", id(v)))
        if src is None and alias is not None:
            src = ids.get(id(alias))
        if src is not None:   # else a weight or constant symbol: not a tile-graph edge
            view.edges.append((src, nid, level))
    return view


def module_dot(module) -> str:
    """The DOT text of every function body of ``module`` (kernels as clusters)."""
    view = tile_graph(module)
    lines = ["digraph tilegraph {", "  rankdir=TB;", '  node [shape=box, fontname="monospace", fontsize=10];',
             "  edge [fontsize=9];"]
    fn_of = _function_of_cluster(module)

    def node_line(node, indent):
        nid, label, shape, _ = node
        extra = ", shape=ellipse" if shape == "ellipse" else ""
        return f"{indent}{nid} [label={_q(label)}{extra}];"

    emitted = set()
    for node in view.nodes:
        c = node[3]
        if c is None:
            lines.append(node_line(node, "  "))
        elif c not in emitted:
            emitted.add(c)
            f, k = fn_of[c]
            lines.append(f"  subgraph cluster_{f}_{k} {{")
            lines.append(f"    label={_q(view.clusters[c])}; style=rounded; color=gray40;")
            lines += [node_line(n, "    ") for n in view.nodes if n[3] == c]
            lines.append("  }")
    for src, dst, level in view.edges:
        lines.append(f"  {src} -> {dst} [label={_q(level)}, color={COLOURS.get(level, 'black')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _function_of_cluster(module) -> list:
    """``(function index, kernel index within it)`` of each cluster, in order: DOT's cluster names."""
    out = []
    for f, fn in enumerate(functions(module)):
        k = sum(1 for op in fn.body.ops if op.name == "tile.kernel")
        out += [(f, i) for i in range(k)]
    return out
