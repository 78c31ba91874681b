"""Thread-block clusters in the generic tiled kernel (``tiled.py``, ``"cluster": {axis: C}``): a box that
does not move along the cluster axis is loaded once per cluster and shared through distributed shared
memory. Numerics under the emulator in three thread orders, measured bytes equal to the model, the saving
equal to (C - 1) / C of the multicast operand's traffic, sm_90 compiles, and the verifier's checks."""
import pytest

from lower_harness import check_compute, compute_module, kernels, lower, nvcc_compile
from tilec.backend.emit import emit_kernel
from tilec.ir import CompileError, TensorType, parse_module, print_module, verify


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


MATMUL = "C[m, n] += A[m, k] * B[k, n]"
BATCHED = "C[b, m, n] += A[b, m, k] * B[k, n]"
# (expr, inputs, output, rtile, the multicast operand's index)
CASES = {
    # A's rows are shared along n; k = 36 leaves a partial last step of 8.
    "along_n": (MATMUL, [T(32, 36), T(36, 64)], T(32, 64),
                {"block": {"m": 32, "n": 8}, "thread": {"m": 4, "n": 1}, "step": {"k": 8}, "cluster": {"n": 4}}, 0),
    # B's columns are shared along m; m = 60 leaves a partial last block row (its loads are predicated).
    "along_m": (MATMUL, [T(60, 24), T(24, 16)], T(60, 16),
                {"block": {"m": 8, "n": 16}, "thread": {"m": 1, "n": 2}, "step": {"k": 8}, "cluster": {"m": 8}}, 1),
    # The weight is shared by the blocks of a cluster along the batch axis (the slowest in the grid).
    "along_batch": (BATCHED, [T(4, 16, 20), T(20, 16)], T(4, 16, 16),
                    {"block": {"b": 1, "m": 16, "n": 16}, "thread": {"b": 1, "m": 2, "n": 2}, "step": {"k": 4},
                     "cluster": {"b": 2}}, 1),
}


def _bytes_without_cluster(expr, ins, out, rtile):
    plain = {k: v for k, v in rtile.items() if k != "cluster"}
    (k,) = kernels(lower(compute_module(expr, ins, out, rtile=plain)))
    return k


@pytest.mark.parametrize("case", sorted(CASES))
def test_cluster_numerics_and_exact_bytes(case):
    expr, ins, out, rtile, shared = CASES[case]
    k = check_compute(expr, ins, out, orders=("normal", "reverse", "shuffle"), bytes_tol=0, rtile=rtile)
    (axis, c), = rtile["cluster"].items()
    assert k.attributes["cluster"] == c
    plain = _bytes_without_cluster(expr, ins, out, rtile)
    assert "cluster" not in plain.attributes
    # In every case each block stages the whole shared operand: without a cluster every block loads it,
    # with one only one block's worth per cluster. Nothing else changes.
    grid = k.attributes["grid"][0]
    operand = 4 * ins[shared].shape[0] * ins[shared].shape[1]
    saved = plain.attributes["bytes_modelled"] - k.attributes["bytes_modelled"]
    assert saved == (grid - grid // c) * operand


def test_cluster_kernel_structure_and_roundtrip():
    expr, ins, out, rtile, _ = CASES["along_n"]
    m = lower(compute_module(expr, ins, out, rtile=rtile))
    text = print_module(m)
    assert text.count('"kernel.barrier"() {scope = "cluster"}') == 2   # after the shares, after the copies
    assert "tl_cluster_map(&k_s0[0][0], k_q)" in text and "k_s1" in text and "tl_cluster_map(&k_s1" not in text
    again = parse_module(text)
    verify(again)
    assert print_module(again) == text
    src = emit_kernel(kernels(again)[0])
    assert "__cluster_dims__(4, 1, 1)" in src and src.count("tl_cluster_sync();") == 2
    assert src == emit_kernel(kernels(lower(compute_module(expr, ins, out, rtile=rtile)))[0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_cluster_kernel_compiles_for_sm90(case, tmp_path):
    expr, ins, out, rtile, _ = CASES[case]
    (k,) = kernels(lower(compute_module(expr, ins, out, rtile=rtile)))
    report = nvcc_compile(emit_kernel(k), tmp_path)
    assert "registers" in report and "bytes spill stores" in report
    assert " 0 bytes spill stores" in report


@pytest.mark.parametrize("cluster, message", [
    ({"k": 2}, "one output axis"),          # a reduce axis
    ({"n": 16}, "at most 8"),
    ({"n": 3}, "divides"),                  # 8 blocks along n
    ({"m": 2, "n": 2}, "one output axis"),
])
def test_bad_cluster_configs(cluster, message):
    rtile = {"block": {"m": 32, "n": 8}, "thread": {"m": 4, "n": 1}, "step": {"k": 8}, "cluster": cluster}
    with pytest.raises(CompileError, match=message):
        lower(compute_module(MATMUL, [T(32, 36), T(36, 64)], T(32, 64), rtile=rtile))


def _kernel_text(cluster: int, grid: int, scope: str = "cluster") -> str:
    return f'''
    module {{
      "kernel.func"() ({{
        "kernel.barrier"() {{scope = "{scope}"}} : () -> ()
      }}) {{sym_name = @k, grid = [{grid}, 1, 1], block = [32, 1, 1], cluster = {cluster}, params = []}} : () -> ()
    }}'''


@pytest.mark.parametrize("cluster, grid, scope, message", [
    (3, 8, "cluster", "divide grid"),
    (16, 16, "cluster", "1..8"),
    (1, 8, "cluster", "without a cluster"),
    (2, 8, "warp", "block or cluster"),
])
def test_verifier_checks_clusters(cluster, grid, scope, message):
    with pytest.raises(CompileError, match=message):
        verify(parse_module(_kernel_text(cluster, grid, scope)))


def test_verifier_accepts_a_cluster_barrier():
    verify(parse_module(_kernel_text(2, 8)))


@pytest.mark.parametrize("shift, extent, csize", [(8, 12, 4), (8, 10, 2), (4, 7, 8), (16, 18, 3), (1, 3, 8)])
def test_halo_owned_rows_tile_the_cluster_union_once(shift, extent, csize):
    """Every coordinate of the union of a cluster's sliding boxes is loaded by exactly one block, from its
    own box; the others' copies of it are in a direct neighbour's core, at the coordinate the gather reads."""
    from tilec.backend.lower.cluster import Halo
    h = Halo(0, shift, extent, csize)
    assert h.valid()
    owners = {}
    for r in range(csize):
        first, count = h.owned_range(r)
        for i in range(first, first + count):
            g = r * shift + i              # block r's box starts at r * shift
            assert g not in owners
            owners[g] = (r, i)
    union = {r * shift + i for r in range(csize) for i in range(extent)}
    assert set(owners) == union
    for r in range(csize):
        first, count = h.owned_range(r)
        for i in range(extent):
            if first <= i < first + count:
                continue
            hs = -1 if i < h.low else 1   # _gather_halo's neighbour and its coordinate
            assert owners[r * shift + i] == (r + hs, i - hs * shift)


@pytest.mark.parametrize("shift, extent", [(8, 8), (8, 40), (0, 4), (4, 2)])
def test_halo_needs_an_overlap_with_direct_neighbours_only(shift, extent):
    from tilec.backend.lower.cluster import Halo
    assert not Halo(0, shift, extent, 4).valid()
