"""The emulator's sm_90 primitives against numpy models of the PTX ISA (kernels_sm90a/hopper.cu): wgmma's
descriptors, canonical shared-memory layouts (every swizzle mode, K- and MN-major), accumulator and A-register
fragments for every thread of the warpgroup; TMA boxes (ranks 1-5, swizzles, element strides, out-of-bounds
zero and NaN fill, bytes counted exactly, multicast over a cluster); mbarrier phases and transaction counts;
TMA stores; setmaxnreg; TMA -> mbarrier -> wgmma GEMM tiles, plain and warp-specialised; and each misuse
failing (missing wait, missing fence, wrong expect_tx, reading before the barrier, an uninitialised barrier,
an operand or staging buffer refilled too early, a warp missing from a warpgroup instruction). The same
fixtures compile with ptxas for sm_90a with 0 spills."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import EmuModule
from tilec.backend.emu.errors import EmuError
from tilec.runtime import tensor_map as tm

FIXTURE = Path(__file__).with_name("kernels_sm90a") / "hopper.cu"
PRELUDE = Path(__file__).resolve().parents[2] / "src" / "tilec" / "backend" / "cuda_prelude.h"
THREADS = np.arange(128)
WARP, G, Q = THREADS // 32, (THREADS % 32) // 4, THREADS % 4


@pytest.fixture(scope="module")
def hopper(emu_cache) -> EmuModule:
    return EmuModule(PRELUDE.read_text() + "\n" + FIXTURE.read_text(), cache_dir=emu_cache)


# ---- numpy models of the ISA ------------------------------------------------------------------------------
def d_index(n: int):
    """(row, col) of every thread's accumulator registers (128 x n/2): register 4i + q of thread 32w + 4g + t is
    D[16w + g + 8(q/2)][8i + 2t + q%2]."""
    j = np.arange(n // 2)
    rows = 16 * WARP[:, None] + G[:, None] + 8 * ((j % 4) // 2)[None, :]
    cols = 8 * (j // 4)[None, :] + 2 * Q[:, None] + (j % 2)[None, :]
    return rows, cols


def a_regs(A: np.ndarray, kind: str) -> np.ndarray:
    """A from registers (128 x 4): mma.sync's m16n8k16 A fragment per warp (tf32: m16n8k8's), rows + 16w."""
    out = np.zeros((128, 4), np.uint32)
    base = 16 * WARP + G
    for i in range(4):
        row = base + 8 * (i % 2)
        if kind == "tf32":
            out[:, i] = A[row, Q + 4 * (i // 2)]
        else:
            c = 2 * Q + 8 * (i // 2)
            out[:, i] = A[row, c].astype(np.uint32) | (A[row, c + 1].astype(np.uint32) << 16)
    return out


def swizzle(addr: np.ndarray, span: int) -> np.ndarray:
    """XOR of address bits [4, 4+b) with bits [7, 7+b), span = 16 << b bytes (0 or 16: none)."""
    b = {0: 0, 16: 0, 32: 1, 64: 2, 128: 3}[span]
    return addr ^ (((addr >> 7) & ((1 << b) - 1)) << 4)


def canonical_offsets(mn: int, k: int, size: int, mn_major: bool, span: int, lbo: int, sbo: int) -> np.ndarray:
    """Byte offset (before the swizzle) of every element (mn, k) of a canonical layout (cute's
    make_gmma_desc): K-major ((8,m),(T,2)):((W*16 B, SBO),(size, W>1 ? 16 B : LBO)); MN-major swizzled
    ((T,W,m),(8,k)):((size, 16 B, LBO),(W*16 B, SBO)), MN-major none ((T,1,m),(8,k)):((size,-,SBO),(16 B,LBO))."""
    t = 16 // size
    w = max(span, 16) // 16
    m_i, k_i = np.meshgrid(np.arange(mn), np.arange(k), indexing="ij")
    if not mn_major:
        r, i, e, j = m_i % 8, m_i // 8, k_i % t, k_i // t
        return r * 16 * w + i * sbo + j * (16 if span else lbo) + e * size
    e, v, i, r, j = m_i % t, (m_i // t) % w, m_i // (t * w), k_i % 8, k_i // 8
    if span:
        return e * size + 16 * v + i * lbo + 16 * w * r + j * sbo
    return e * size + i * sbo + 16 * r + j * lbo


def place(img: np.ndarray, at: int, bits: np.ndarray, mn_major: bool, span: int, lbo: int, sbo: int):
    """Write matrix ``bits`` (mn x k, uint16 or uint32 patterns) into the byte image at offset ``at``."""
    size = bits.dtype.itemsize
    off = swizzle(at + canonical_offsets(*bits.shape, size, mn_major, span, lbo, sbo), span)
    view = img.view(bits.dtype)
    assert (off % size == 0).all() and len(set(off.ravel())) == bits.size   # a layout, not an overlap
    view[off // size] = bits


def operands(rng, m: int, k: int, kind: str):
    """Random values exactly representable in the operand type, and their bit patterns."""
    x = rng.standard_normal((m, k)).astype(np.float32)
    if kind == "f16":
        x = x.astype(np.float16)
        return x.astype(np.float64), x.view(np.uint16)
    bits = x.view(np.uint32)
    if kind == "bf16":
        hi = (bits >> 16).astype(np.uint16)
        return (hi.astype(np.uint32) << 16).view(np.float32).astype(np.float64), hi
    tf = (bits & np.uint32(0xFFFFE000)).view(np.float32)   # the tensor core reads tf32's 10-bit mantissa
    return tf.astype(np.float64), bits   # the registers/smem hold full f32 bits: the low 13 are ignored


# (kernel, N, kind, A layout (mn_major, span, lbo, sbo) or "regs", B layout, k offset inside the A/B rows)
UNITS = [
    ("wg_f16_n8", 8, "f16", (False, 0, 128, 256 + 64), (False, 0, 128, 256), 0),
    ("wg_f16_n64", 64, "f16", (False, 128, 16, 1024), (False, 128, 16, 1024), 0),
    ("wg_f16_n64", 64, "f16", (False, 128, 16, 1024), (False, 128, 16, 1024), 48),
    ("wg_f16_n256", 256, "f16", (False, 64, 16, 512), (False, 128, 16, 1024), 16),
    ("wg_bf16_n32", 32, "bf16", (False, 64, 16, 512), (False, 32, 16, 256), 0),
    ("wg_tf32_n16", 16, "tf32", (False, 128, 16, 1024), (False, 0, 256, 128), 0),
    ("wg_f16_mn_n16", 16, "f16", (True, 64, 1024, 512), (True, 32, 512, 256), 0),
    ("wg_f16_mn_n16", 16, "f16", (True, 0, 128, 256), (True, 128, 2048, 1024), 0),
    ("wg_f16_rs_n16", 16, "f16", "regs", (False, 128, 16, 1024), 0),
    ("wg_tf32_rs_n8", 8, "tf32", "regs", (False, 32, 16, 256), 0),
    ("wg_bf16_rs_mn_n24", 24, "bf16", "regs", (True, 64, 2048, 512), 0),
]


def run_unit(hopper, kernel, n, kind, la, lb, k0, scale_d=1, seed=0, corrupt=None, told_a=None):
    """Run one wgmma unit kernel: A (layout ``la``, or "regs") and B (layout ``lb``) placed in a shared-memory
    image by the numpy model, the instruction reading K columns from column ``k0`` on. Returns every thread's
    accumulators and the model's. ``told_a`` gives the kernel other A descriptor fields than the image has."""
    rng = np.random.default_rng(seed)
    K, size = (8, 4) if kind == "tf32" else (16, 2)
    A, a_bits = operands(rng, 64, k0 + K, kind)
    B, b_bits = operands(rng, n, k0 + K, kind)
    img = np.zeros(40960, np.uint8)   # A in the first 8 KiB, B after (256 rows of 128 bytes at most)
    a_off, b_off, start = 0, 8192, k0 * size   # K-major: the next K step starts k0 elements along the row
    assert not k0 or not (lb[0] or (la != "regs" and la[0])), "K steps are modelled for K-major only"
    if la != "regs":
        place(img, a_off, a_bits, *la)
    place(img, b_off, b_bits, *lb)
    C = rng.standard_normal((64, n)).astype(np.float32)
    rows, cols = d_index(n)
    areg = a_regs(a_bits[:, k0:], kind) if la == "regs" else np.zeros((128, 4), np.uint32)
    if corrupt is not None:
        areg = corrupt(areg)
    fa = told_a or la
    head = [a_off, b_off + start, 16, 16, 0] if la == "regs" else [a_off + start, b_off + start, fa[2], fa[3], fa[1]]
    p = np.array(head + [lb[2], lb[3], lb[1], scale_d], np.int32)
    d = np.zeros((128, n // 2), np.float32)
    hopper.launch(kernel, (1,), (128,), [d, img, img.size, p, np.ascontiguousarray(C[rows, cols]), areg],
                  smem_bytes=img.size + 1024)
    want = A[:, k0:] @ B[:, k0:].T + (C if scale_d else 0)
    return d, want[rows, cols]


@pytest.mark.parametrize("unit", UNITS, ids=[f"{u[0]}-{i}" for i, u in enumerate(UNITS)])
def test_wgmma_every_thread_matches_the_isa(hopper, unit):
    d, want = run_unit(hopper, *unit)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-4)


def test_wgmma_scale_d_zero_ignores_the_accumulators(hopper):
    d, want = run_unit(hopper, *UNITS[1], scale_d=0)
    np.testing.assert_allclose(d, want, rtol=1e-5, atol=1e-4)


def test_wgmma_a_wrong_register_order_fails(hopper):
    """The A fragment's registers 1 and 2 swapped: every thread's result changes."""
    d, want = run_unit(hopper, *UNITS[8], corrupt=lambda a: np.ascontiguousarray(a[:, [0, 2, 1, 3]]))
    assert not np.isclose(d, want, rtol=1e-3, atol=1e-3).any(axis=1).all()


def test_wgmma_descriptor_fields_are_read(hopper):
    """The same image read with a stride byte offset 16 bytes off, or a 128-byte instead of a 64-byte
    swizzle, gives other numbers: SBO and the swizzle mode are not ignored."""
    kernel, n, kind, la, lb, k0 = UNITS[3]
    assert la[1] == 64
    for told in ((la[0], la[1], la[2], la[3] - 16), (la[0], 128, la[2], la[3])):
        d, want = run_unit(hopper, kernel, n, kind, la, lb, k0, told_a=told)
        assert not np.allclose(d, want, rtol=1e-3, atol=1e-3)


def test_descriptor_bits_follow_the_isa(emu_cache):
    """tl_wgmma_desc's fields where the ISA puts them (the emulator's region tag aside, bits 56-59)."""
    src = """
extern "C" __global__ void __launch_bounds__(1) desc(unsigned long long* Out, int lbo, int sbo, int sw) {
  TL_SHARED(__align__(1024) unsigned char, s, [2048]);
  TL_ST(Out, 0, tl_wgmma_desc(&s[1024 - ((unsigned long long)&s[0] & 1023) + 96], lbo, sbo, sw));
  TL_ST(Out, 1, (unsigned long long)&s[1024 - ((unsigned long long)&s[0] & 1023) + 96]);
}
"""
    m = EmuModule(PRELUDE.read_text() + src, cache_dir=emu_cache)
    for sw, layout in ((0, 0), (32, 3), (64, 2), (128, 1)):
        out = np.zeros(2, np.uint64)
        m.launch("desc", (1,), (1,), [out, 4096, 1024 + 16 * 3, sw])
        d, addr = int(out[0]), int(out[1])
        assert d & 0x3FFF == (addr & 0x3FFFF) >> 4
        assert (d >> 16) & 0x3FFF == 4096 >> 4 and (d >> 32) & 0x3FFF == (1024 + 48) >> 4
        assert (d >> 49) & 7 == 0 and d >> 62 == layout
        assert (d >> 56) & 0xF == 1   # TL_SHARED arena (emulator only; reserved bits on a GPU)


# ---- TMA --------------------------------------------------------------------------------------------------
NAN_BITS = {1: 0, 2: 0x7FFF, 4: 0x7FFFFFFF, 8: 0x7FFFFFFFFFFFFFFF}


def tma_model(t: np.ndarray, box: tuple, coords: tuple, estr: tuple, span: int, nan: bool):
    """The shared-memory image of one TMA box (``box``/``estr`` outermost first, ``coords`` innermost first)
    and the bytes of the in-bounds elements (the global loads): the box row-major, ceil(box/estr) elements
    along every dimension but the innermost, out-of-bounds elements 0 (or NaN), then the swizzle."""
    r, es = t.ndim, t.itemsize
    n = [box[i] if i == r - 1 else -(-box[i] // estr[i]) for i in range(r)]
    idx = np.indices(n).reshape(r, -1)
    g = np.stack([coords[r - 1 - i] + idx[i] * (1 if i == r - 1 else estr[i]) for i in range(r)])
    inb = np.all((g >= 0) & (g < np.array(t.shape)[:, None]), axis=0)
    raw = t.view(f"u{es}")
    vals = np.full(idx.shape[1], NAN_BITS[es] if nan else 0, f"u{es}")
    vals[inb] = raw[tuple(np.where(inb, g, 0))][inb]
    img = np.zeros(vals.size * es, np.uint8)
    off = swizzle(np.arange(vals.size) * es, span)
    img.view(f"u{es}")[off // es] = vals
    return img, int(inb.sum()) * es


TMA_CASES = [   # (kernel, shape, dtype, box, coords (innermost first), element strides, swizzle, nan fill)
    ("tma_1d", (100,), np.float32, (32,), (80,), (1,), tm.Swizzle.NONE, False),
    ("tma_2d", (40, 72), np.float16, (8, 64), (32, 36), (1, 1), tm.Swizzle.B128, True),
    ("tma_2d", (40, 72), np.float16, (16, 32), (-8, 30), (1, 1), tm.Swizzle.B64, False),
    ("tma_2d", (24, 40), np.float16, (8, 16), (30, -3), (1, 1), tm.Swizzle.B32, True),
    ("tma_2d", (24, 40), np.float16, (8, 8), (0, 20), (1, 1), tm.Swizzle.NONE, False),
    ("tma_3d", (6, 10, 8), np.float32, (3, 4, 8), (0, -1, 4), (2, 2, 1), tm.Swizzle.NONE, True),
    ("tma_4d", (3, 4, 5, 32), np.uint8, (2, 2, 4, 16), (20, 3, 2, 2), (1, 1, 1, 1), tm.Swizzle.NONE, False),
    ("tma_5d", (2, 3, 2, 3, 8), np.float16, (2, 2, 2, 2, 8), (0, 2, 1, 2, 1), (1, 1, 1, 1, 1), tm.Swizzle.NONE, True),
]


@pytest.mark.parametrize("case", TMA_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(TMA_CASES)])
def test_tma_box_fill_swizzle_and_bytes(hopper, case):
    kernel, shape, dtype, box, coords, estr, sw, nan = case
    rng = np.random.default_rng(7)
    t = (rng.standard_normal(shape) * 8).astype(dtype)
    spec = tm.tiled(t, box, swizzle=sw, oob_fill=tm.OobFill(int(nan)), element_strides=estr)
    want, loaded = tma_model(t, box, coords, estr, tm.SWIZZLE_BYTES[sw], nan)
    assert spec.box_bytes == want.size
    out = np.zeros(want.size, np.uint8)
    stats = hopper.launch(kernel, (1,), (64,), [out, t.view(np.uint8).reshape(-1), spec.emu_bytes(), want.size,
                                                *coords], smem_bytes=want.size + 128 + 8 + 1024)
    np.testing.assert_array_equal(out, want)
    assert stats.global_load_bytes == loaded   # only in-bounds bytes are read


def test_tma_read_before_the_barrier_sees_poison(hopper):
    t = np.arange(64 * 64, dtype=np.float16).reshape(64, 64)
    spec = tm.tiled(t, (8, 64), swizzle=tm.Swizzle.B128)
    out = np.zeros(1024, np.uint8)
    hopper.launch("tma_no_wait", (1,), (64,), [out, t.view(np.uint8).reshape(-1), spec.emu_bytes(), 1024, 0, 0],
                  smem_bytes=1024 + 128 + 8 + 1024)
    assert (out == 0xFF).all()


def test_tma_multicast_fills_both_blocks_of_the_cluster(hopper):
    t = np.random.default_rng(3).standard_normal((16, 64)).astype(np.float16)
    spec = tm.tiled(t, (16, 64), swizzle=tm.Swizzle.B128)
    want, loaded = tma_model(t, (16, 64), (0, 4), (1, 1), 128, False)
    out = np.zeros((2, want.size), np.uint8)
    stats = hopper.launch("tma_multicast", (2,), (64,), [out, t.view(np.uint8).reshape(-1), spec.emu_bytes(),
                                                         want.size, 0, 4])
    np.testing.assert_array_equal(out[0], want)
    np.testing.assert_array_equal(out[1], want)
    assert stats.global_load_bytes == loaded   # read once for both blocks


# ---- mbarrier ---------------------------------------------------------------------------------------------
def test_mbarrier_phases_follow_arrivals_and_transactions(hopper):
    r = np.full(9, -1, np.int32)
    hopper.launch("mbar_phases", (1,), (32,), [r])
    assert r.tolist() == [0, 1, 0, 0, 1, 0, 0, 0, 1]


def test_mbarrier_pipeline_hands_over_each_round(hopper):
    out = np.zeros(5, np.int32)
    hopper.launch("mbar_pipeline", (1,), (64,), [out, 5, 0], order="shuffle", seed=3)
    assert out.tolist() == [1, 2, 3, 4, 5]


def test_wrong_expect_tx_is_a_reported_deadlock(hopper):
    with pytest.raises(EmuError, match=r"deadlock.*1 in mbarrier waits.*tx-count 16 \(expect_tx bytes"):
        hopper.launch("mbar_pipeline", (1,), (64,), [np.zeros(5, np.int32), 5, 1])


def test_uninitialised_mbarrier_fails(hopper):
    with pytest.raises(EmuError, match="used before tl_mbarrier_init"):
        hopper.launch("mbar_uninitialised", (1,), (32,), [np.zeros(1, np.int32)])


# ---- TMA -> mbarrier -> wgmma -> store: a 64 x N tile per block ----------------------------------------------
def run_gemm(hopper, n: int, k: int, bug: int = 0, blocks: int = 2):
    rng = np.random.default_rng(n + k)
    A = rng.standard_normal((64, k)).astype(np.float16)
    B = rng.standard_normal((blocks * n, k)).astype(np.float16)
    ma = tm.tiled(A, (64, 64), swizzle=tm.Swizzle.B128)
    mb = tm.tiled(B, (n, 64), swizzle=tm.Swizzle.B128)
    D = np.zeros((64, blocks * n), np.float32)
    kernel = f"gemm_n{n}" if not bug else "gemm_misuse"
    stats = hopper.launch(kernel, (blocks, 1), (128,), [D, A, B, ma.emu_bytes(), mb.emu_bytes(), k, bug],
                          smem_bytes=64 * 128 + n * 128 + 8 + 1024)
    return D, A.astype(np.float64) @ B.astype(np.float64).T, stats


@pytest.mark.parametrize("n", [64, 128, 256])
def test_gemm_tile_through_tma_mbarrier_and_wgmma(hopper, n):
    D, want, stats = run_gemm(hopper, n, 128)
    np.testing.assert_allclose(D, want, rtol=1e-5, atol=1e-3)
    assert stats.global_load_bytes == 2 * (64 * 128 * 2 + n * 128 * 2)   # each block's A and B tiles, once
    assert stats.global_store_bytes == D.nbytes


def test_gemm_with_a_wrong_expect_tx_fails(hopper):
    with pytest.raises(EmuError, match=r"deadlock.*mbarrier waits.*tx-count 1024"):
        run_gemm(hopper, 64, 128, bug=1)


def test_gemm_storing_before_the_wgmma_wait_reads_nan(hopper):
    D, _, _ = run_gemm(hopper, 64, 64, bug=2)
    assert np.isnan(D).all()


def test_gemm_without_a_wgmma_fence_fails(hopper):
    with pytest.raises(EmuError, match="tl_wgmma_fence"):
        run_gemm(hopper, 64, 64, bug=3)


def test_gemm_reading_tiles_before_the_barrier_reads_nan(hopper):
    D, _, _ = run_gemm(hopper, 64, 64, bug=4)
    assert np.isnan(D).all()


# ---- the same fixtures on the GPU toolchain ---------------------------------------------------------------
@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_fixtures_compile_for_sm_90a_without_spills(tmp_path):
    from tilec.backend.ptxas import parse_ptxas
    unit = tmp_path / "hopper.cu"
    unit.write_text(PRELUDE.read_text() + "\n" + FIXTURE.read_text())
    proc = subprocess.run(["nvcc", "-arch=sm_90a", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "h.cubin"),
                           str(unit)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = parse_ptxas(proc.stderr + proc.stdout)
    from tilec.backend.emu.signature import parse_kernels
    names = list(parse_kernels(FIXTURE.read_text()))
    assert set(names) <= set(info), sorted(set(names) - set(info))
    for name in names:
        assert info[name].spill_stores == 0 and info[name].spill_loads == 0, name
    log = proc.stderr + proc.stdout
    # ptxas serialises wgmma when accumulators leave registers, and injects a wait (C7517) where registers of a
    # pending wgmma are used: neither may touch a correct kernel (gemm_misuse skips its wait on purpose).
    flagged = [line for line in log.splitlines() if "C7517" in line or "serializ" in line]
    assert flagged and all("'gemm_misuse'" in line for line in flagged), flagged
    from tilec.ir.diagnostics import CompileError
    from tilec.backend.inspect_build import disassemble, find_disassembler
    try:
        tool = find_disassembler()
    except CompileError:
        return   # no cuobjdump/nvdisasm: the SASS check is tilec inspect's extra
    funcs = disassemble(tmp_path / "h.cubin", tool)
    for name in ("gemm_n128", "gemm_ws"):   # each K block: 2 TMA loads, 4 HGMMA 64x128x16
        ops = [i.opcode.split(".")[0] for i in funcs[name]]
        assert ops.count("HGMMA") == 4 and ops.count("UTMALDG") == 2, name


def test_prelude_holds_the_generated_wgmma_operand_tables():
    import importlib.util
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_wgmma_operands.py"
    spec = importlib.util.spec_from_file_location("gen_wgmma_operands", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.table() in PRELUDE.read_text()


def test_a_warp_missing_from_the_wgmma_is_a_reported_deadlock(hopper):
    with pytest.raises(EmuError, match=r"deadlock.*32 threads at __syncthreads.*96 at a warpgroup rendezvous"):
        hopper.launch("wg_divergent", (1,), (128,), [np.zeros(128, np.float32)])


def test_wgmma_needs_whole_warpgroups(hopper):
    with pytest.raises(EmuError, match="whole warpgroups"):
        hopper.launch("wg_divergent", (1,), (96,), [np.zeros(128, np.float32)])


def test_remote_arrivals_complete_a_cluster_peers_barrier(hopper):
    out = np.zeros(2, np.int32)
    hopper.launch("mbar_cluster", (8,), (32,), [out, 3], order="reverse")
    assert out.tolist() == [3, 3]


def test_refilling_a_wgmma_operand_before_its_wait_fails(hopper):
    d = np.zeros(128, np.float32)
    hopper.launch("wg_refill", (1,), (128,), [d, 1])   # refilled after the wait: fine
    assert not np.isnan(d).any()
    with pytest.raises(EmuError, match="changed before the wait that covers it"):
        hopper.launch("wg_refill", (1,), (128,), [d, 0])


@pytest.mark.parametrize("order", ["normal", "shuffle"])
def test_warp_specialised_two_stage_pipeline(hopper, order):
    """Producer/consumer warpgroups over full/empty barriers, one wgmma group in flight: exact, each tile read
    once, no stage refilled under a pending wgmma (the emulator would fail it)."""
    k, n, blocks = 256, 128, 2
    rng = np.random.default_rng(11)
    A = rng.standard_normal((128, k)).astype(np.float16)
    B = rng.standard_normal((blocks * n, k)).astype(np.float16)
    ma = tm.tiled(A, (64, 64), swizzle=tm.Swizzle.B128)
    mb = tm.tiled(B, (n, 64), swizzle=tm.Swizzle.B128)
    D = np.zeros((128, blocks * n), np.float32)
    stats = hopper.launch("gemm_ws", (blocks, 2), (256,), [D, A, B, ma.emu_bytes(), mb.emu_bytes(), k],
                          smem_bytes=2 * (64 + n) * 128 + 32 + 1024, smem_optin=2 * (64 + n) * 128 + 32 + 1024,
                          order=order, seed=5)
    np.testing.assert_allclose(D, A.astype(np.float64) @ B.astype(np.float64).T, rtol=1e-5, atol=1e-3)
    assert stats.global_load_bytes == blocks * 2 * (64 + n) * k * 2


def test_setmaxnreg_is_warpgroup_uniform(hopper):
    out = np.zeros(128, np.int32)
    hopper.launch("wg_setmaxnreg", (1,), (128,), [out, 0])
    assert (out == 1).all()
    with pytest.raises(EmuError, match="setmaxnreg with different counts"):
        hopper.launch("wg_setmaxnreg", (1,), (128,), [out, 1])


@pytest.mark.parametrize("sw, box, coords", [(tm.Swizzle.B128, (8, 64), (32, 36)), (tm.Swizzle.NONE, (4, 8), (-3, 2))])
def test_tma_store_writes_the_in_bounds_part_of_the_box(hopper, sw, box, coords):
    t = np.zeros((40, 72), np.float16)
    spec = tm.tiled(t, box, swizzle=sw)
    vals = np.random.default_rng(9).standard_normal(box).astype(np.float16)
    # The staging image is what a load of `vals` would leave in shared memory (the load's model).
    img, _ = tma_model(vals, box, (0, 0), (1, 1), tm.SWIZZLE_BYTES[sw], False)
    stats = hopper.launch("tma_store_2d", (1,), (64,), [t.view(np.uint8).reshape(-1), img, spec.emu_bytes(),
                                                        img.size, *coords, 0], smem_bytes=img.size + 1024)
    want = np.zeros_like(t)
    r0, c0 = coords[1], coords[0]
    rows = slice(max(r0, 0), min(r0 + box[0], 40))
    cols = slice(max(c0, 0), min(c0 + box[1], 72))
    want[rows, cols] = vals[rows.start - r0: rows.stop - r0, cols.start - c0: cols.stop - c0]
    np.testing.assert_array_equal(t, want)
    assert stats.global_store_bytes == want[rows, cols].size * 2


def test_refilling_a_tma_store_source_before_its_wait_fails(hopper):
    t = np.zeros((40, 72), np.float16)
    spec = tm.tiled(t, (8, 64), swizzle=tm.Swizzle.B128)
    img = np.ones(1024, np.uint8)
    with pytest.raises(EmuError, match="TMA store reads changed before"):
        hopper.launch("tma_store_2d", (1,), (64,), [t.view(np.uint8).reshape(-1), img, spec.emu_bytes(), 1024,
                                                    0, 0, 1], smem_bytes=2048)


def test_a_tensor_map_over_memory_the_kernel_was_not_given_fails(hopper):
    """The emulator checks TMA reads against the launch's array arguments, as every load."""
    t = np.zeros((24, 40), np.float16)
    other = np.zeros_like(t)
    spec = tm.tiled(t, (8, 8))
    with pytest.raises(EmuError, match="outside every array argument"):
        hopper.launch("tma_2d", (1,), (64,), [np.zeros(128, np.uint8), other.view(np.uint8).reshape(-1),
                                              spec.emu_bytes(), 128, 0, 0], smem_bytes=128 + 8 + 1152)
