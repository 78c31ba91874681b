"""Roller's chosen configs obey the alignment rules and every arch's resource limits (hypothesis): random
shapes and dtypes (f32, f16, bf16) of matmuls, batched matmuls, convolutions, elementwise ops and reductions,
with examples for every arch spec in ``analysis/hw``."""
import math

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tilec.analysis.cost_model import RTile, estimate, regs_per_thread, smem_bytes
from tilec.analysis.hardware import available_archs, get_arch
from tilec.analysis.mma_tile import match_problem
from tilec.analysis.roller import construct_rtiles, padding_waste
from tilec.backend.lower.tiled_mma import MMA, smem_bytes as mma_smem
from tilec.ir import parse_module
from tilec.ir.texpr import AxisRef
from tilec.ir.types import itemsize

ARCHS = available_archs()


def compute_op(expr: str, in_types: list, out_type: str, extra: str = ""):
    args = ", ".join(f"%a{i}: {t}" for i, t in enumerate(in_types))
    ops = ", ".join(f"%a{i}" for i in range(len(in_types)))
    text = (f"module {{\n  func.func @main({args}) -> ({out_type}) {{\n"
            f"    %0 = tile.compute \"{expr}\" ({ops}){extra} : ({', '.join(in_types)}) -> {out_type}\n"
            f"    return %0 : {out_type}\n  }}\n}}\n")
    m = parse_module(text)
    return m.body.ops[0].body.ops[0]


def problem_of(op):
    from tilec.analysis.tile_problem import TileProblem
    return TileProblem.of(op)


def check_config(problem, cand, spec):
    """Every rule of DESIGN §3 that a constructed config must obey, and every resource limit of ``spec``."""
    rt = cand.rtile
    block, thread, step = dict(rt.block), dict(rt.thread), dict(rt.step)
    assert set(block) == set(problem.out_axes) and set(step) == set(problem.reduce_axes)
    threads = rt.threads()
    # compute units: whole warps (or a block smaller than one warp covering a tiny output)
    assert threads % spec.warp_size == 0 or threads == math.prod(block.values())
    assert 1 <= threads <= spec.max_threads_per_block
    for a in block:
        assert block[a] % thread[a] == 0 and 1 <= block[a] <= problem.extents[a]
    for a in step:
        assert 1 <= step[a] <= problem.extents[a]
    # resources: per block, and at least one block resident per SM (threads, registers, shared memory)
    smem, regs = smem_bytes(problem, rt, spec), regs_per_thread(problem, rt)
    assert smem <= spec.smem_per_block_bytes and regs <= spec.max_regs_per_thread
    assert threads <= spec.max_threads_per_sm and regs * threads <= spec.regs_per_sm and smem <= spec.smem_per_sm_bytes
    est = cand.est
    if est.stages:   # the sm_80 engine runs the tile: its warps, all its stages, up to the opt-in shared memory
        from tilec.analysis.engine_shape import engine_shape
        eng = engine_shape(problem, rt, spec)
        smem, threads = eng.smem_bytes(problem.input_dtypes[0]), 32 * eng.warps
        assert est.stages == eng.stages >= 2 and smem <= spec.smem_per_block_optin_bytes
        regs = est.regs_per_thread
    assert (est.smem_bytes, est.regs_per_thread, est.threads) == (smem, regs, threads)
    assert 1 <= est.blocks_per_sm <= spec.max_blocks_per_sm
    assert est.blocks_per_sm * threads <= spec.max_threads_per_sm
    assert est.blocks_per_sm * regs * threads <= spec.regs_per_sm
    assert est.blocks_per_sm * smem <= spec.smem_per_sm_bytes
    # tensor shape rule: padding waste stays under the largest epsilon
    for a, s in list(block.items()) + list(step.items()):
        assert padding_waste(problem.extents[a], s) <= 1.0 + 1e-9
    assert est.seconds > 0 and est.waves >= 1
    # memory transactions: the contiguous axis of the output and of every input access covers a whole
    # 32-B sector of elements when the axis is that long
    inner = problem.out_axes[-1]
    need = min(spec.sector_bytes // problem.out_itemsize, problem.extents[inner])
    assert block[inner] >= need, (block, need)
    tile = {**block, **step}
    for acc in problem.expr.accesses:
        last = acc.indices[-1] if acc.indices else None
        if isinstance(last, AxisRef):
            elem = itemsize(problem.input_dtypes[problem.input_index(acc)])
            assert tile[last.name] >= min(spec.sector_bytes // elem, problem.extents[last.name]), (acc, tile)
    # tensor cores: whole mma tiles, one batch entry per block, staging within the wmma kernel's limit
    mt = match_problem(problem)   # batch-1 products (a constant 0 on a size-1 dim) included
    has_tc = spec.tensor_core_flops(problem.input_dtypes[0]) > 0    # no bf16 tensor cores on V100
    if mt and has_tc and spec.mma_shapes and all(problem.extents[mt[a]] >= 16 for a in "mnk"):
        bm, bn, bk = block[mt["m"]], block[mt["n"]], step[mt["k"]]
        assert bm % MMA[0] == 0 and bn % MMA[1] == 0 and bk % MMA[2] == 0, (block, step)
        assert all(block[b] == 1 for b in mt["batch"])
        assert mma_smem(bm, bn, bk, problem.input_dtypes[0]) <= spec.smem_per_block_bytes


def check_all(problem, spec, topk=4):
    cands = construct_rtiles(problem, spec, topk=topk)
    assert cands, "roller must always find a config"
    for c in cands:
        check_config(problem, c, spec)
    assert [c.est.seconds for c in cands] == sorted(c.est.seconds for c in cands)
    assert len({c.rtile for c in cands}) == len(cands)
    return cands


dims = st.integers(min_value=1, max_value=1024)
# every arch spec gets its own examples (a sampled arch could leave one out)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=15, **SETTINGS)
@given(m=dims, n=dims, k=dims, dtype=st.sampled_from(["f32", "f16", "bf16"]))
def test_matmul_configs_obey_rules(arch, m, n, k, dtype):
    op = compute_op("C[m, n] += A[m, k] * B[k, n]", [f"tensor<{m}x{k}x{dtype}>", f"tensor<{k}x{n}x{dtype}>"],
                    f"tensor<{m}x{n}x{dtype}>")
    check_all(problem_of(op), get_arch(arch))


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=8, **SETTINGS)
@given(b=st.integers(1, 16), m=st.integers(1, 256), n=st.integers(1, 256), k=st.integers(1, 256),
       dtype=st.sampled_from(["f32", "f16", "bf16"]), b_transposed=st.booleans())
def test_batched_matmul_configs_obey_rules(arch, b, m, n, k, dtype, b_transposed):
    rhs, bshape = ("B[b, n, k]", (b, n, k)) if b_transposed else ("B[b, k, n]", (b, k, n))
    op = compute_op(f"C[b, m, n] += A[b, m, k] * {rhs}",
                    [f"tensor<{b}x{m}x{k}x{dtype}>", "tensor<" + "x".join(map(str, bshape)) + f"x{dtype}>"],
                    f"tensor<{b}x{m}x{n}x{dtype}>")
    check_all(problem_of(op), get_arch(arch))


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=6, **SETTINGS)
@given(h=st.integers(1, 4), m=st.integers(1, 256), n=st.integers(1, 256), k=st.integers(1, 256),
       dtype=st.sampled_from(["f16", "bf16"]))
def test_batch_one_matmul_configs_obey_rules(arch, h, m, n, k, dtype):
    """A batch-1 export's per-head product: the size-1 batch dim indexed by a constant 0."""
    op = compute_op("Y[b0, b1, m, n] += A[0, b1, m, k] * B[0, b1, k, n]",
                    [f"tensor<1x{h}x{m}x{k}x{dtype}>", f"tensor<1x{h}x{k}x{n}x{dtype}>"],
                    f"tensor<1x{h}x{m}x{n}x{dtype}>")
    check_all(problem_of(op), get_arch(arch))


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=6, **SETTINGS)
@given(c=st.integers(1, 128), f=st.integers(1, 128), hw=st.integers(3, 64), ks=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), dtype=st.sampled_from(["f32", "f16"]))
def test_conv_configs_obey_rules(arch, c, f, hw, ks, stride, dtype):
    pad = ks // 2
    out = (hw + 2 * pad - ks) // stride + 1
    expr = (f"Y[n, f, h, w] += X[n, c, h*{stride} + kh - {pad}, w*{stride} + kw - {pad}] * W[f, c, kh, kw]")
    op = compute_op(expr, [f"tensor<1x{c}x{hw}x{hw}x{dtype}>", f"tensor<{f}x{c}x{ks}x{ks}x{dtype}>"],
                    f"tensor<1x{f}x{out}x{out}x{dtype}>")
    check_all(problem_of(op), get_arch(arch))


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=8, **SETTINGS)
@given(shape=st.lists(st.integers(1, 300), min_size=1, max_size=4), dtype=st.sampled_from(["f32", "f16", "bf16"]),
       kind=st.sampled_from(["exp", "sum", "max", "bias"]))
def test_elementwise_and_reduction_configs_obey_rules(arch, shape, dtype, kind):
    idx = [f"d{i}" for i in range(len(shape))]
    x = f"X[{', '.join(idx)}]"
    full = "tensor<" + "x".join(map(str, shape)) + f"x{dtype}>"
    if kind == "exp":
        op = compute_op(f"Y[{', '.join(idx)}] = exp({x})", [full], full)
    elif kind == "bias":
        op = compute_op(f"Y[{', '.join(idx)}] = {x} + B[{idx[-1]}]", [full, f"tensor<{shape[-1]}x{dtype}>"], full)
    else:
        if len(shape) == 1:
            shape, idx, x = [1] + shape, ["d0", "d1"], "X[d0, d1]"
            full = "tensor<" + "x".join(map(str, shape)) + f"x{dtype}>"
        out = "tensor<" + "x".join(map(str, shape[:-1])) + f"x{dtype}>"
        comb = "+=" if kind == "sum" else "max="
        op = compute_op(f"Y[{', '.join(idx[:-1])}] {comb} {x}", [full], out)
    check_all(problem_of(op), get_arch(arch))


@pytest.mark.parametrize("arch", ARCHS)
@settings(max_examples=5, **SETTINGS)
@given(m=st.integers(16, 300), n=st.integers(16, 300), k=st.integers(16, 300), dtype=st.sampled_from(["f16", "bf16"]))
@example(m=16, n=16, k=17, dtype="f16")   # rows of A not whole 16-byte chunks: AMD's MFMA engine takes them too
def test_tensor_core_matmul_lowers_to_wmma(arch, m, n, k, dtype):
    """Ragged f16/bf16 extents (≥ one mma tile) still get mma-aligned tiles, so the kernel that runs is the
    tensor-core one the estimate assumed, not a CUDA-core fallback."""
    from tilec.passes import get_pass
    text = (f"module {{\n  func.func @main(%a0: tensor<{m}x{k}x{dtype}>, %a1: tensor<{k}x{n}x{dtype}>) -> "
            f"(tensor<{m}x{n}x{dtype}>) {{\n    %0 = tile.compute \"C[m, n] += A[m, k] * B[k, n]\" (%a0, %a1) : "
            f"(tensor<{m}x{k}x{dtype}>, tensor<{k}x{n}x{dtype}>) -> tensor<{m}x{n}x{dtype}>\n"
            f"    return %0 : tensor<{m}x{n}x{dtype}>\n  }}\n}}\n")
    module = parse_module(text)
    get_pass("roller", arch=arch, topk=4).apply(module)
    get_pass("lower-cuda").apply(module)
    (kern,) = [o for o in module.body.ops if o.name == "kernel.func"]
    has_tc = get_arch(arch).tensor_core_flops(dtype) > 0      # V100: f16 tensor cores, no bf16 ones
    assert kern.attributes["kind"] == ("tiled_mma" if has_tc else "tiled")


def test_big_matmul_gets_a_big_reusing_tile():
    op = compute_op("C[m, n] += A[m, k] * B[k, n]", ["tensor<4096x4096xf32>", "tensor<4096x4096xf32>"],
                    "tensor<4096x4096xf32>")
    best = construct_rtiles(problem_of(op), get_arch("h200"), topk=1)[0]
    block = dict(best.rtile.block)
    assert block["m"] * block["n"] >= 64 * 64, block
    # the constructed tile beats the naive 1-output-per-thread 32x32 tile in modelled traffic
    naive = RTile((("m", 32), ("n", 32)), (("m", 1), ("n", 1)), (("k", 32),))
    assert best.est.traffic_bytes < estimate(problem_of(op), naive, get_arch("h200")).traffic_bytes


def test_small_op_scales_out_to_fill_the_sms():
    op = compute_op("C[m, n] += A[m, k] * B[k, n]", ["tensor<128x768xf32>", "tensor<768x768xf32>"],
                    "tensor<128x768xf32>")
    spec = get_arch("h200")
    cands = construct_rtiles(problem_of(op), spec, topk=8)
    assert any(c.est.blocks >= spec.num_sms for c in cands)


def test_elementwise_and_reduction_get_configs():
    spec = get_arch("h200")
    ew = compute_op("Y[i, j] = exp(X[i, j])", ["tensor<128x3072xf32>"], "tensor<128x3072xf32>")
    red = compute_op("Y[i] += X[i, j]", ["tensor<128x3072xf32>"], "tensor<128xf32>")
    for op in (ew, red):
        p = problem_of(op)
        for c in construct_rtiles(p, spec, 4):
            check_config(p, c, spec)
