"""Rammer's schedule as a self-contained SVG timeline: ``tilec viz --schedule BUILD -o s.svg`` draws the same
events as the Chrome trace (``analysis/rammer/report.schedule_trace``) without a trace viewer.

One band per persistent kernel (the trace's processes), one lane per vEU (its threads), one bar per segment:
its x and width are the segment's modelled start and duration on a shared microsecond axis, its colour is its
rOperator (the same name, the same colour), and its title (the tooltip) says what ran and for how long.
All text is XML-escaped.
"""
from __future__ import annotations

from xml.sax.saxutils import escape

from .viz_svg import CHAR_W

LANE_H, BAND_GAP, LABEL_W, PLOT_W, MARGIN, AXIS_H = 18, 14, 70, 900, 20, 24
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac")


def schedule_svg(trace: dict) -> str:
    """The SVG text for a Chrome trace of complete (``X``) events with ``process_name`` metadata."""
    events = [e for e in trace.get("traceEvents", []) if e.get("ph") == "X"]
    names = {e["pid"]: e["args"]["name"] for e in trace.get("traceEvents", [])
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    end = max((e["ts"] + e["dur"] for e in events), default=0.0) or 1.0
    scale = PLOT_W / end
    colours: dict = {}
    out, y = [], MARGIN + AXIS_H
    for pid in sorted({e["pid"] for e in events}):
        mine = [e for e in events if e["pid"] == pid]
        lanes = sorted({e["tid"] for e in mine})
        row = {t: i for i, t in enumerate(lanes)}
        out.append(f'<text x="{MARGIN}" y="{y - 3}" font-weight="bold">{escape(str(names.get(pid, pid)))}</text>')
        for t in lanes:
            out.append(f'<text x="{MARGIN}" y="{y + row[t] * LANE_H + LANE_H - 5}" fill="#555">vEU {t}</text>')
        for e in mine:
            colour = colours.setdefault(e["name"], PALETTE[len(colours) % len(PALETTE)])
            x, w = MARGIN + LABEL_W + e["ts"] * scale, max(e["dur"] * scale, 0.5)
            top = y + row[e["tid"]] * LANE_H + 1
            tip = f'{e["name"]} on vEU {e["tid"]}: {e["ts"]:.2f}+{e["dur"]:.2f} us'
            label = e["name"] if len(e["name"]) * CHAR_W < w - 4 else ""
            out.append(f'<g><title>{escape(tip)}</title><rect x="{x:.2f}" y="{top}" width="{w:.2f}" '
                       f'height="{LANE_H - 2}" fill="{colour}"/>'
                       + (f'<text x="{x + 2:.2f}" y="{top + LANE_H - 6}" fill="white">{escape(label)}</text>'
                          if label else "") + "</g>")
        y += len(lanes) * LANE_H + BAND_GAP + LANE_H
    axis_y = MARGIN + AXIS_H - 8
    ticks = [end * i / 4 for i in range(5)]
    axis = [f'<line x1="{MARGIN + LABEL_W}" y1="{axis_y}" x2="{MARGIN + LABEL_W + PLOT_W}" y2="{axis_y}" '
            'stroke="#888"/>']
    axis += [f'<text x="{MARGIN + LABEL_W + t * scale:.2f}" y="{axis_y - 4}" fill="#555" text-anchor="middle">'
             f'{t:.3g} us</text>' for t in ticks]
    width, height = MARGIN * 2 + LABEL_W + PLOT_W + 30, y + MARGIN
    if not events:
        axis.append(f'<text x="{MARGIN}" y="{y + 10}">no persistent kernels (rammer pipeline) in this build</text>')
        height += 20
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="11">\n'
            + "\n".join(axis + out) + "\n</svg>\n")
