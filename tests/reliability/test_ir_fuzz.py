"""Mutated IR never crashes the parser or verifier: it parses and verifies, or raises CompileError.

The seeded batch runs in a forked child with a capped address space (a hostile dim must not reach an
allocation) and a per-input time limit; hypothesis adds targeted insertions at random positions.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tilec.testing.campaign import ir_campaign
from tilec.testing.guard import DIAGNOSTIC, OK, in_child, run_guarded
from tilec.testing.ir_mutator import COMPUTE_SEEDS, HOSTILE_STRINGS, SEEDS, check_ir, ensure_valid

SRC = str(Path(__file__).resolve().parents[2] / "src")
CI_MUTANTS = 2000


def test_seeds_parse():
    ensure_valid({**SEEDS, **COMPUTE_SEEDS})


def _batch(n, seed, samples=False):
    from tilec.testing.corpus import ir_seeds
    t = ir_campaign(n, seed, seeds=ir_seeds(samples=samples))
    return t.total, dict(t.counts), t.findings


def test_seeded_mutants_give_diagnostics_not_crashes():
    total, counts, findings = in_child(_batch, CI_MUTANTS, 0, timeout=120)
    assert total == CI_MUTANTS
    assert not findings, findings
    assert counts.get(DIAGNOSTIC, 0) > CI_MUTANTS // 2  # the mutator really breaks things


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(SEEDS)), pos=st.integers(0, 2000),
       junk=st.one_of(st.text(max_size=12), st.sampled_from(HOSTILE_STRINGS)))
def test_insertions_anywhere(name, pos, junk):
    text = SEEDS[name]
    pos %= len(text) + 1
    o = run_guarded(check_ir, text[:pos] + junk + text[pos:], seconds=5)
    assert o.kind in (OK, DIAGNOSTIC), o


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(SEEDS)), start=st.integers(0, 2000), length=st.integers(1, 40))
def test_deletions_anywhere(name, start, length):
    text = SEEDS[name]
    start %= len(text)
    o = run_guarded(check_ir, text[:start] + text[start + length:], seconds=5)
    assert o.kind in (OK, DIAGNOSTIC), o


HOSTILE_TEXTS = [
    'module {\n  "te\\xst.op"() : () -> ()\n}\n',                      # an escape quote_string never writes
    'module {\n  "t.op"() {k = "\\U7fffffff"} : () -> ()\n}\n',        # beyond unicode
    'module {\n  "t.op"() {k = "\\u12"} : () -> ()\n}\n',              # short \u
    "module {\n  func.func @main(%x: tensor<99999999999x99999999999xf32>) -> () {\n    return\n  }\n}\n",
    'module {\n  %0 = "tile.const"() {value = dense<1.0> : tensor<99999999999x99999999999xf32>} : () -> (tensor<99999999999x99999999999xf32>)\n}\n',
    "[" * 50000,
    'module {\n' + '"t.r"() ({\n' * 3000 + '}) : () -> ()\n' * 3000 + '}\n',
    "module {\x00}",
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=[f"text{i}" for i in range(len(HOSTILE_TEXTS))])
def test_known_hostile_texts(text):
    o = run_guarded(check_ir, text, seconds=5)
    assert o.kind in (OK, DIAGNOSTIC), o


def test_cli_exit_codes_on_mutants(tmp_path):
    """Through ``tilec opt``: exit 0 or 1, never a traceback or an internal error (3)."""
    from tilec.testing.ir_mutator import mutants
    env = dict(os.environ, PYTHONPATH=SRC)
    cases = list(mutants(SEEDS, 6, seed=42)) + [("escape", 'module {\n  "a\\qb.op"() : () -> ()\n}\n')]
    for name, text in cases:
        p = tmp_path / "in.tir"
        p.write_text(text, encoding="utf-8", errors="surrogatepass")
        r = subprocess.run([sys.executable, "-m", "tilec.cli.main", "opt", str(p)], capture_output=True,
                           text=True, env=env, timeout=60)
        assert r.returncode in (0, 1), (name, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr
        if r.returncode == 1:
            assert ": error: " in r.stderr


@pytest.mark.slow
def test_make_fuzz_sized_batch():
    total, counts, findings = in_child(_batch, 10_000, 1, True, timeout=900)
    assert not findings, findings
