"""A persistent multicast GEMM whose blocks take unequal numbers of tiles (issue #21 review, docs/hopper.md's
multicast protocol section, rule 4): both blocks of a cluster must run the same pipeline, so the producer tail
and every remote arrive meet a live peer. 12 tiles on a grid of 8 (3 SMs x 3 resident blocks, rounded down to
whole clusters): blocks 0-3 take two tiles, 4-7 one; tile and grid counts are both even, so blocks 2j and
2j + 1 take as many tiles, paired (the two m tiles of one n tile: B shared), at every step. Exact against numpy
under the emulator in every thread order, with bytes measured == modelled (test_wgmma_engine.run)."""
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import test_wgmma_engine as W  # noqa: E402

from tilec.analysis.hardware import get_arch  # noqa: E402
from tilec.backend.lower import tiled_mma, wgmma_engine  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402

GEMM = "C[m, n] += A[m, k] * B[k, n]"


def test_uneven_tiles_per_block_stay_even_per_cluster(monkeypatch):
    small = dataclasses.replace(get_arch("h200"), num_sms=3)
    monkeypatch.setattr(tiled_mma, "tiled_for", lambda ctx: small)
    monkeypatch.setattr(wgmma_engine, "TILES", ((64, 64),))
    k = W.run(GEMM, [T((256, 256), "f16"), T((256, 192), "f16")], T((256, 192), "f16"), W.TOL["f16"],
              orders=("normal", "reverse", "shuffle"))
    a = k.attributes
    per = a["config"]["persistent"]
    assert a["grid"][0] == per["blocks"] == 8 and per["tiles"] == 12 and a["cluster"] == 2
    assert a["config"]["multicast"] == "B"
    taken = [len(range(b, per["tiles"], per["blocks"])) for b in range(per["blocks"])]
    assert taken == [2, 2, 2, 2, 1, 1, 1, 1]   # unequal per block, equal within each cluster
