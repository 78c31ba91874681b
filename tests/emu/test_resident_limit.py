"""The emulator's resident-limit mode (issue #15): a persistent launch runs only as many blocks at once as the
GPU would hold, so a grid whose blocks wait on blocks that cannot start deadlocks here, detected and reported
in bounded time, instead of hanging a GPU. Kernel level (kernels/resident.cu), the limit's arithmetic
(runtime/residency.py), and builds through ``tilec run --emu-resident-limit [--emu-sms N]``."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tilec.analysis.hardware import get_arch
from tilec.backend.emu import EmuError
from tilec.ir.diagnostics import CompileError
from tilec.runtime.residency import ResidentLimit, resident_per_sm, step_limit

ROOT = Path(__file__).resolve().parents[2]
TILEC = [sys.executable, "-m", "tilec.cli.main"]


def _bounded(fn, seconds: float = 60.0):
    """``fn()``'s result, or its exception; a call still running after ``seconds`` fails the test (the
    launch runs in a daemon thread, which the emulator's C++ runs without the GIL, so a hang cannot block
    the test session)."""
    box: dict = {}

    def call():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test
            box["error"] = e
    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still running after {seconds} s: the emulator hung"
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _chain(load, kernel: str, blocks: int, resident, order: str = "normal"):
    """``kernel`` (backward / forward) over ``blocks`` blocks; returns the order blocks finished in."""
    flags, done, count = np.zeros(blocks, np.int32), np.full(blocks, -1, np.int32), np.zeros(1, np.int32)
    _bounded(lambda: load("resident").launch(kernel, blocks, 64, [flags, done, count], concurrent_blocks=True,
                                             resident_blocks=resident, order=order))
    return done


@pytest.mark.parametrize("resident", [None, 8, 100])
def test_backward_chain_completes_with_the_whole_grid_resident(load, resident):
    assert _chain(load, "backward", 8, resident).tolist() == [7, 6, 5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("resident", [1, 4, 7])
def test_backward_chain_deadlocks_below_the_grid(load, resident):
    with pytest.raises(EmuError) as e:
        _chain(load, "backward", 8, resident)
    msg = str(e.value)
    assert "kernel backward: deadlock with concurrent blocks" in msg
    assert (f"resident-limit mode: at most {resident} of the grid's 8 blocks resident at once, {8 - resident} "
            "never started") in msg


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_forward_chain_completes_one_block_at_a_time(load, order):
    """Blocks start in grid order as slots free up: a block waiting only on earlier blocks never deadlocks."""
    assert _chain(load, "forward", 8, 1, order).tolist() == list(range(8))


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
@pytest.mark.parametrize("resident", [1, 3, 5, 12, None])
def test_at_most_the_limit_is_live_at_once(load, order, resident):
    live, peak = np.zeros(1, np.int32), np.zeros(1, np.int32)
    load("resident").launch("occupancy", 12, 32, [live, peak], concurrent_blocks=True, resident_blocks=resident,
                            order=order, seed=4)
    assert peak[0] == (12 if resident is None else min(resident, 12)) and live[0] == 0


@pytest.mark.parametrize("resident", [4, 6])
def test_clusters_start_whole(load, resident):
    """Clusters of 4 blocks (which wait on each other at the cluster barrier) start whole: a limit of 6
    holds one cluster at a time, as an SM pair that fits 6 blocks would."""
    x = np.random.default_rng(0).standard_normal(8 * 64).astype(np.float32)
    y, z = np.zeros_like(x), np.zeros_like(x)
    _bounded(lambda: load("cluster").launch("cluster_neighbour", 8, 64, [y, z, x], concurrent_blocks=True,
                                            resident_blocks=resident))
    peers = [b - b % 4 + (b % 4 + 1) % 4 for b in range(8)]
    t = np.arange(64)
    want = np.concatenate([x[p * 64 + 63 - t] + 1000.0 * ((b % 4 + 1) % 4) for b, p in enumerate(peers)])
    np.testing.assert_array_equal(y, want)


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4"])
def test_bad_resident_blocks(load, bad):
    with pytest.raises(EmuError, match="resident_blocks must be a positive integer"):
        load("resident").launch("forward", 2, 64, [np.zeros(2, np.int32), np.zeros(2, np.int32),
                                                   np.zeros(1, np.int32)], concurrent_blocks=True,
                                resident_blocks=bad)


# --- the limit's arithmetic: the arch spec's numbers, never constants in the test -------------------------------
SPEC = get_arch("h200")


def test_launch_bounds_register_budget_limits_residency():
    # __launch_bounds__(T, 1) lets ptxas use up to 255 registers: only 1 block of 256 threads fits the file.
    lim = resident_per_sm(SPEC, 256, 0, launch_bounds=1)
    assert (lim.per_sm, lim.limiter, lim.regs_from) == (1, "registers", "__launch_bounds__(256, 1)")
    assert lim.blocks == SPEC.num_sms and f"x {SPEC.num_sms} SMs = {SPEC.num_sms}" in lim.describe()


def test_few_registers_leave_threads_or_blocks_binding():
    big = resident_per_sm(SPEC, 1024, 0, regs=16, regs_from="ptxas")
    assert (big.per_sm, big.limiter) == (SPEC.max_threads_per_sm // 1024, "threads")
    small = resident_per_sm(SPEC, 32, 0, regs=16, regs_from="ptxas")
    assert (small.per_sm, small.limiter) == (SPEC.max_blocks_per_sm, "blocks")


def test_shared_memory_limits_residency():
    smem = 100 * 1024
    lim = resident_per_sm(SPEC, 128, smem, regs=16, regs_from="ptxas", num_sms=3)
    assert lim.limiter == "shared memory"
    assert lim.per_sm == SPEC.smem_per_sm_bytes // (smem + SPEC.smem_reserved_per_block_bytes)
    assert lim.blocks == 3 * lim.per_sm
    none = resident_per_sm(SPEC, 128, SPEC.smem_per_block_optin_bytes + 1, regs=16)
    assert (none.per_sm, none.blocks) == (0, 0)


def test_step_limit_prefers_ptxas_and_needs_residency_facts():
    step = {"kernel": "rammer0", "grid": [4, 1, 1], "block": [256, 1, 1], "smem": 0,
            "resident": {"arch": "h200", "blocks_per_sm": 1, "smem_static": 1024}}
    assert step_limit(step).regs_from == "__launch_bounds__(256, 1)"
    by_ptxas = step_limit(step, {"registers": 32, "smem": 1024}, num_sms=2)
    assert (by_ptxas.regs, by_ptxas.regs_from, by_ptxas.num_sms) == (32, "ptxas", 2)
    del step["resident"]
    with pytest.raises(CompileError, match="no residency facts in plan.json"):
        step_limit(step)


def test_emu_device_options_are_checked():
    from tilec.runtime.emu_device import EmuDevice
    with pytest.raises(CompileError, match="needs the resident-limit mode"):
        EmuDevice(num_sms=2)
    with pytest.raises(CompileError, match="needs the resident-limit mode"):
        EmuDevice(resident_limit=True, num_sms=0)


def test_no_block_fits_an_sm_is_an_error_before_launching(load):
    from tilec.runtime.emu_device import EmuDevice
    dev = EmuDevice(resident_limit=True)
    with pytest.raises(CompileError, match="persistent kernel 'forward' cannot launch: not one block fits an SM"):
        dev.launch(load("resident"), "forward", [2, 1, 1], [64, 1, 1], 0,
                   [np.zeros(2, np.int32), np.zeros(2, np.int32), np.zeros(1, np.int32)], concurrent=True,
                   resident=ResidentLimit(0, "shared memory", SPEC.num_sms))


# --- builds through the CLI -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnext(tmp_path_factory):
    """samples/parallel/resnext_block under rammer (one rProgram, rammer0) and its inputs."""
    from tilec.bench.measure import onnx_feeds
    from tilec.driver import compile_model, save_npz
    root = tmp_path_factory.mktemp("resident-cli")
    model = ROOT / "samples" / "parallel" / "resnext_block.onnx"
    compile_model(str(model), str(root / "build"), pipeline="rammer")
    save_npz(str(root / "in.npz"), onnx_feeds(str(model)))
    return root


def _tilec(*args, timeout: float = 120.0):
    return subprocess.run(TILEC + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)


def test_cli_reports_a_grid_one_sm_cannot_hold(resnext, tmp_path):
    plan = json.loads((resnext / "build" / "plan.json").read_text())
    (step,) = [s for s in plan["steps"] if s.get("concurrent")]
    grid = int(np.prod(step["grid"]))
    per_sm = step_limit(step, num_sms=1).per_sm
    assert grid > per_sm   # the premise: one SM does not hold this grid
    r = _tilec("run", resnext / "build", "--inputs", resnext / "in.npz", "--outputs", tmp_path / "out.npz",
               "--backend", "emu", "--emu-resident-limit", "--emu-sms", 1)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"persistent kernel '{step['kernel']}' cannot be co-resident: its {grid} blocks" in r.stderr
    assert f"x 1 SMs = {per_sm}" in r.stderr and f"{grid - per_sm} never started" in r.stderr
    assert not (tmp_path / "out.npz").exists()   # nothing half-written


def test_cli_resident_limit_on_the_target_gpu_passes(resnext, tmp_path):
    from tilec.driver import load_npz, load_target
    from tilec.runtime.interpreter import run_module
    r = _tilec("run", resnext / "build", "--inputs", resnext / "in.npz", "--outputs", tmp_path / "out.npz",
               "--backend", "emu", "--emu-resident-limit", "--report", tmp_path / "RUN.json")
    assert r.returncode == 0, r.stderr
    got = load_npz(str(tmp_path / "out.npz"))
    ref = run_module(load_target(str(ROOT / "samples" / "parallel" / "resnext_block.onnx")),
                     load_npz(str(resnext / "in.npz")))
    np.testing.assert_allclose(got["y"], ref["y"], rtol=1e-5, atol=1e-5)
    run = json.loads((tmp_path / "RUN.json").read_text())
    assert run["resident_limit"] is True and "persistent_fallbacks" not in run


@pytest.mark.parametrize("flags", [["--emu-sms", "1"], ["--backend", "numpy", "--emu-resident-limit"]])
def test_cli_resident_options_misused_are_usage_errors(resnext, tmp_path, flags):
    r = _tilec("run", resnext / "build", "--inputs", resnext / "in.npz", "--outputs", tmp_path / "out.npz",
               *(["--backend", "emu"] if "--backend" not in flags else []), *flags)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out.npz").exists()


@pytest.mark.parametrize("registers, fits", [(32, True), (200, False)])
def test_ptxas_registers_in_report_json_decide_the_limit(resnext, tmp_path, registers, fits):
    """With --check-ptx, report.json's ptxas registers replace the __launch_bounds__ budget: on as many SMs as
    the rProgram's grid needs when the threads per SM are the only limit, it fits at 32 registers a thread
    (the threads limit binds), not at 200."""
    import shutil
    from tilec.analysis.hardware import get_arch
    from tilec.driver import run_target
    build = tmp_path / "build"
    shutil.copytree(resnext / "build", build)
    plan = json.loads((build / "plan.json").read_text())
    (step,) = [s for s in plan["steps"] if s.get("kernel") == "rammer0"]
    grid, threads = int(np.prod(step["grid"])), int(np.prod(step["block"]))
    spec = get_arch("h200")
    by_threads = spec.max_threads_per_sm // threads
    assert spec.regs_per_sm // (32 * threads) >= by_threads > spec.regs_per_sm // (200 * threads)  # the premise
    sms = -(-grid // by_threads)
    report = json.loads((build / "report.json").read_text())
    (row,) = [k for k in report["kernels"] if k["name"] == "rammer0"]
    row["ptxas"] = {"registers": registers, "smem": row["smem_static"]}
    (build / "report.json").write_text(json.dumps(report))
    args = (str(build), str(resnext / "in.npz"), str(tmp_path / "out.npz"), "emu")
    if fits:
        run_target(*args, emu_resident_limit=True, emu_sms=sms)
        return
    with pytest.raises(CompileError, match=rf"{registers} registers/thread from ptxas.* x {sms} SMs = "):
        run_target(*args, emu_resident_limit=True, emu_sms=sms)
