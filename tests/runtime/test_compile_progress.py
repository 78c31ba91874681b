"""Stage progress of `tilec compile` (cli/progress.py): silent when fast, a status line on a terminal, plain
lines in logs, nothing with --quiet, and the driver reports every stage in order."""
from __future__ import annotations

import io
from pathlib import Path

from click.testing import CliRunner

from tilec.cli.main import cli
from tilec.cli.progress import Progress
from tilec.driver import compile_model, pipeline_spec
from tilec.passes.pipeline import parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "mlp.onnx"


class Clock:
    """A clock the test advances by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_fast_compile_prints_nothing():
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, clock=clock, terminal=False)
    for i, name in enumerate(["import", "roller", "write build"], 1):
        clock.now += 0.2
        p.stage(i, 3, name)
    p.done()
    assert out.getvalue() == ""


def test_plain_lines_after_the_delay_when_not_a_terminal():
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, clock=clock, terminal=False)
    p.stage(1, 3, "import")
    clock.now = 1.5
    p.stage(2, 3, "welder")
    clock.now = 2.0
    p.stage(3, 3, "write build")
    p.done()
    assert out.getvalue().splitlines() == ["tilec: [2/3] welder (1.5 s)", "tilec: [3/3] write build (2.0 s)"]


def test_terminal_line_is_rewritten_then_erased():
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, clock=clock, terminal=True)
    p.stage(1, 2, "import")
    clock.now = 3.0
    p.stage(2, 2, "rammer")
    p.done()
    text = out.getvalue()
    assert "\n" not in text                                   # one line, rewritten in place
    assert text == "\r\x1b[Ktilec: [2/2] rammer (3.0 s)\r\x1b[K"   # erased at the end


def test_quiet_prints_nothing_even_when_slow():
    out, clock = io.StringIO(), Clock()
    p = Progress(stream=out, clock=clock, terminal=False, enabled=False)
    p.stage(1, 2, "import")
    clock.now = 10.0
    p.stage(2, 2, "welder")
    p.done()
    assert out.getvalue() == ""


def test_driver_reports_every_stage_in_order(tmp_path):
    seen = []
    compile_model(str(SAMPLE), str(tmp_path / "b"), pipeline="welder",
                  progress=lambda i, n, name: seen.append((i, n, name)))
    passes = [p.name for p in parse_pipeline(pipeline_spec("welder"))]
    total = len(passes) + 2
    assert seen == [(i + 1, total, name) for i, name in enumerate(["import", *passes, "write build"])]


def test_compile_to_counts_only_the_stages_it_runs(tmp_path):
    seen = []
    compile_model(str(SAMPLE), str(tmp_path / "b"), pipeline="welder", compile_to="roller",
                  progress=lambda i, n, name: seen.append((i, n, name)))
    names = [name for _, _, name in seen]
    assert names[0] == "import" and names[-1] == "write build"
    assert names[-2] == "roller" and "welder" not in names    # --compile-to: stop after that stage
    assert all(n == len(seen) for _, n, _ in seen)


def test_cli_quiet_flag(tmp_path):
    r = CliRunner().invoke(cli, ["compile", str(SAMPLE), "-o", str(tmp_path / "b"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "tilec: [" not in r.output and r.output.startswith("compiled ")


def test_cli_progress_goes_to_stderr_and_the_summary_to_stdout(tmp_path, monkeypatch):
    # With no delay every stage shows: as plain lines (CliRunner's stderr is not a terminal), on stderr only,
    # so `tilec compile ... > log` keeps the summary clean.
    import functools

    import tilec.cli.progress as progress
    monkeypatch.setattr(progress, "Progress", functools.partial(Progress, delay_s=0.0))
    r = CliRunner().invoke(cli, ["compile", str(SAMPLE), "-o", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    lines = r.stderr.splitlines()
    assert lines[0].startswith("tilec: [1/") and " import (" in lines[0] and "write build" in lines[-1], r.stderr
    assert "tilec: [" not in r.stdout and r.stdout.startswith("compiled ")
