"""Roller on sm_90 knows the wgmma engine (issue #21, analysis/wgmma_shape.py): its candidates for a tensor-core
product are the engine's block tiles, priced as the kernel each one gets (warpgroups, TMA stages, opt-in shared
memory, registers), and the lowering builds the tile Roller chose; elsewhere nothing changes."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "backend"))
from lower_harness import compute_module, kernels, lower  # noqa: E402

from tilec.analysis import latency  # noqa: E402
from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.analysis.roller import construct_rtiles  # noqa: E402
from tilec.analysis.tile_problem import TileProblem  # noqa: E402
from tilec.analysis.wgmma_shape import TILES, wgmma_shape  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402
from tilec.passes import get_pass  # noqa: E402


def rolled(expr, a_shape, b_shape, out_shape, dtype, arch="h200"):
    t = "f32" if dtype == "tf32" else dtype
    module = compute_module(expr, [T(a_shape, t), T(b_shape, t)], T(out_shape, t))
    module.attributes["tilec.target"] = arch
    op = next(o for o in module.walk() if o.name == "tile.compute")
    if dtype == "tf32":
        op.attributes["precision"] = "tf32"
    get_pass("roller").apply(module)
    (kern,) = kernels(lower(module))
    return op, kern


@pytest.mark.parametrize("expr,a_shape,b_shape,out_shape,dtype", [
    ("C[m, n] += A[m, k] * B[k, n]", (4096, 4096), (4096, 4096), (4096, 4096), "f16"),
    ("C[m, n] += A[m, k] * B[k, n]", (1024, 3072), (3072, 768), (1024, 768), "bf16"),    # BERT's FFN2
    ("C[m, n] += A[k, m] * B[n, k]", (512, 200), (136, 512), (200, 136), "f16"),         # ragged M, N
    ("C[m, n] += A[m, k] * B[n, k]", (512, 512), (512, 512), (512, 512), "tf32"),        # K-major tf32: k8
])
def test_roller_prices_the_wgmma_kernel_it_gets(expr, a_shape, b_shape, out_shape, dtype):
    """rTile == estimate == lowered kernel: the block tile, the stages, the shared memory and the threads
    Roller priced are the wgmma kernel's; every candidate is one of the engine's tiles."""
    op, kern = rolled(expr, a_shape, b_shape, out_shape, dtype)
    rtile, est = dict(op.attributes["rtile"]), dict(op.attributes["estimate"])
    cfg, a = kern.attributes["config"], kern.attributes
    assert cfg["engine"] == "wgmma" and est["arch"] == "h200"
    assert [rtile["block"]["m"], rtile["block"]["n"]] == cfg["tile"]
    assert rtile["step"]["k"] == cfg["step"]["k"] == (32 if dtype == "tf32" else 64)
    assert rtile["stages"] == est["stages"] == cfg["stages"] >= 2
    assert est["smem_bytes"] == int(a["smem"]) and est["threads"] == a["block"][0]
    # one block per tile, or a persistent grid looping over them (more tiles than a wave)
    assert est["blocks"] == cfg.get("persistent", {}).get("tiles", a["grid"][0])
    alts = op.attributes["alternatives"]
    assert alts and all((alt["block"]["m"], alt["block"]["n"]) in TILES for alt in alts)
    if a_shape == (4096, 4096):
        assert cfg["tile"] == [128, 256] and a["block"][0] == 384 and a["grid"][0] == 132


def test_report_load_keeps_the_tma_pipeline_in_flight():
    """The report's latency load of the wgmma kernel carries the producer's bytes in flight (stages - 1 of
    (BM + BN) 128-byte rows), which hide DRAM latency as warps would; other kernels' rows keep their fields."""
    spec = get_arch("h200")
    _, kern = rolled("C[m, n] += A[m, k] * B[k, n]", (1024, 3072), (3072, 768), (1024, 768), "f16")
    cfg = kern.attributes["config"]
    load = latency.kernel_load(spec, kern, {"smem_dynamic": kern.attributes["smem"], "registers": 168})
    bm, bn = cfg["tile"]
    assert load.inflight_bytes == (cfg["stages"] - 1) * (bm + bn) * 128
    assert latency.load_from_json(latency.load_to_json(load)) == load
    hidden = latency.estimate(spec, load)
    exposed = latency.estimate(spec, latency.KernelLoad(**{**latency.load_to_json(load), "inflight_bytes": 0.0,
                                                         "work": load.work}))
    assert hidden.seconds < exposed.seconds
    plain = latency.KernelLoad(blocks=4, threads=256, smem=0, regs=32, flops=1.0, dtype="f32", tensor=False,
                               l2_bytes=1.0, dram_bytes=1.0)
    assert "inflight_bytes" not in latency.load_to_json(plain)


def test_elsewhere_roller_grows_its_own_tiles():
    """A tf32 product with a [k][n] weight keeps mma.sync on sm_90 (wgmma tf32 has no transposed operand), and
    a100 keeps the sm_80 engine: Roller's rTile is then not tied to the engine's tiles, its stages the sm_80
    engine's."""
    for expr, b_shape, arch in (("C[m, n] += A[m, k] * B[k, n]", (256, 320), "h200"),
                                ("C[m, n] += A[m, k] * B[k, n]", (256, 320), "a100")):
        op, kern = rolled(expr, (192, 256), b_shape, (192, 320), "tf32", arch)
        assert kern.attributes["config"]["engine"] == "mma_sync"
        assert op.attributes["rtile"]["stages"] == op.attributes["estimate"]["stages"] == \
            kern.attributes["config"]["stages"]
    op, kern = rolled("C[m, n] += A[m, k] * B[k, n]", (192, 256), (256, 320), (192, 320), "f16", "a100")
    assert kern.attributes["config"]["engine"] == "mma_sync"
    module = compute_module("C[m, n] += A[m, k] * B[k, n]", [T((192, 256), "f16"), T((256, 320), "f16")],
                            T((192, 320), "f16"))
    problem = TileProblem.of(next(o for o in module.walk() if o.name == "tile.compute"))
    assert all(wgmma_shape(problem, c.rtile, get_arch("a100")) is None
               for c in construct_rtiles(problem, get_arch("a100")))
