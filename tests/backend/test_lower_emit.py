"""Kernel IR and emit-cuda: structure, printing/parsing, determinism, name sanitising, verifier checks, and
every kernel kind compiling with nvcc -arch=sm_90."""
import pytest

from lower_harness import compute_module, kernels, lower, nvcc_compile
from tilec.backend.cstyle import safe_comment, sanitize_identifier
from tilec.backend.emit import emit_kernel
from tilec.ir import CompileError, TensorType, parse_module, print_module, verify


def T(*shape, dtype="f32"):
    return TensorType(shape, dtype)


KINDS = {
    "elementwise": ("Y[i, j] = exp(X[i, j] - M[i])", [T(64, 128), T(64)], T(64, 128), {}),
    "elementwise_f16": ("Y[i] = A[i] * B[i]", [T(100, dtype="f16"), T(100, dtype="f16")], T(100, dtype="f16"), {}),
    "reduce": ("M[i] max= X[i, j]", [T(6, 1000)], T(6), {}),
    "reduce_serial": ("S[i] += X[i, j]", [T(6, 10)], T(6), {}),
    "tiled_matmul": ("C[m, n] += A[m, k] * B[k, n]", [T(100, 70), T(70, 50)], T(100, 50), {}),
    "tiled_bf16": ("C[m, n] += A[m, k] * B[k, n]", [T(32, 32, dtype="bf16"), T(32, 32, dtype="bf16")],
                   T(32, 32, dtype="bf16"), {}),
    "tiled_conv": ("Y[n, f, h, w] += X[n, c, h*2 + kh - 1, w*2 + kw - 1] * W[f, c, kh, kw]",
                   [T(2, 3, 15, 15), T(8, 3, 3, 3)], T(2, 8, 8, 8), {}),
    "maxpool": ("Y[n, c, h, w] max= X[n, c, h*2 + kh - 1, w*2 + kw - 1]", [T(2, 3, 15, 15)], T(2, 3, 8, 8),
                {"pad": float("-inf"), "axes": {"kh": 3, "kw": 3}}),
}


def lowered(case):
    expr, ins, out, attrs = KINDS[case]
    return lower(compute_module(expr, ins, out, **attrs))


@pytest.mark.parametrize("case", sorted(KINDS))
def test_nvcc_compiles(case, tmp_path):
    (k,) = kernels(lowered(case))
    report = nvcc_compile(emit_kernel(k), tmp_path)
    assert "spill" in report or "registers" in report


@pytest.mark.parametrize("case", sorted(KINDS))
def test_roundtrip_and_determinism(case):
    m = lowered(case)
    text = print_module(m)
    again = parse_module(text)
    verify(again)
    assert print_module(again) == text
    (k1,), (k2,) = kernels(m), kernels(again)
    assert emit_kernel(k1) == emit_kernel(k2)
    assert emit_kernel(k1) == emit_kernel(kernels(lowered(case))[0])


def test_launch_replaces_compute():
    m = lowered("tiled_matmul")
    main = [op for op in m.body.ops if op.name == "func.func"][0]
    names = [op.name for op in main.body.ops]
    assert names == ["kernel.launch", "func.return"]
    (k,) = kernels(m)
    assert k.sym_name == "k0_tiled"
    assert [p["role"] for p in k.attributes["params"]] == ["in", "in", "out"]
    src = emit_kernel(k)
    assert 'extern "C" __global__ void __launch_bounds__(256, 1) k0_tiled(' in src
    assert "__syncthreads();" in src and "TL_LD(" in src and "TL_ST(" in src


def test_model_strings_are_sanitised():
    evil = 'x*/ #include <stdio.h>\n// \\'
    m = lower(compute_module("Y[i] = X[i] + 1.0", [T(8)], T(8), origin=evil))
    (k,) = kernels(m)
    src = emit_kernel(k)
    body = src[src.index("// tilec kernel"):]
    assert "#include" not in body and "\\" not in body and "*/" in safe_comment("*/")
    for line in body.splitlines():
        if line.startswith("// origin"):
            assert line == "// origin: " + safe_comment(evil)
    assert k.sym_name.isidentifier()
    assert sanitize_identifier("int") != "int" and sanitize_identifier("9x") == "v_9x"
    assert sanitize_identifier("a-b", {"a_b"}) == "a_b_1"
    assert sanitize_identifier("k_acc") != "k_acc"  # never collides with the kernel's own names


def test_param_names_from_keywords():
    m = lower(compute_module("float[i] = int[i] * 2.0", [T(8)], T(8)))
    (k,) = kernels(m)
    assert [p["name"] for p in k.attributes["params"]] == ["in_int", "out_float"]


def test_launch_verifier_checks_params():
    m = lowered("elementwise")
    (k,) = kernels(m)
    k.attributes["params"][0]["shape"] = [1, 1]
    with pytest.raises(CompileError, match="do not match"):
        verify(m)


def test_statements_only_inside_kernels():
    text = '''
    func.func @main() -> () {
      "kernel.barrier"() : () -> ()
      return
    }'''
    with pytest.raises(CompileError, match="only valid inside a kernel.func"):
        verify(parse_module(text))
