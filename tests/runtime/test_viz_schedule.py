"""``tilec viz --schedule BUILD -o s.svg``: Rammer's schedule as an SVG timeline, with no trace viewer and no
Graphviz (issue #20's pictures out of the box). The bars are the Chrome trace's events, placed by time."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from tilec.cli.main import cli
from tilec.cli.viz_schedule_svg import LABEL_W, MARGIN, PLOT_W, schedule_svg

NS = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[2]


def _trace():
    meta = [{"ph": "M", "name": "process_name", "pid": p, "args": {"name": f"rprog{p}<&>"}} for p in (0, 1)]
    bars = [{"ph": "X", "pid": 0, "tid": 0, "name": "k_a", "ts": 0.0, "dur": 2.0},
            {"ph": "X", "pid": 0, "tid": 1, "name": "k_b", "ts": 1.0, "dur": 3.0},
            {"ph": "X", "pid": 1, "tid": 0, "name": "k_a", "ts": 5.0, "dur": 3.0}]
    return {"traceEvents": meta + bars, "displayTimeUnit": "ns"}


def test_bars_are_the_events_placed_by_time():
    root = ET.fromstring(schedule_svg(_trace()))
    assert root.tag == f"{NS}svg"
    rects = [g.find(f"{NS}rect") for g in root.iter(f"{NS}g")]
    titles = [g.find(f"{NS}title").text for g in root.iter(f"{NS}g")]
    assert titles == ["k_a on vEU 0: 0.00+2.00 us", "k_b on vEU 1: 1.00+3.00 us", "k_a on vEU 0: 5.00+3.00 us"]
    scale = PLOT_W / 8.0   # the last event ends at 8 us
    xs = [float(r.get("x")) for r in rects]
    widths = [float(r.get("width")) for r in rects]
    assert xs == [MARGIN + LABEL_W + t * scale for t in (0.0, 1.0, 5.0)]
    assert widths == [d * scale for d in (2.0, 3.0, 3.0)]
    fills = [r.get("fill") for r in rects]
    assert fills[0] == fills[2] != fills[1]   # one colour per rOperator
    ys = [float(r.get("y")) for r in rects]
    assert ys[1] > ys[0] and ys[2] > ys[1]     # vEU 1 under vEU 0, the second kernel's band below
    assert "rprog0<&>" in "".join(root.itertext())   # escaped in the file, intact when parsed


def test_an_empty_schedule_says_so():
    root = ET.fromstring(schedule_svg({"traceEvents": []}))
    assert "no persistent kernels" in "".join(root.itertext())


def test_cli_writes_the_svg_of_a_rammer_build(tmp_path):
    build = tmp_path / "b"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "parallel" / "lstm_cell.onnx"), "-o", str(build),
                                 "--pipeline", "rammer", "-q"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "s.svg"
    r = CliRunner().invoke(cli, ["viz", "--schedule", str(build), "-o", str(out)])
    assert r.exit_code == 0, r.output
    bars = list(ET.parse(out).getroot().iter(f"{NS}rect"))
    assert bars and all(float(b.get("width")) > 0 for b in bars)
    trace = CliRunner().invoke(cli, ["viz", "--schedule", str(build)])   # stdout: the Chrome trace as before
    assert trace.exit_code == 0 and trace.output.lstrip().startswith("{")
