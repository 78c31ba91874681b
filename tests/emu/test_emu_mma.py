"""The emulator's sm_80 tensor-core primitives against numpy models of the PTX ISA's register layouts
(kernels/mma.cu): mma.sync m16n8k16 f16/bf16 and m16n8k8 tf32, ldmatrix x1/x2/x4 (.trans), cp.async with
commit groups. Every lane's registers are checked, a wrong fragment layout and a missing cp.async wait
fail, and tf32's 10-bit mantissa is visible in the results."""
from __future__ import annotations

import numpy as np
import pytest

LANES = np.arange(32)
G, T = LANES // 4, LANES % 4


def bits16(x: np.ndarray, dtype: str) -> np.ndarray:
    """f16 or bf16 bit patterns (uint32) of float32 values already representable in that type."""
    if dtype == "f16":
        return x.astype(np.float16).view(np.uint16).astype(np.uint32)
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint32)


def representable(rng, shape, dtype: str) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if dtype == "f16":
        return x.astype(np.float16).astype(np.float32)
    return ((x.view(np.uint32) >> 16) << 16).view(np.float32)   # truncated to bf16: exact in bf16


def pair(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo | (hi << 16)


def a_regs_k16(A, dtype):
    """m16n8k16 A fragment (16x16): a0 = A[g][2t..], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]."""
    b = bits16(A, dtype)
    return np.stack([pair(b[G + 8 * (i % 2), 2 * T + 8 * (i // 2)], b[G + 8 * (i % 2), 2 * T + 8 * (i // 2) + 1])
                     for i in range(4)], axis=1)


def b_regs_k16(B, dtype):
    """m16n8k16 B fragment (16x8): b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]."""
    b = bits16(B, dtype)
    return np.stack([pair(b[2 * T + 8 * i, G], b[2 * T + 8 * i + 1, G]) for i in range(2)], axis=1)


def c_regs(C):
    """C/D fragment (16x8 f32): c0 = C[g][2t], c1 = C[g][2t+1], c2 = C[g+8][2t], c3 = C[g+8][2t+1]."""
    return np.stack([C[G + 8 * (i // 2), 2 * T + i % 2] for i in range(4)], axis=1).astype(np.float32)


def run_mma(m, kernel, a, b, c):
    d = np.zeros((32, 4), np.float32)
    m.launch(kernel, (1,), (32,), [d, *(np.ascontiguousarray(x, dtype) for x, dtype in ((a, np.uint32), (b, np.uint32), (c, np.float32)))])
    return d


@pytest.mark.parametrize("dtype", ["f16", "bf16"])
def test_mma_m16n8k16_every_lane_matches_the_isa_layout(load, dtype):
    rng = np.random.default_rng(0)
    A, B = representable(rng, (16, 16), dtype), representable(rng, (16, 8), dtype)
    C = rng.standard_normal((16, 8)).astype(np.float32)
    d = run_mma(load("mma"), f"mma_{dtype}", a_regs_k16(A, dtype), b_regs_k16(B, dtype), c_regs(C))
    want = c_regs(A.astype(np.float64) @ B.astype(np.float64) + C)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-5)


def test_mma_m16n8k16_registers_are_not_interchangeable(load):
    """Feeding the A registers in another order (a1 <-> a2) must change every lane's result."""
    rng = np.random.default_rng(1)
    A, B = representable(rng, (16, 16), "f16"), representable(rng, (16, 8), "f16")
    a = a_regs_k16(A, "f16")
    d = run_mma(load("mma"), "mma_f16", a[:, [0, 2, 1, 3]], b_regs_k16(B, "f16"), np.zeros((32, 4), np.float32))
    assert not np.allclose(d, c_regs(A @ B), rtol=1e-2, atol=1e-2)


def tf32_truncate(x):
    return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def test_mma_tf32_uses_a_10_bit_mantissa(load):
    rng = np.random.default_rng(2)
    A = rng.standard_normal((16, 8)).astype(np.float32)
    B = rng.standard_normal((8, 8)).astype(np.float32)
    a = np.stack([A[G + 8 * (i % 2), T + 4 * (i // 2)] for i in range(4)], axis=1).view(np.uint32)
    b = np.stack([B[T + 4 * i, G] for i in range(2)], axis=1).view(np.uint32)
    d = run_mma(load("mma"), "mma_tf32", a, b, np.zeros((32, 4), np.float32))
    want = c_regs(tf32_truncate(A).astype(np.float64) @ tf32_truncate(B).astype(np.float64))
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-5)
    exact = c_regs(A.astype(np.float64) @ B.astype(np.float64))
    err = np.abs(d - exact).max()
    assert 1e-5 < err < 1e-2, err   # the rounding shows, at tf32's size (2^-10 relative per operand)


def test_cvt_tf32_rounds_to_nearest_ties_away(load):
    x = np.array([1 + 2**-11, 1 + 2**-11 + 2**-20, 1 + 2**-12, -(1 + 2**-11), 3.0, np.inf, 1 + 2**-10],
                 np.float32)
    y = np.zeros(len(x), np.uint32)
    load("mma").launch("cvt_tf32", (1,), (128,), [y, x, len(x)])
    got = y.view(np.float32)
    np.testing.assert_array_equal(got, np.array([1 + 2**-10, 1 + 2**-10, 1.0, -(1 + 2**-10), 3.0, np.inf,
                                                 1 + 2**-10], np.float32))


def ldmatrix_model(M, rows, count, trans):
    """Registers per lane: matrix j's rows come from lanes 8j..8j+7's addresses; lane l gets row l/4, columns
    2(l%4), 2(l%4)+1 (trans: rows 2(l%4), 2(l%4)+1 of column l/4), low half first."""
    out = np.zeros((32, 4), np.uint32)
    for j in range(count):
        mat = M[rows[8 * j: 8 * j + 8]].astype(np.uint32)   # 8 x 8
        if trans:
            mat = mat.T
        out[:, j] = pair(mat[G, 2 * T], mat[G, 2 * T + 1])
    return out


@pytest.mark.parametrize("mode", range(6))
def test_ldmatrix_every_lane_matches_the_isa_layout(load, mode):
    rng = np.random.default_rng(3 + mode)
    M = rng.integers(0, 2**16, (32, 8), dtype=np.uint16)
    rows = rng.permutation(32).astype(np.int32)
    r = np.zeros((32, 4), np.uint32)
    load("mma").launch("ldsm", (1,), (32,), [r, M, rows, mode])
    count, trans = (1, 2, 4)[mode % 3], mode >= 3
    np.testing.assert_array_equal(r, ldmatrix_model(M, rows, count, trans))


@pytest.mark.parametrize("wrong", [0, 1])
def test_a_kernel_with_a_wrong_fragment_layout_fails(load, wrong):
    rng = np.random.default_rng(4)
    A, B = representable(rng, (16, 16), "f16"), representable(rng, (16, 8), "f16")
    d = np.zeros((16, 8), np.float32)
    load("mma").launch("mma_tile", (1,), (32,), [d, A.astype(np.float16), B.astype(np.float16), wrong])
    ok = np.allclose(d, A.astype(np.float64) @ B, rtol=1e-5, atol=1e-5)
    assert ok == (not wrong)


def test_cp_async_lands_at_the_wait_that_covers_its_group(load):
    m = load("mma")
    g = np.arange(512, dtype=np.float32)
    out = np.zeros(512, np.float32)
    stats = m.launch("cp_async_stages", (1,), (64,), [out, g, 1])
    np.testing.assert_array_equal(out, g)
    assert stats.global_load_bytes == 512 * 4    # a cp.async counts as a global load
    m.launch("cp_async_stages", (1,), (64,), [out, g, 0])   # wait_group 1: only stage 0 landed
    np.testing.assert_array_equal(out[:256], g[:256])
    assert np.isnan(out[256:]).all()


def test_a_kernel_missing_its_cp_async_wait_fails(load):
    out = np.zeros(512, np.float32)
    load("mma").launch("cp_async_stages", (1,), (64,), [out, np.arange(512, dtype=np.float32), 2])
    assert np.isnan(out).all()


def test_cp_async_sizes_and_zero_fill(load):
    g = np.arange(1, 449, dtype=np.float32)
    out = np.full(448, -1.0, np.float32)
    stats = load("mma").launch("cp_async_sizes", (1,), (64,), [out, g, 200])
    want = g.copy()
    want[200:256] = 0.0     # src-size 0: zero-filled, not read
    np.testing.assert_array_equal(out, want)
    assert stats.global_load_bytes == 200 * 4 + 128 * 4 + 64 * 4


@pytest.mark.parametrize("which", range(5))
def test_swizzle_is_a_permutation_and_ldmatrix_phases_are_conflict_free(load, which):
    """tl_swizzle_b16<C> keeps 16-byte chunks whole, permutes each 8-row band, and puts the 8 rows that one
    ldmatrix phase reads at one logical chunk (any chunk column) in 8 different 16-byte bank groups."""
    c = 16 << which
    out = np.zeros(8 * c, np.int32)
    load("mma").launch("swizzle", (1,), (128,), [out, which])
    off = out.reshape(8, c)
    assert sorted(off.ravel()) == list(range(8 * c))
    pieces = off.reshape(8, c // 8, 8)
    assert (pieces - pieces[..., :1] == np.arange(8)).all() and (pieces[..., 0] % 8 == 0).all()   # whole chunks
    chunks = off[:, ::8] // 8                       # physical chunk of each (row, logical chunk)
    banks = (chunks * 16 // 4) % 32 // 4            # the 16-byte bank group (of 8) each lands in
    for col in range(c // 8):
        assert len(set(banks[:, col])) == 8, (c, col, banks[:, col])
