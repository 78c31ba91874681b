"""``scripts/zoo_full_check.py`` (make zoo-check): a full model's row compares tilec's numpy interpreter with
onnxruntime, and a model that cannot finish gets a row saying why instead of stopping the run."""
from pathlib import Path

import pytest

from tilec.testing.scripts import load_file_module

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "zoo_full_check.py"


@pytest.fixture(scope="module")
def check():
    return load_file_module(SCRIPT)


def test_nerf_full_matches_onnxruntime(check, tmp_path):
    # NeRF is the one full model small enough (2.4 MB of weights) for a unit test.
    assert check.main(["--models", "nerf_mlp", "--out", str(tmp_path), "--cache", str(tmp_path / "zoo"),
                       "--date", "2000-01-01"]) == 0
    text = (tmp_path / "zoo-full-2000-01-01.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| nerf_mlp |"))
    assert "| ok |" in row
    assert float(row.rstrip(" |").rsplit("|", 1)[1]) < 1e-3


def test_a_model_over_its_time_limit_is_a_failed_row(check, tmp_path):
    assert check.main(["--models", "nerf_mlp", "--out", str(tmp_path), "--cache", str(tmp_path / "zoo"),
                       "--timeout", "0.01", "--date", "2000-01-01"]) == 1
    assert "**failed**: over the 0s per-model limit" in (tmp_path / "zoo-full-2000-01-01.md").read_text()


def test_unknown_model_is_a_usage_error(check, tmp_path):
    with pytest.raises(SystemExit) as e:
        check.main(["--models", "no_such_model", "--out", str(tmp_path)])
    assert e.value.code == 2
