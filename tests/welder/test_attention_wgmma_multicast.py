"""TMA multicast in attention on wgmma (issue #21, fusion/attention/wgmma.py ``cluster_for``): the query tiles of
one (batch·head) read the same K/V chunks, so where K and V load by TMA and a head's query tiles pair up, two
blocks form a thread-block cluster and each loads half the rows of every K/V box with ``.multicast::cluster``
to both. Built from ONNX for h200 and run under the emulator (exact multicast, remote mbarrier arrives and
DSMEM rules) against numpy in f16 and bf16, sequences that are not tile multiples, the causal and key masks,
the head merge, K and V stored either way round, in normal, reverse and shuffled orders; bytes measured ==
modelled == the plain kernel's minus one K/V read per cluster. Odd query-tile counts, cp.async operands and
targets without clusters keep the plain kernel; each way to get the cluster protocol wrong fails; sm_90a
(ptxas) without spills, with UTMALDG.MULTICAST and a cluster barrier in the SASS."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from test_attention_tensor_cores import _attention_func, _model, run_and_check
from test_attention_wgmma import _einsum_model

from tilec.analysis.hardware import get_arch
from tilec.driver import compile_model, run_target
from tilec.fusion.attention import wgmma

# (dtype, batch, heads, seq, head dim, mask, merge heads, K as "kt" | "k" + Transpose | "einsum"), orders
CASES = {
    # seq 200: two query tiles of 128 (the second ragged), the second K/V chunk half past the end
    "f16_s200_d64_keys_merge": (("f16", 2, 2, 200, 64, "keys", True, "k"), ("reverse", "shuffle")),
    # K stored [d][key] (MN-major: its boxes split by d rows), causal mask
    "bf16_s256_d128_causal": (("bf16", 1, 1, 256, 128, "causal", False, "kt"), ("normal", "shuffle")),
    # K [key][d] and V [d][key], both K-major
    "f16_s256_d64_einsum": (("f16", 1, 2, 256, 64, None, False, "einsum"), ("reverse",)),
}


def _build(d, case, check_ptx=False):
    dtype, b, h, s, hd, mask, merge, kmode = case
    d.mkdir(parents=True, exist_ok=True)
    if kmode == "einsum":
        feeds, ref = _einsum_model(d, dtype, b, h, s, hd)
    else:
        feeds, ref = _model(d, dtype, b, h, s, hd, mask, merge, kmode)
    np.savez(d / "in.npz", **feeds)
    compile_model(str(d / "m.onnx"), str(d / "b"), pipeline="welder", arch="h200", check_ptx=check_ptx)
    return ref, _attention_func(d / "b")


@pytest.mark.parametrize("name", sorted(CASES))
def test_multicast_attention_matches_numpy(tmp_path, monkeypatch, name):
    case, orders = CASES[name]
    dtype, b, h, s, hd = case[:5]
    monkeypatch.setattr(wgmma, "cluster_for", lambda *a: 1)
    _, plain = _build(tmp_path / "plain", case)
    monkeypatch.undo()
    ref, func = _build(tmp_path, case)
    a = func.attributes
    assert a["cluster"] == 2 and a["config"]["cluster"] == 2 and "cluster" not in plain.attributes
    src = a["source"]
    assert src.count("tl_tma_load_multicast_") >= 2 and ", 0x3, " in src   # every box of K and V
    # K and V read once per cluster of two query tiles
    tq = a["config"]["tq"]
    saved = b * h * -(-s // tq) // 2 * s * 2 * hd * 2
    assert a["bytes_modelled"] == plain.attributes["bytes_modelled"] - saved
    for order in orders:
        run_and_check(tmp_path, dtype, ref, order)   # numpy, and every kernel's bytes measured == modelled


def test_multicast_only_where_query_tiles_pair_up(tmp_path):
    spec = get_arch("h200")
    att = lambda sq: SimpleNamespace(sq=sq)   # noqa: E731
    assert wgmma.cluster_for(spec, att(256), 128, True) == 2
    assert wgmma.cluster_for(spec, att(200), 128, True) == 2     # the second tile ragged
    assert wgmma.cluster_for(spec, att(384), 128, True) == 1     # three query tiles
    assert wgmma.cluster_for(spec, att(128), 128, True) == 1     # one
    assert wgmma.cluster_for(spec, att(256), 128, False) == 1    # cp.async K/V: no multicast
    no_clusters = SimpleNamespace(max_cluster_blocks=1)
    assert wgmma.cluster_for(no_clusters, att(256), 128, True) == 1
    # built: 130 keys (Kᵀ rows not whole 16-byte chunks) load by cp.async; 320 rows are three query tiles
    for case in (("bf16", 1, 1, 130, 64, None, False, "kt"), ("f16", 1, 1, 320, 64, None, False, "kt")):
        _, func = _build(tmp_path / str(case[3]), case)
        assert "cluster" not in func.attributes and "multicast" not in func.attributes["source"]


# Each mistake, made in the built kernel's source, fails under the emulator. 512 keys in 4 chunks through 2
# stages: the producer refills each stage once. The two lanes' releases both on the block's own barrier is a
# race the emulator does not expose here: a consumer keeps no wgmma in flight across a point
# where it yields, and the two blocks advance together (each needs the other's half of every chunk), so no
# refill lands in a stage still read in any order (checked: the output matches in normal, reverse, shuffle).
MISTAKES = {
    # the plain kernel's release (every consumer thread on its own block's barrier) left in: the barrier's
    # phases run ahead of the chunks and the pipeline stalls
    "local release": (r"if \(k_lane < 2\) tl_mbarrier_arrive_cluster\(&k_empty\[k_ci & 1\], k_lane\)",
                      "tl_mbarrier_arrive(&k_empty[k_ci & 1])", "shuffle", "deadlock"),
    # lane 1 of each warp does not release: block 1's barriers never complete, its producer never refills
    "one lane": (r"k_lane < 2\)", "k_lane < 1)", "shuffle", "deadlock"),
    # block 1 never gets its peer's K/V rows: its full barrier never completes
    "mask": (r"0x3, ", "0x1, ", "reverse", "deadlock"),
    # a peer's barrier may not exist yet
    "cluster sync": (r"tl_cluster_sync\(\);", "__syncthreads();", "shuffle", "before any tl_cluster_sync"),
    # no producer tail: a peer's consumers arrive on the barrier of a block that has exited
    "tail": (r"k_pc < 6; \+\+k_pc\)", "k_pc < 4; ++k_pc)", "normal", "peer that has exited"),
}


@pytest.fixture(scope="module")
def built512(tmp_path_factory):
    d = tmp_path_factory.mktemp("s512")
    ref, func = _build(d, ("f16", 1, 1, 512, 64, "causal", False, "kt"))
    assert func.attributes["cluster"] == 2
    return d, ref


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_multicast_mistakes_fail_under_the_emulator(built512, mistake, tmp_path):
    d, ref = built512
    pattern, new, order, error = MISTAKES[mistake]
    run_and_check(d, "f16", ref, order)   # the kernel as built passes in this order
    build = tmp_path / "b"
    shutil.copytree(d / "b", build)
    cu = next(p for p in (build / "kernels").glob("*attention*.cu"))
    text, n = re.subn(pattern, new, cu.read_text())
    assert n >= 1
    cu.write_text(text)
    for cubin in (build / "kernels").glob("*.cubin"):
        cubin.unlink()
    with pytest.raises(Exception, match=error):
        run_target(str(build), str(d / "in.npz"), str(tmp_path / "o.npz"), backend="emu", emu_order=order)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_multicast_attention_compiles_for_sm_90a(tmp_path):
    """bf16, seq 256, head dim 128, causal (two consumer warpgroups, setmaxnreg): ptxas for sm_90a with 0
    spills; with a disassembler, K/V by UTMALDG multicast after a cluster barrier."""
    _, func = _build(tmp_path, CASES["bf16_s256_d128_causal"][0], check_ptx=True)
    report = json.load(open(tmp_path / "b" / "report.json"))
    row = next(k for k in report["kernels"] if k["name"] == func.attributes["sym_name"].name)
    assert report["ptxas_checked"] and row["ptxas"]["spill_bytes"] == 0 and row["ptxas"]["stack"] == 0, row
    from tilec.backend.inspect_build import find_disassembler
    from tilec.ir.diagnostics import CompileError
    try:
        tool, path = find_disassembler()
    except CompileError:
        pytest.skip("no cuobjdump/nvdisasm")
    sass = subprocess.run([path, "-sass" if tool == "cuobjdump" else "-c",
                           str(tmp_path / "b" / "kernels" / f"{row['name']}.cubin")],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r"UTMALDG\.\dD\.MULTICAST", sass) and "UCGABAR_WAIT" in sass, sass[:2000]
