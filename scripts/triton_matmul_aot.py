"""Triton's tutorial matmul (03-matrix-multiplication.py, 128x256x64, 8 warps, 3 stages), compiled ahead of
time for sm_80 and sm_90 with every shape and stride a compile-time constant (as tilec's kernels are), one
cubin per (arch, dtype, shape) into OUT. Needs a Python with triton (no GPU): scripts/tensorcore_table.py runs
it as `$TRITON_PYTHON scripts/triton_matmul_aot.py OUT M,N,K ...`. Never a tilec dependency."""
import sys

import triton
import triton.language as tl
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn,
                  BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr, BLOCK_SIZE_K: tl.constexpr,
                  GROUP_SIZE_M: tl.constexpr):
    pid = tl.program_id(axis=0)
    num_pid_m = tl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = tl.cdiv(N, BLOCK_SIZE_N)
    num_pid_in_group = GROUP_SIZE_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_SIZE_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_SIZE_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    offs_am = (pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)) % M
    offs_bn = (pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)) % N
    offs_k = tl.arange(0, BLOCK_SIZE_K)
    a_ptrs = a_ptr + (offs_am[:, None] * stride_am + offs_k[None, :] * stride_ak)
    b_ptrs = b_ptr + (offs_k[:, None] * stride_bk + offs_bn[None, :] * stride_bn)
    accumulator = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_SIZE_K)):
        a = tl.load(a_ptrs, mask=offs_k[None, :] < K - k * BLOCK_SIZE_K, other=0.0)
        b = tl.load(b_ptrs, mask=offs_k[:, None] < K - k * BLOCK_SIZE_K, other=0.0)
        accumulator = tl.dot(a, b, accumulator)
        a_ptrs += BLOCK_SIZE_K * stride_ak
        b_ptrs += BLOCK_SIZE_K * stride_bk
    c = accumulator.to(c_ptr.dtype.element_ty)
    offs_cm = pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)
    offs_cn = pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)
    c_ptrs = c_ptr + stride_cm * offs_cm[:, None] + stride_cn * offs_cn[None, :]
    c_mask = (offs_cm[:, None] < M) & (offs_cn[None, :] < N)
    tl.store(c_ptrs, c, mask=c_mask)


NAMES = ["a_ptr", "b_ptr", "c_ptr", "M", "N", "K", "stride_am", "stride_ak", "stride_bk", "stride_bn", "stride_cm",
         "stride_cn", "BLOCK_SIZE_M", "BLOCK_SIZE_N", "BLOCK_SIZE_K", "GROUP_SIZE_M"]


def compile_one(m: int, n: int, k: int, dtype: str, cc: int) -> bytes:
    sig = {name: "constexpr" for name in NAMES}
    sig.update({p: f"*{dtype}" for p in ("a_ptr", "b_ptr", "c_ptr")})
    consts = {"M": m, "N": n, "K": k, "stride_am": k, "stride_ak": 1, "stride_bk": n, "stride_bn": 1,
              "stride_cm": n, "stride_cn": 1, "BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 256,
              "BLOCK_SIZE_K": 32 if dtype == "fp32" else 64,   # 3 f32 stages of 128x64 + 64x256 exceed the smem
              "GROUP_SIZE_M": 8}
    attrs = {(i,): [["tt.divisibility", 16]] for i in range(3)}   # pointers 16-byte aligned, as tilec's buffers
    src = ASTSource(fn=matmul_kernel, signature=sig, constexprs=consts, attrs=attrs)
    kernel = triton.compile(src, target=GPUTarget("cuda", cc, 32), options={"num_warps": 8, "num_stages": 3})
    return kernel.asm["cubin"]


if __name__ == "__main__":
    out = sys.argv[1]
    for shape in sys.argv[2:]:
        m, n, k = (int(x) for x in shape.split(","))
        for dtype in ("fp16", "bf16", "fp32"):   # fp32: tl.dot's default input precision is tf32
            for cc in (80, 90):
                with open(f"{out}/sm{cc}_{dtype}_{m}x{n}x{k}.cubin", "wb") as f:
                    f.write(compile_one(m, n, k, dtype, cc))
    print(triton.__version__)
