"""The tile-graph as Graphviz DOT (``tilec viz --graph``): one node per op, one ``subgraph cluster_<i>``
per Welder ``tile.kernel`` (labelled with its kind and chosen tile), and every edge labelled with the
memory level its tensor lives at: ``register`` / ``shared`` inside a kernel (from the kernel's ``levels``),
``global`` between kernels. Labels are escaped, so model names cannot break the DOT text."""
from __future__ import annotations

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


def module_dot(module) -> str:
    """The DOT text of every function body of ``module`` (kernels as clusters)."""
    lines = ["digraph tilegraph {", "  rankdir=TB;", '  node [shape=box, fontname="monospace", fontsize=10];',
             "  edge [fontsize=9];"]
    ids: dict = {}        # id(value) -> DOT node id of its producer
    levels: dict = {}     # (id(producer value), id(consumer op)) -> level inside a kernel
    edges: list = []
    counter = [0]

    def node_id() -> str:
        counter[0] += 1
        return f"n{counter[0]}"

    def add_op(op, indent: str):
        nid = node_id()
        lines.append(f"{indent}{nid} [label={_q(_label(op))}];")
        for res in op.results:
            ids[id(res)] = nid
        for v in op.operands:
            edges.append((v, op, nid))

    for f, fn in enumerate(functions(module)):
        for arg in fn.body.args:
            nid = node_id()
            ids[id(arg)] = nid
            lines.append(f"  {nid} [label={_q('input ' + str(arg.type))}, shape=ellipse];")
        kernels = 0
        for op in fn.body.ops:
            if op.name in SKIP:
                continue
            if op.name != "tile.kernel":
                add_op(op, "  ")
                continue
            body = op.regions[0].block
            inner = [m for m in body.ops if m.name not in SKIP]
            for arg, outer in zip(body.args, op.operands):
                ids[id(arg)] = None
                ids.setdefault(("alias", id(arg)), outer)
            lines.append(f"  subgraph cluster_{f}_{kernels} {{")
            kind, tile = op.attributes.get("kind", ""), _tile_text(op.attributes.get("tile"))
            lines.append(f"    label={_q(f'kernel {kernels}: {kind} {tile}'.strip())}; style=rounded; color=gray40;")
            for m in inner:
                add_op(m, "    ")
            for lv in op.attributes.get("levels") or []:
                p, c, level = lv
                levels[(id(inner[p].result), id(inner[c]))] = level
            lines.append("  }")
            for res, y in zip(op.results, body.terminator.operands):
                ids[id(res)] = ids.get(id(y))
            kernels += 1
    for v, op, nid in edges:
        src, level = ids.get(id(v)), levels.get((id(v), id(op)), "global")
        alias = ids.get(("alias", id(v)))
        if src is None and alias is not None:
            src = ids.get(id(alias))
        if src is None:
            continue   # a weight or constant symbol: not a tile-graph edge
        lines.append(f"  {src} -> {nid} [label={_q(level)}, color={COLOURS.get(level, 'black')}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
