"""AMD matrix-core instructions (MFMA) under the emulator (issue #23): each of the four the MFMA engine uses
(``__builtin_amdgcn_mfma_f32_{32x32x8,16x16x16}{f16,bf16_1k}``, through the HIP prelude's ``tl_mfma_*``) against
numpy with the ISA's lane layouts, and kernels with a wrong operand or accumulator layout are shown to fail."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import EmuError, EmuModule

KERNELS = Path(__file__).with_name("kernels")
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "hip_prelude.h"
SHAPES = {"32x32x8": (32, 32), "16x16x16": (16, 16)}


@pytest.fixture(scope="module")
def mfma(emu_cache):
    """kernels/mfma.hip behind the HIP prelude, for 64-lane wavefronts."""
    return EmuModule(PRELUDE.read_text() + "\n" + (KERNELS / "mfma.hip").read_text(), cache_dir=emu_cache,
                     warp_size=64)


def _bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even f32 -> bf16 bit patterns."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def _operands(m: int, n: int, k: int, dtype: str, seed: int):
    """(A bits, B bits, A, B as f32): random values rounded to the input type, so the product is exact in f32
    and the only error left is the order of the f32 sums."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    if dtype == "f16":
        a16, b16 = a.astype(np.float16), b.astype(np.float16)
        return a16.view(np.uint16), b16.view(np.uint16), a16.astype(np.float32), b16.astype(np.float32)
    abits, bbits = _bf16_bits(a), _bf16_bits(b)
    f = lambda bits: (bits.astype(np.uint32) << 16).view(np.float32)   # noqa: E731
    return abits, bbits, f(abits), f(bbits)


def _run(mod, name, m, n, k, dtype, seed=0, order="normal"):
    abits, bbits, a, b = _operands(m, n, k, dtype, seed)
    d = np.zeros((m, n), np.float32)
    mod.launch(name, 1, 64, [d, np.ascontiguousarray(abits), np.ascontiguousarray(bbits), np.int32(k)],
               order=order, seed=seed)
    return d, a.astype(np.float64) @ b.astype(np.float64)


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
@pytest.mark.parametrize("shape", ["32x32x8", "16x16x16"])
@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_mfma_matches_numpy(mfma, shape, dtype, order):
    m, n = SHAPES[shape]
    k = 64   # several instructions accumulating into the same registers
    d, ref = _run(mfma, f"mfma_{shape}_{dtype}", m, n, k, dtype, seed=len(shape) + len(dtype), order=order)
    assert np.isfinite(d).all()
    np.testing.assert_allclose(d, ref, rtol=1e-5, atol=1e-5)


def test_wrong_a_layout_fails(mfma):
    d, ref = _run(mfma, "mfma_32x32x8_f16_wrong_a", 32, 32, 16, "f16", seed=3)
    assert not np.allclose(d, ref, rtol=1e-2, atol=1e-2)
    good, _ = _run(mfma, "mfma_32x32x8_f16", 32, 32, 16, "f16", seed=3)
    np.testing.assert_allclose(good, ref, rtol=1e-5, atol=1e-5)


def test_wrong_accumulator_layout_fails(mfma):
    d, ref = _run(mfma, "mfma_16x16x16_f16_wrong_d", 16, 16, 32, "f16", seed=4)
    assert not np.allclose(d, ref, rtol=1e-2, atol=1e-2)
    # It is a permutation of the right rows: the values are right, their places are not.
    np.testing.assert_allclose(np.sort(d.ravel()), np.sort(ref.ravel()), rtol=1e-5, atol=1e-5)


def test_mfma_on_32_lane_warps_is_refused(emu_cache):
    mod = EmuModule(PRELUDE.read_text() + "\n" + (KERNELS / "mfma.hip").read_text(), cache_dir=emu_cache,
                    warp_size=32)
    with pytest.raises(EmuError, match="MFMA needs 64-lane wavefronts"):
        _run(mod, "mfma_16x16x16_f16", 16, 16, 16, "f16")
