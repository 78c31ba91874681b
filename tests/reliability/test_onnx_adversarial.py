"""Adversarial ONNX: every hand-made hostile model is rejected with a clean diagnostic (or, for the
'any' cases, imported), seeded mutations of valid models never crash, and the CLI exits 0 or 1 without a
traceback. External data must never be read from outside the model's folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tilec.testing.campaign import onnx_campaign
from tilec.testing.corpus import onnx_bases
from tilec.testing.guard import DIAGNOSTIC, OK, in_child, run_guarded
from tilec.testing.onnx_cases import check_model_file, hostile_cases

SRC = str(Path(__file__).resolve().parents[2] / "src")
CI_MUTANTS = 300


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    return hostile_cases(tmp_path_factory.mktemp("hostile"))


def test_there_are_many_hostile_cases(cases):
    assert len(cases) >= 100


def test_hostile_cases(cases):
    bad = []
    for name, path, expect in cases:
        o = run_guarded(check_model_file, path, seconds=10)
        if o.kind not in (OK, DIAGNOSTIC) or (expect == "diagnostic" and o.kind != DIAGNOSTIC):
            bad.append((name, o))
    assert not bad, bad


def test_external_data_outside_the_folder_is_named_in_the_diagnostic(cases):
    for name, path, _ in cases:
        if name in ("ext_parent", "ext_absolute", "ext_symlink_out", "ext_symlink_dir_out"):
            o = run_guarded(check_model_file, path)
            assert o.kind == DIAGNOSTIC and "outside the model's folder" in o.detail, (name, o)


def _batch(n, seed):
    t = onnx_campaign(n, seed, bases=onnx_bases(4), hostile=False)
    return t.total, dict(t.counts), t.findings


def test_seeded_mutations_never_crash():
    total, counts, findings = in_child(_batch, CI_MUTANTS, 0, timeout=120)
    assert total == CI_MUTANTS
    assert not findings, findings


CLI_CASES = ["truncated_1", "random_bytes_0", "cycle", "ext_parent", "ext_symlink_out", "cast_to_float",
             "input_dim_-1", "hostile_name_5", "valid"]


def test_cli_exit_codes(cases):
    env = dict(os.environ, PYTHONPATH=SRC)
    by_name = {n: (p, e) for n, p, e in cases}
    for name in CLI_CASES:
        path, expect = by_name[name]
        r = subprocess.run([sys.executable, "-m", "tilec.cli.main", "import", str(path)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode in (0, 1), (name, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, name
        if expect == "diagnostic":
            assert r.returncode == 1 and ": error: " in r.stderr, (name, r.stderr)


@pytest.mark.slow
def test_make_fuzz_sized_batch():
    t = in_child(lambda: onnx_campaign(1000, 1), timeout=900)
    assert not t.findings, t.findings
