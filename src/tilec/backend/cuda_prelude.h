// tilec CUDA prelude: the contract between the emitter and the runtimes (pasted verbatim atop every kernel).
// Kernels touch global memory only through TL_LD/TL_ST/TL_LD4/TL_ST4, declare block-static shared arrays with
// TL_SHARED and wait on other blocks only through tl_wait_geq/tl_signal, so the CPU emulator (TILEC_EMU, whose
// header tilec_emu.h is force-included first) can count bytes, check bounds and yield where a GPU would spin.
// Kernels declared __cluster_dims__(X, 1, 1) (sm_90 thread-block clusters) share TL_SHARED tiles across the
// cluster through tl_cluster_sync/tl_cluster_rank/tl_cluster_map (distributed shared memory).
#ifndef TILEC_CUDA_PRELUDE_H
#define TILEC_CUDA_PRELUDE_H
#ifndef TILEC_EMU
#ifndef TILEC_NO_HALF_HEADERS
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>  // nvcuda::wmma, for the tensor-core tiled kernels (lower/tiled_mma.py)
#endif

// Global memory access: element index i of p (vector forms: 4 elements at index i, 16-byte aligned).
#define TL_LD(p, i) ((p)[i])
#define TL_ST(p, i, v) ((p)[i] = (v))
#define TL_LD4(p, i) (*reinterpret_cast<const float4*>((p) + (i)))
#define TL_ST4(p, i, v) (*reinterpret_cast<float4*>((p) + (i)) = (v))

// A block-static shared array: TL_SHARED(float, As, [16][17]);
#define TL_SHARED(type, name, dims) __shared__ type name dims

// Spin until *flag >= value; the fence afterwards orders the reads that the flag guards (acquire).
__device__ __forceinline__ void tl_wait_geq(volatile int* flag, int value) {
  while (*flag < value) {
  }
  __threadfence();
}

// Publish everything written before, then raise the flag (release).
__device__ __forceinline__ void tl_signal(int* flag, int value) {
  __threadfence();
  atomicExch(flag, value);
}

// Thread-block clusters: cooperative_groups::this_cluster()'s sync/block_rank/map_shared_rank, written with the
// built-ins it wraps (crt/sm_90_rt.h, always available to nvcc and NVRTC), because including
// <cooperative_groups.h> doubles nvcc's time for a small kernel. Defined for sm_90 and later (and the host
// pass), so sources compiled for older GPUs still build as long as their kernels do not call these.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
// Barrier across every thread of every block of the cluster; orders shared-memory accesses across it
// (barrier.cluster.arrive, release by default, then barrier.cluster.wait, acquire by default).
__device__ __forceinline__ void tl_cluster_sync() {
  __cluster_barrier_arrive();
  __cluster_barrier_wait();
}

// This block's rank in its cluster (blockIdx.x % X for __cluster_dims__(X, 1, 1)).
__device__ __forceinline__ unsigned tl_cluster_rank() { return __clusterRelativeBlockRank(); }

// The address of the same TL_SHARED location in block `rank` of the cluster (distributed shared memory).
template <class T>
__device__ __forceinline__ T* tl_cluster_map(T* p, unsigned rank) {
  return static_cast<T*>(__cluster_map_shared_rank(const_cast<const void*>(static_cast<const volatile void*>(p)), rank));
}
#endif

// sm_80 tensor-core primitives (the mma engine, lower/mma_engine.py), one inline-PTX instruction each, as
// CUTLASS's cute/arch/mma_sm80.hpp, copy_sm75.hpp (ldmatrix) and copy_sm80.hpp (cp.async) write them. Register
// layouts are the PTX ISA's; the emulator (emu/emu_mma.h, emu_async.h) implements the same per-lane layouts,
// so a kernel right under the emulator is right on a GPU. Registers are `unsigned` (a pair of f16/bf16, low
// half = smaller index; or one tf32 bit pattern); accumulators are f32. Defined for sm_80 and later (and the
// host pass), so sources compiled for older GPUs still build as long as their kernels do not call these.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
// D = A (16x16, row) * B (16x8, col) + C, f16 or bf16 inputs, f32 accumulate.
__device__ __forceinline__ void tl_mma_m16n8k16_f16f32(float (&d)[4], const unsigned (&a)[4],
                                                       const unsigned (&b)[2], const float (&c)[4]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                 "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
__device__ __forceinline__ void tl_mma_m16n8k16_bf16f32(float (&d)[4], const unsigned (&a)[4],
                                                        const unsigned (&b)[2], const float (&c)[4]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                 "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
// D = A (16x8, row) * B (8x8, col) + C in tf32 (the tensor core ignores each operand's low 13 bits).
__device__ __forceinline__ void tl_mma_m16n8k8_tf32f32(float (&d)[4], const unsigned (&a)[4],
                                                       const unsigned (&b)[2], const float (&c)[4]) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
               "{%10,%11,%12,%13};\n"
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
                 "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
}
// cvt.rna.tf32.f32: round to the tf32 grid, nearest, ties away from zero.
__device__ __forceinline__ unsigned tl_cvt_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// ldmatrix: lane 8j + r gives the shared address of row r of 8x8 b16 matrix j (16 bytes, 16-byte aligned).
__device__ __forceinline__ void tl_ldmatrix_x1(unsigned (&r)[1], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(s));
}
__device__ __forceinline__ void tl_ldmatrix_x2(unsigned (&r)[2], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
__device__ __forceinline__ void tl_ldmatrix_x4(unsigned (&r)[4], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}
__device__ __forceinline__ void tl_ldmatrix_x1_trans(unsigned (&r)[1], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(s));
}
__device__ __forceinline__ void tl_ldmatrix_x2_trans(unsigned (&r)[2], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n" : "=r"(r[0]), "=r"(r[1]) : "r"(s));
}
__device__ __forceinline__ void tl_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
}

// cp.async: copy Bytes from global p + i to shared dst without passing through registers; `valid` false
// reads nothing and zero-fills dst (src-size 0). 16 bytes bypass L1 (.cg), 8 and 4 go through it (.ca, the
// only form for them). The copies issued since the last commit form one group; wait<N> returns once at
// most the N newest groups are still in flight.
template <class T>
__device__ __forceinline__ void tl_cp_async_16(void* dst, const T* p, long long i, bool valid = true) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(p + i), "r"(valid ? 16 : 0));
}
template <class T>
__device__ __forceinline__ void tl_cp_async_8(void* dst, const T* p, long long i, bool valid = true) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(s), "l"(p + i), "r"(valid ? 8 : 0));
}
template <class T>
__device__ __forceinline__ void tl_cp_async_4(void* dst, const T* p, long long i, bool valid = true) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(p + i), "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void tl_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void tl_cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }
__device__ __forceinline__ void tl_cp_async_wait_all() { asm volatile("cp.async.wait_all;\n" ::); }
#endif

// CUDA has no float atomicMax/atomicMin; the emulator has them, so the GPU side gets the same via CAS.
__device__ __forceinline__ float atomicMax(float* addr, float value) {
  int* a = reinterpret_cast<int*>(addr);
  int old = *a;
  while (__int_as_float(old) < value) {
    int seen = atomicCAS(a, old, __float_as_int(value));
    if (seen == old) break;
    old = seen;
  }
  return __int_as_float(old);
}

__device__ __forceinline__ float atomicMin(float* addr, float value) {
  int* a = reinterpret_cast<int*>(addr);
  int old = *a;
  while (__int_as_float(old) > value) {
    int seen = atomicCAS(a, old, __float_as_int(value));
    if (seen == old) break;
    old = seen;
  }
  return __int_as_float(old);
}
#endif  // TILEC_EMU

// Integer Pow (ONNX Pow on int32/int64): exponentiation by squaring in unsigned arithmetic, so an overflow
// wraps like numpy's instead of being undefined; a negative exponent gives trunc(a^b) (1, -1 or 0) like
// the texpr evaluator. CUDA has no integer pow, and a double pow is inexact past 2^53.
__device__ __forceinline__ long long tl_ipow(long long a, long long b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  unsigned long long r = 1, x = (unsigned long long)a;
  for (; b; b >>= 1, x *= x)
    if (b & 1) r *= x;
  return (long long)r;
}

// Grid-wide barrier of a kernel whose `blocks` blocks are all resident (grinder's device loops, DESIGN section 6).
// bar[0] counts arrivals and bar[1] is the generation; both start at zero, and `gen` is the caller's count
// of barriers passed (the same in every block). The last block to arrive resets the count before it
// publishes the next generation, so no block can arrive early at the next barrier. Built on tl_wait_geq, so
// the emulator yields here instead of spinning.
__device__ __forceinline__ void tl_grid_barrier(int* bar, int& gen, int blocks) {
  __syncthreads();
  ++gen;
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(bar, 1) == blocks - 1) {
      atomicExch(bar, 0);
      tl_signal(bar + 1, gen);
    } else {
      tl_wait_geq(bar + 1, gen);
    }
  }
  __syncthreads();
}
#endif  // TILEC_CUDA_PRELUDE_H
