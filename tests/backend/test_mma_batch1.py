"""Batch-1 products on tensor cores (analysis/mma_tile.match_expr): an importer writes a size-1 operand dim as the
constant index ``0`` (``Y[b0, b1, m, n] += A[0, b1, m, k] * B[0, b1, k, n]``: a batch-1 transformer's Q.K^T and
P.V, its FFN's ``A[0, m, k] * B[k, n]``), which the match used to reject, so they ran on CUDA cores. With the
operand shapes the match treats such an index (and a batch axis of extent 1) as absent. Through Roller and
lower-cuda each engine takes them: mma.sync (a100), wgmma (h200), MFMA (mi250x), wmma (v100), and the kernels
match numpy under the emulator, global bytes measured == modelled."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lower_harness import compute_module, kernels, random_inputs, reference, run_lowered  # noqa: E402

from tilec.analysis.hardware import set_target  # noqa: E402
from tilec.analysis.mma_tile import match_expr  # noqa: E402
from tilec.backend.emit import emit_kernel  # noqa: E402
from tilec.backend.emu import EmuModule  # noqa: E402
from tilec.backend.hip import hip_language  # noqa: E402
from tilec.ir import TensorType as T  # noqa: E402
from tilec.ir.texpr import parse_texpr  # noqa: E402
from tilec.passes import get_pass  # noqa: E402

TOL = {"f16": 2e-2, "bf16": 6e-2}
ENGINE = {"a100": "mma_sync", "h200": "wgmma", "mi250x": "mfma"}
QK = "Y[b0, b1, m, n] += A[0, b1, m, k] * B[0, b1, k, n]"                # batch 1, 2 heads (4-D)
FFN = "Y[b0, m, n] += A[0, m, k] * B[k, n]"                              # batch 1 x weight (3-D)
LEAD = "Y[b0, b1, m, n] += A[0, 0, m, k] * B[0, 0, k, n]"                # leading 1 dims only


def match(expr, shapes, out_shape, dtype="f16"):
    return match_expr(parse_texpr(expr), (dtype, dtype), dtype, None, shapes, out_shape)


def test_constant_zero_on_a_size_one_dim_is_an_absent_dim():
    mt = match(QK, [(1, 2, 200, 128), (1, 2, 128, 200)], (1, 2, 200, 200))
    assert (mt["m"], mt["n"], mt["k"], mt["batch"]) == ("m", "n", "k", ["b0", "b1"])
    assert mt["a_batched"] and mt["b_batched"] and not mt["a_kmajor"] and not mt["b_nmajor"]
    assert mt["a"].tensor == "A" and len(mt["a"].indices) == 4     # the access as written: 0 stays in it
    mt = match(FFN, [(1, 200, 768), (768, 3072)], (1, 200, 3072))
    assert mt["batch"] == ["b0"] and mt["a_batched"] and not mt["b_batched"]   # k_batch is always 0 here
    mt = match(LEAD, [(1, 1, 64, 128), (1, 1, 128, 256)], (1, 1, 64, 256))
    assert mt["a_batched"] and mt["b_batched"]
    # B * A: the operand holding m becomes A; an m-contiguous (k-major) A.
    mt = match("Y[b0, m, n] += B[k, n] * A[0, k, m]", [(768, 64), (1, 768, 200)], (1, 200, 64))
    assert mt["a"].tensor == "A" and mt["a_kmajor"]
    # A size-1 operand under a batch axis of extent 2 is broadcast over it.
    mt = match("Y[b0, b1, m, n] += A[0, 0, m, k] * B[0, b1, k, n]", [(1, 1, 32, 16), (1, 2, 16, 48)],
               (1, 2, 32, 48))
    assert not mt["a_batched"] and mt["b_batched"]


@pytest.mark.parametrize("expr,shapes,out_shape", [
    (QK, None, None),                                                       # no shapes: the index may select
    (QK, [(3, 2, 200, 128), (1, 2, 128, 200)], (1, 2, 200, 200)),           # 0 picks entry 0 of 3
    ("Y[b0, b1, m, n] += A[1, b1, m, k] * B[0, b1, k, n]", [(2, 2, 8, 16), (1, 2, 16, 8)], (1, 2, 8, 8)),
    ("Y[b0, m, n] += A[b0, m, 0, k] * B[k, n]", [(1, 8, 1, 16), (16, 8)], (1, 8, 8)),   # not a leading dim
    # A holds one of two batch axes of extent 2: no single batch offset addresses it.
    ("Y[b0, b1, m, n] += A[0, b1, m, k] * B[b0, b1, k, n]", [(1, 2, 8, 16), (2, 2, 16, 8)], (2, 2, 8, 8)),
])
def test_what_still_does_not_match(expr, shapes, out_shape):
    assert match(expr, shapes, out_shape) is None


def test_products_that_matched_before_match_alike():
    """Shapes add matches, never change one: the same dict with and without them (byte-identical kernels)."""
    for expr, shapes, out_shape in [
            ("C[b, m, n] += A[b, m, k] * B[k, n]", [(1, 40, 48), (48, 32)], (1, 40, 32)),
            ("C[b, m, n] += A[b, m, k] * B[b, n, k]", [(3, 40, 48), (3, 24, 48)], (3, 40, 24)),
            ("C[b, h, m, n] += A[b, h, m, k] * B[b, h, k, n]", [(1, 2, 8, 16), (1, 2, 16, 8)], (1, 2, 8, 8)),
            ("C[m, n] += A[k, m] * B[n, k]", [(56, 48), (40, 56)], (48, 40))]:
        assert match(expr, shapes, out_shape) == match(expr, None, None) is not None


def run(expr, ins, out, arch):
    """Roller's tile for ``arch``, then lower-cuda; the one kernel run under the emulator against numpy (64-lane
    wavefronts and HIP text on an AMD target, as tests/backend/test_mfma_engine.py runs it)."""
    ref = compute_module(expr, ins, out)
    inputs = random_inputs(ref)
    want = reference(ref, inputs)[0].astype(np.float64)
    mod = compute_module(expr, ins, out)
    set_target(mod, arch)
    get_pass("roller").apply(mod)
    get_pass("lower-cuda").apply(mod)
    (k,) = kernels(mod)
    if arch == "mi250x":
        a = k.attributes
        raw = np.zeros(out.shape, np.uint16 if out.dtype == "bf16" else np.float16)
        st = EmuModule(emit_kernel(k, hip_language()), warp_size=64).launch(
            k.sym_name, tuple(a["grid"]), tuple(a["block"]), [np.ascontiguousarray(x) for x in inputs] + [raw])
        got = (raw.astype(np.uint32) << 16).view(np.float32) if out.dtype == "bf16" else raw
    else:
        (got,), stats = run_lowered(mod, inputs)
        st = stats[k.sym_name]
    tol = TOL[out.dtype]
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=tol, atol=tol * np.abs(want).max())
    assert st.global_load_bytes + st.global_store_bytes == k.attributes["bytes_modelled"]
    return k


@pytest.mark.parametrize("arch", ["a100", "h200", "mi250x"])
@pytest.mark.parametrize("expr,a,b,out,dtype", [
    (QK, (1, 2, 200, 128), (1, 2, 128, 200), (1, 2, 200, 200), "f16"),
    (FFN, (1, 200, 768), (768, 256), (1, 200, 256), "bf16"),
    (LEAD, (1, 1, 64, 128), (1, 1, 128, 256), (1, 1, 64, 256), "f16"),
])
def test_batch_one_products_run_on_the_engines(arch, expr, a, b, out, dtype):
    k = run(expr, [T(a, dtype), T(b, dtype)], T(out, dtype), arch)
    assert k.attributes["kind"] == "tiled_mma" and k.attributes["config"]["engine"] == ENGINE[arch], \
        (k.attributes["kind"], k.attributes["config"])


def test_batch_one_products_run_on_wmma_before_sm80():
    """V100: the wmma kernel (no engine there) with the constant-0 operands."""
    k = run(QK, [T((1, 2, 72, 64), "f16"), T((1, 2, 64, 40), "f16")], T((1, 2, 72, 40), "f16"), "v100")
    assert k.attributes["kind"] == "tiled_mma" and k.attributes["config"]["mma"] == [16, 16, 16]
