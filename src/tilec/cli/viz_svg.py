"""The tile-graph as a self-contained SVG, laid out in Python: ``tilec viz --graph B -o g.svg`` needs no
Graphviz (with ``dot`` on PATH, Graphviz draws it instead).

Layout (a small Sugiyama): each node's layer is its longest path from an input; within a layer, nodes are
ordered by the mean position of their predecessors (one downward sweep), kept together by Welder kernel so a
kernel's members sit side by side; a kernel is a rounded box around its members, labelled with its kind and
tile. Edges are straight lines coloured by the memory level of the tensor (global black, shared blue,
register green), as in the DOT. All text is XML-escaped, so model names cannot break the file.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

from ..analysis.welder.dot import COLOURS, GraphView

CHAR_W, LINE_H, PAD, GAP_X, GAP_Y, MARGIN = 7, 14, 8, 24, 46, 30


def _size(label: str) -> tuple:
    lines = label.split("\n")
    return max(len(s) for s in lines) * CHAR_W + 2 * PAD, len(lines) * LINE_H + 2 * PAD


def layout(view: GraphView) -> dict:
    """``{node id: (x, y, w, h)}``: top-left corners and sizes."""
    preds: dict = {n[0]: [] for n in view.nodes}
    for src, dst, _ in view.edges:
        preds[dst].append(src)
    layer: dict = {}
    for nid, *_ in view.nodes:   # nodes come in topological order (producers first)
        layer[nid] = 1 + max((layer[p] for p in preds[nid] if p in layer), default=-1)
    rows: dict = {}
    for nid, _, _, cluster in view.nodes:
        rows.setdefault(layer[nid], []).append((nid, cluster))
    sizes = {nid: _size(label) for nid, label, _, _ in view.nodes}
    pos, y = {}, MARGIN + LINE_H
    for r in sorted(rows):
        bary = {}
        for nid, _ in rows[r]:
            xs = [pos[p][0] + sizes[p][0] / 2 for p in preds[nid] if p in pos]
            bary[nid] = sum(xs) / len(xs) if xs else 0.0
        group = {}   # a kernel's members move together, where its leftmost member goes
        for nid, cluster in rows[r]:
            if cluster is not None:
                group[cluster] = min(group.get(cluster, bary[nid]), bary[nid])
        ordered = sorted(rows[r], key=lambda it: (bary[it[0]] if it[1] is None else group[it[1]],
                                                  -1 if it[1] is None else it[1], bary[it[0]]))
        x, height = MARGIN, 0
        for nid, _ in ordered:
            w, h = sizes[nid]
            pos[nid] = (x, y, w, h)
            x += w + GAP_X
            height = max(height, h)
        y += height + GAP_Y
    return pos


def graph_svg(view: GraphView) -> str:
    """The SVG document of ``view``."""
    pos = layout(view)
    width = max((x + w for x, _, w, _ in pos.values()), default=0) + MARGIN
    height = max((y + h for _, y, _, h in pos.values()), default=0) + MARGIN
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']
    for c, label in enumerate(view.clusters):
        members = [pos[n[0]] for n in view.nodes if n[3] == c]
        if not members:
            continue
        x0 = min(x for x, *_ in members) - PAD
        y0 = min(y for _, y, *_ in members) - PAD - LINE_H
        x1 = max(x + w for x, _, w, _ in members) + PAD
        y1 = max(y + h for _, y, _, h in members) + PAD
        out.append(f'<g class="kernel"><rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" rx="8" '
                   f'fill="#f4f4f8" stroke="#666"/><text x="{x0 + PAD}" y="{y0 + LINE_H - 2}" fill="#444">'
                   f'{escape(label)}</text></g>')
    for src, dst, level in view.edges:
        (sx, sy, sw, sh), (dx, dy, dw, _) = pos[src], pos[dst]
        colour = {"darkgreen": "#1a7f37"}.get(COLOURS.get(level, "black"), COLOURS.get(level, "black"))
        out.append(f'<line class="edge {escape(level)}" x1="{sx + sw / 2}" y1="{sy + sh}" x2="{dx + dw / 2}" '
                   f'y2="{dy}" stroke="{colour}" marker-end="url(#arrow)"><title>{escape(level)}</title></line>')
    for nid, label, shape, _ in view.nodes:
        x, y, w, h = pos[nid]
        box = (f'<ellipse cx="{x + w / 2}" cy="{y + h / 2}" rx="{w / 2}" ry="{h / 2}"' if shape == "ellipse"
               else f'<rect x="{x}" y="{y}" width="{w}" height="{h}" rx="3"')
        text = "".join(f'<tspan x="{x + PAD}" dy="{LINE_H if i else 0}">{escape(line)}</tspan>'
                       for i, line in enumerate(label.split("\n")))
        out.append(f'<g class="op" id="{nid}">{box} fill="white" stroke="black"/>'
                   f'<text x="{x + PAD}" y="{y + PAD + LINE_H - 3}">{text}</text></g>')
    out.insert(2, '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
                  'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
