"""Half types, atomics, and blocks that wait on each other (concurrent mode)."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from tilec.backend.emu import EmuError


def test_half_kernel(load):
    m = load("half")
    rng = np.random.default_rng(4)
    n = 300
    x = rng.standard_normal(n).astype(np.float16)
    b = rng.standard_normal(n).astype(np.float16)
    y = np.zeros(n, np.float16)
    stats = m.launch("half_axpy", 3, 128, [y, x, b, np.float32(1.5), n])
    ref = (np.maximum(1.5 * x.astype(np.float32), 0) + b.astype(np.float32)).astype(np.float16)
    np.testing.assert_array_equal(y, ref)
    assert (stats.global_load_bytes, stats.global_store_bytes) == (2 * 2 * n, 2 * n)


def test_half_and_bf16_rounding_is_bit_exact(load):
    m = load("half")
    rng = np.random.default_rng(5)
    specials = [0.0, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e9, -1e9, 6e-8, 3e-8, 2.9e-8, 1e-5, np.inf, -np.inf,
                1.0 + 2.0**-11, 1.0 + 3 * 2.0**-11, 3.4e38]
    x = np.concatenate([np.array(specials, np.float32),
                        (rng.standard_normal(2000) * 10.0 ** rng.integers(-9, 6, 2000)).astype(np.float32)])
    n = x.size
    h, bf = np.zeros(n, np.float16), np.zeros(n, ml_dtypes.bfloat16)
    back = np.zeros(n, np.float32)
    m.launch("to_half", (n + 127) // 128, 128, [h, bf, back, x, n])
    with np.errstate(over="ignore"):
        ref = x.astype(np.float16)
    np.testing.assert_array_equal(h.view(np.uint16), ref.view(np.uint16))
    np.testing.assert_array_equal(bf.view(np.uint16), x.astype(ml_dtypes.bfloat16).view(np.uint16))
    np.testing.assert_array_equal(back, h.astype(np.float32) + bf.astype(np.float32))


def test_atomics(load):
    m = load("atomics")
    rng = np.random.default_rng(6)
    n, bins = 5000, 7
    x = rng.integers(0, 1000, n).astype(np.int32)
    hist = np.zeros(bins, np.int32)
    acc = np.zeros(1, np.float32)
    imax = np.array([-1], np.int32)
    umin = np.array([2**32 - 1], np.uint32)
    fmax = np.array([-np.inf], np.float32)
    cnt = np.zeros(2, np.int32)
    m.launch("atomics", (n + 127) // 128, 128, [hist, acc, imax, umin, fmax, cnt, x, n, bins])
    np.testing.assert_array_equal(hist, np.bincount(x % bins, minlength=bins))
    assert acc[0] == pytest.approx(float(x.sum()), rel=1e-5)
    assert (imax[0], umin[0], fmax[0]) == (x.max(), x.min(), x.max() * 0.5)
    assert list(cnt) == [n, 7]


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_producer_consumer_with_concurrent_blocks(load, order):
    m = load("flags")
    n = 100
    y, buf = np.zeros(n, np.float32), np.zeros(n, np.float32)
    flag = np.zeros(1, np.int32)
    m.launch("produce_consume", 2, 64, [y, buf, flag, n], concurrent_blocks=True, order=order)
    np.testing.assert_array_equal(y, np.arange(n) * 2.0 + 1.0)
    assert flag[0] == 1


def test_waiting_forever_is_a_deadlock(load):
    m = load("flags")
    flag = np.zeros(1, np.int32)
    with pytest.raises(EmuError, match=r"kernel wait_forever: deadlock with concurrent blocks.*32 in tl_wait_geq"):
        m.launch("wait_forever", 1, 32, [flag], concurrent_blocks=True)
    with pytest.raises(EmuError, match=r"kernel wait_forever: deadlock.*concurrent_blocks=True"):
        m.launch("wait_forever", 2, 32, [flag])   # normal mode: reported too, never a hang
