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
