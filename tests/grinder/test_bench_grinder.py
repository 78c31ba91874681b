"""``scripts/bench_grinder.py``: a failing sample becomes a row that says why (the other rows are still
measured and written, the exit status is 1), and ``--date`` defaults to today (UTC, as ``scripts/bench.py``)."""
from __future__ import annotations

import datetime
from pathlib import Path

from tilec.testing.scripts import load_file_module

ROOT = Path(__file__).resolve().parents[2]


def _script():
    return load_file_module(ROOT / "scripts" / "bench_grinder.py")


GOOD = {"model": "good", "decision": "cf.loop → device, grid [132], 3 stages",
        "rammer": {"launches": 12, "syncs": 2, "kb": 1.5, "err": 1e-6},
        "grinder": {"launches": 1, "syncs": 1, "kb": 1.75, "err": 2e-6}}


def test_failing_sample_is_a_row_and_the_rest_go_on(tmp_path, monkeypatch):
    mod = _script()
    seen = []

    def fake_measure(label, tmp):
        seen.append(label)
        if label == "bad":
            raise RuntimeError("nvcc failed on kernel 'k3'\nsecond line not shown")
        return dict(GOOD)

    monkeypatch.setattr(mod, "measure", fake_measure)
    rc = mod.main(["--out", str(tmp_path), "--date", "2030-01-02", "--models", "bad,good"])
    assert rc == 1
    assert seen == ["bad", "good"]               # the failure did not stop the next sample
    text = (tmp_path / "grinder-2030-01-02.md").read_text()
    bad = [ln for ln in text.splitlines() if ln.startswith("| bad |")]
    assert bad == ["| bad | — | — | — | — | **failed**: RuntimeError: nvcc failed on kernel 'k3' |"]
    assert "| good | 12 → 1 | 2 → 1 | 1.5 → 1.8 |" in text


def test_all_rows_ok_exits_zero_and_date_defaults_to_today(tmp_path, monkeypatch):
    mod = _script()
    monkeypatch.setattr(mod, "measure", lambda label, tmp: dict(GOOD, model=label))

    class Clock(datetime.datetime):   # "today" pinned away from any date the script could hard-code
        @classmethod
        def now(cls, tz=None):
            return datetime.datetime(2031, 5, 6, 23, 30, tzinfo=datetime.timezone.utc).astimezone(tz)

    monkeypatch.setattr(mod.datetime, "datetime", Clock)
    assert mod.main(["--out", str(tmp_path), "--models", "a,b"]) == 0
    assert [p.name for p in tmp_path.glob("grinder-*.md")] == ["grinder-2031-05-06.md"]


def test_missing_sample_is_reported_not_raised(tmp_path):
    """The real ``measure`` on a sample that does not exist: the row names the error."""
    mod = _script()
    row = mod.measure_row("no_such_sample", tmp_path)
    assert row["model"] == "no_such_sample"
    assert "no_such_sample" in row["error"]
