"""The campaign runner on a local Ray cluster (issue #22): fuzz verdicts, a bench row, node-test results and
``tilec tune --backend emu`` come out the same as run here, also when a worker dies mid-campaign.

Needs Ray (``pip install -e ".[ray]"``, which CI installs: ``make install-ray``); skipped without it. One
two-CPU cluster for the module (about 5 s to start), always shut down."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from tilec.testing.campaign import (LIFT, FileInput, LocalExecutor, RayExecutor, Unit,  # noqa: E402
                                    graph_campaign, ir_campaign, onnx_campaign)
from tilec.testing.scripts import load_file_module  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMINGS = ("seconds", "row_seconds", "stages", "slowest_pass", "phase_seconds")


@pytest.fixture(scope="module")
def cluster():
    assert not ray.is_initialized()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield RayExecutor(max_retries=2)   # uses the running cluster and leaves it to this fixture
    finally:
        ray.shutdown()


def _dies_once_then(marker, fn, *args):
    """Kills its own worker process the first time it runs (the marker says it has), then runs ``fn``."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return fn(*args)


class _KillsAWorker:
    """The cluster, with the campaign's second unit killing its worker on the first try."""

    def __init__(self, inner, marker):
        self.inner, self.marker = inner, marker

    def run(self, units, progress=None):
        units = list(units)
        units[1] = Unit.of(_dies_once_then, self.marker, units[1].fn, *units[1].args)
        return self.inner.run(units, progress)


def test_a_worker_killed_mid_campaign_leaves_the_result_whole(cluster, tmp_path):
    marker = str(tmp_path / "died")
    stages = ("import", "decompose")
    got = graph_campaign(11, seed=21, n_nodes=4, stages=stages, executor=_KillsAWorker(cluster, marker))
    assert os.path.exists(marker)   # a worker really died, running graph 10
    want = graph_campaign(11, seed=21, n_nodes=4, stages=stages)
    assert _tables(got.values()) == _tables(want.values())
    assert all(t.total == 11 for t in got.values())


def _square(x):
    return x * x


def test_a_result_for_other_inputs_is_refused(cluster):
    forged = Unit(_square, (3,), Unit.of(_square, 4).key)
    with pytest.raises(RuntimeError, match="result refused"):
        cluster.run([forged])


def _slow_input(seconds):
    from tilec.testing.guard import run_guarded
    return run_guarded(time.sleep, seconds, seconds=0.3)


def test_time_limits_hold_on_a_worker(cluster):
    """run_guarded's SIGALRM limit works in a Ray task (it runs on the worker's main thread)."""
    assert [o.kind for o in cluster.run([Unit.of(_slow_input, 5.0), Unit.of(_slow_input, 0.0)])] == \
        ["timeout", "ok"]


def _tables(tallies):
    return [(t.kind, dict(t.counts), t.findings) for t in tallies]


def test_fuzz_verdicts_equal_local(cluster):
    from tilec.testing.pipeline_fuzz import pipeline_campaign
    runs = {}
    for name, ex in (("local", LocalExecutor()), ("ray", cluster)):
        # as scripts/fuzz.py --ray: the workers cap their address space, and lift it for the emulator
        cap = {"executor": ex, "worker_memory": (4 << 30) if ex is cluster else None}
        tallies = [ir_campaign(40, seed=11, **cap), onnx_campaign(8, seed=11, hostile=False, **cap)]
        tallies += graph_campaign(6, seed=11, n_nodes=5, stages=("import", "decompose"), **cap).values()
        tallies += pipeline_campaign(1, seed=11, max_nodes=3, executor=ex,
                                     worker_memory=LIFT if ex is cluster else None).values()
        runs[name] = _tables(tallies)
    assert runs["ray"] == runs["local"]
    assert sum(c for _, counts, _ in runs["local"] for c in counts.values()) == 40 + 8 + 6 * 2 + 3


def test_node_test_results_equal_local(cluster):
    nt = load_file_module(ROOT / "scripts" / "node_test_table.py", "node_test_table_for_ray")
    cases = [c for c in nt.H.supported_cases() if set(nt.H.case_ops(c)) & {"Relu", "Softmax", "Gemm"}][:8]
    local = nt.sweep(cases)
    assert local == nt.sweep(cases, cluster)
    assert list(local[0].values()).count("passed") >= 8


def test_bench_row_equals_local(cluster, tmp_path):
    bench = load_file_module(ROOT / "scripts" / "bench.py", "bench_for_ray")
    task = {"model": "mlp", "size": "small", "pipeline": "welder", "no_ptx": True,
            "build": str(tmp_path / "mlp-small-welder")}
    units = [Unit.of(bench.bench_unit, task, FileInput.of(ROOT / "samples" / "mlp.onnx"), time.time() + 300,
                     (300.0, 120.0, 120.0))]
    rows = [ex.run(units)[0] for ex in (LocalExecutor(), cluster)]
    assert rows[0]["status"] == "ok", rows[0].get("error")
    same = [{k: v for k, v in r.items() if not any(t in k for t in TIMINGS)} for r in rows]
    assert same[0] == same[1] and same[0]["measured_bytes"] > 0


def _build_files(build: Path) -> dict:
    out = {}
    for p in sorted(build.rglob("*")):
        if p.is_file() and p.name != "report.json":
            out[str(p.relative_to(build))] = p.read_bytes()
    report = json.loads((build / "report.json").read_text())
    report.pop("compile_seconds", None)
    report.get("totals", {}).pop("compile_seconds", None)
    report["stages"] = [s["pass"] for s in report.get("stages", [])]
    out["report.json"] = report
    return out


def _tune_both_ways(tmp_path, model: str, k: int) -> tuple:
    """``tilec tune BUILD -k K --backend emu`` here and with ``--ray auto`` on copies of one build."""
    from click.testing import CliRunner

    from tilec.cli.main import cli
    base = tmp_path / "base"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / model), "-o", str(base), "-q"])
    assert r.exit_code == 0, r.output
    builds = {}
    for name, extra in (("local", []), ("ray", ["--ray", "auto"])):
        builds[name] = tmp_path / name
        shutil.copytree(base, builds[name])
        r = CliRunner().invoke(cli, ["tune", str(builds[name]), "-k", str(k), "--backend", "emu", *extra])
        assert r.exit_code == 0, r.output
        assert "on the emulator" in r.output
    return builds, _build_files(builds["local"]), _build_files(builds["ray"])


def test_tune_on_ray_writes_the_local_build(cluster, tmp_path):
    from click.testing import CliRunner

    from tilec.cli.main import cli
    builds, local, remote = _tune_both_ways(tmp_path, "mlp.onnx", 2)
    assert local == remote
    timed = [c for t in local["report.json"]["tuned"] for c in t["candidates"] if c["measured_seconds"]]
    assert len(timed) >= 4 and local["report.json"]["tuning_backend"] == "emu"

    # the GPU profiler's units need GPU workers: none in this cluster is an error, not a wait forever
    r = CliRunner().invoke(cli, ["tune", str(builds["ray"]), "-k", "2", "--ray", "auto"])
    assert r.exit_code == 1 and "no GPU workers" in r.output


@pytest.mark.slow
def test_tune_on_ray_changes_the_same_picks(cluster, tmp_path):
    """The transformer sample, top 4 (a minute of emulator builds): the emulator's bytes move some of
    Roller's picks, and the Ray run moves the same ones."""
    _, local, remote = _tune_both_ways(tmp_path, "transformer_layer.onnx", 4)
    assert local == remote
    assert any(t["chosen"] for t in local["report.json"]["tuned"])


@pytest.mark.slow
def test_fuzz_script_prints_the_same_table_with_ray(tmp_path):
    """``scripts/fuzz.py --ray`` (its own local cluster) against the same command without it."""
    args = [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--graphs", "4", "--pipeline-graphs", "2",
            "--ir", "200", "--onnx", "40", "--run-inputs", "20", "--seed", "7", "--save-dir", str(tmp_path)]
    out = [subprocess.run(args + extra, capture_output=True, text=True, timeout=600).stdout
           for extra in ([], ["--ray"])]
    table = [[line for line in o.splitlines() if line.startswith("|")] for o in out]
    assert table[0] and table[0] == table[1]
