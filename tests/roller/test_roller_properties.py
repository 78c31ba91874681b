"""Roller's chosen configs obey the alignment rules and every arch's resource limits (hypothesis)."""
import math

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tilec.analysis.cost_model import RTile, estimate, regs_per_thread, smem_bytes
from tilec.analysis.hardware import available_archs, get_arch
from tilec.analysis.roller import construct_rtiles, padding_waste
from tilec.ir import parse_module

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
    assert smem_bytes(problem, rt, spec) <= spec.smem_per_block_bytes
    assert regs_per_thread(problem, rt) <= spec.max_regs_per_thread
    # tensor shape rule: padding waste stays under the largest epsilon
    for a, s in list(block.items()) + list(step.items()):
        assert padding_waste(problem.extents[a], s) <= 1.0 + 1e-9
    assert cand.est.seconds > 0
    # memory transactions: the output's contiguous axis covers a whole 32-B sector when it can
    inner = problem.out_axes[-1]
    need = min(spec.sector_bytes // problem.out_itemsize, problem.extents[inner])
    assert block[inner] >= need, (block, need)


dims = st.integers(min_value=1, max_value=1024)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=dims, n=dims, k=dims, dtype=st.sampled_from(["f32", "f16"]), arch=st.sampled_from(ARCHS))
def test_matmul_configs_obey_rules(m, n, k, dtype, arch):
    op = compute_op("C[m, n] += A[m, k] * B[k, n]", [f"tensor<{m}x{k}x{dtype}>", f"tensor<{k}x{n}x{dtype}>"],
                    f"tensor<{m}x{n}x{dtype}>")
    spec = get_arch(arch)
    p = problem_of(op)
    cands = construct_rtiles(p, spec, topk=4)
    assert cands, "roller must always find a config"
    for c in cands:
        check_config(p, c, spec)
    assert [c.est.seconds for c in cands] == sorted(c.est.seconds for c in cands)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(c=st.integers(1, 128), f=st.integers(1, 128), hw=st.integers(3, 64), ks=st.sampled_from([1, 3, 5]),
       stride=st.sampled_from([1, 2]), arch=st.sampled_from(ARCHS))
def test_conv_configs_obey_rules(c, f, hw, ks, stride, arch):
    pad = ks // 2
    out = (hw + 2 * pad - ks) // stride + 1
    expr = (f"Y[n, f, h, w] += X[n, c, h*{stride} + kh - {pad}, w*{stride} + kw - {pad}] * W[f, c, kh, kw]")
    op = compute_op(expr, [f"tensor<1x{c}x{hw}x{hw}xf32>", f"tensor<{f}x{c}x{ks}x{ks}xf32>"],
                    f"tensor<1x{f}x{out}x{out}xf32>")
    spec = get_arch(arch)
    p = problem_of(op)
    cands = construct_rtiles(p, spec, topk=4)
    assert cands
    for cand in cands:
        check_config(p, cand, spec)


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
