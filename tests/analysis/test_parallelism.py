"""Issue #18's parallelism rule: a kernel with fewer threads per block than a warp, or fewer blocks than SMs
for an output of at least SMs x 1024 elements, carries the latency model's reason in its report.json row
(``latency.parallelism``), and the reason must hold (spreading the same work would not be faster)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from tilec.analysis.hardware import get_arch
from tilec.analysis.latency import KernelLoad, estimate, parallelism_check
from tilec.driver import compile_model

ROOT = Path(__file__).resolve().parents[2]
SPEC = get_arch("h200")


def _kernel(out_elements: int):
    return SimpleNamespace(attributes={"params": [{"role": "out", "shape": [out_elements], "dtype": "f32"}]})


def _check(blocks, threads, nbytes, out_elements):
    load = KernelLoad(blocks=blocks, threads=threads, smem=0, regs=32, flops=0.0, dtype="f32", tensor=False,
                      l2_bytes=nbytes, dram_bytes=nbytes)
    return parallelism_check(SPEC, _kernel(out_elements), load, estimate(SPEC, load))


def test_wide_output_on_one_block_is_flagged_and_not_justified():
    n = SPEC.num_sms * 1024 * 4
    check = _check(1, 256, n * 8.0, n)
    assert check is not None and not check["justified"]
    assert check["spread_blocks"] == SPEC.num_sms and check["spread_us"] < check["modelled_us"]
    assert str(SPEC.num_sms) in check["what"]


def test_small_or_well_spread_launches_are_not_flagged():
    assert _check(2, 256, 4096.0, 1000) is None                       # a small output on a few blocks
    assert _check(SPEC.num_sms, 128, 1e6, SPEC.num_sms * 4096) is None   # a block per SM


def test_one_block_grids_are_checked_whatever_their_size():
    check = _check(1, 256, 1024.0, 1000)     # launch-bound: spreading it gains little
    assert check is not None and check["justified"] and check["what"] == f"1 blocks for {SPEC.num_sms} SMs"
    assert _check(1, 32, 128.0, 32) is None  # a warp of outputs: one block is the kernel
    assert not _check(1, 256, 64e3, 16000)["justified"]   # 16 K outputs on one SM


def test_sub_warp_blocks_of_a_launch_bound_kernel_are_justified():
    check = _check(4, 8, 256.0, 32)      # 32 outputs: the launch overhead is the whole time
    assert check is not None and check["what"].startswith("fewer threads")
    assert check["justified"] and "less than 5% faster" in check["reason"]


def violations(report: dict) -> list:
    """Rows breaking the rule without a reason that holds."""
    bad = []
    for row in report["kernels"]:
        threads, blocks = math.prod(row["block"]), math.prod(row["grid"])
        check = row["latency"].get("parallelism")
        if check is None:
            assert threads >= SPEC.warp_size, row["name"]   # the rule's first half is never unreported
            continue
        if not check["justified"]:
            bad.append((row["name"], blocks, threads, check["reason"]))
    return bad


@pytest.fixture(scope="module")
def welder_samples(tmp_path_factory):
    d = tmp_path_factory.mktemp("par")
    out = {}
    for sample in ("transformer_layer", "mlp"):
        compile_model(str(ROOT / "samples" / f"{sample}.onnx"), str(d / sample), pipeline="welder")
        out[sample] = json.loads((d / sample / "report.json").read_text())
    return out


def test_mlp_sample_under_welder_fills_the_gpu_or_says_why(welder_samples):
    assert violations(welder_samples["mlp"]) == []


def test_transformer_layer_epilogues_left_one_block_grids(welder_samples):
    # issue #18: its three QKV projections (fused epilogues) were one-block grids, re-tiled by bytes.
    rows = [r for r in welder_samples["transformer_layer"]["kernels"] if r["name"].endswith("fused_epilogue")]
    assert rows and all(math.prod(r["grid"]) > 1 for r in rows), [(r["name"], r["grid"]) for r in rows]


def test_transformer_layer_single_block_grids_are_gone_or_justified(welder_samples):
    assert violations(welder_samples["transformer_layer"]) == []


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["welder", "rammer"])
def test_small_zoo_and_samples_fill_the_gpu_or_say_why(pipeline, tmp_path):
    from samples.models import ZOO
    from samples.models.build_zoo import build_one
    (tmp_path / "zoo").mkdir()
    paths = [str(p) for p in sorted((ROOT / "samples").glob("*.onnx"))]
    paths += [build_one(name, "small", str(tmp_path / "zoo"))[0] for name in ZOO]
    bad = {}
    for i, path in enumerate(paths):
        compile_model(path, str(tmp_path / f"b{i}"), pipeline=pipeline)
        found = violations(json.loads((tmp_path / f"b{i}" / "report.json").read_text()))
        if found:
            bad[Path(path).name] = found
    assert bad == {}
