// tilec HIP prelude: the contract between the emitter and the runtimes for AMD targets (pasted verbatim atop every
// .hip kernel, as cuda_prelude.h is atop every .cu one; docs/amd.md). The same primitives as the CUDA prelude
// where they make sense on AMD: kernels touch global memory only through TL_LD/TL_ST/TL_LD4/TL_ST4, declare
// block-static LDS arrays with TL_SHARED and wait on other blocks only through tl_wait_geq/tl_signal(_add), so the
// CPU emulator (TILEC_EMU, its header force-included first) can count bytes and yield where a GPU would spin.
// No mma.sync, cp.async, ldmatrix, wgmma, TMA or clusters: the lowering never chooses them for an AMD target
// (max_cluster_blocks 1; its matrix cores are MFMA, tl_mfma_* below). Wavefronts have 64 lanes; every shuffle
// the renderer prints names its width.
#ifndef TILEC_HIP_PRELUDE_H
#define TILEC_HIP_PRELUDE_H
#ifndef TILEC_EMU
#ifndef __HIPCC_RTC__   // hiprtc (CuPy on ROCm) has the runtime's device names built in
#include <hip/hip_runtime.h>
#endif
#include <hip/hip_fp16.h>
#include <hip/hip_bfloat16.h>

// Global memory access: element index i of p (vector forms: 4 elements at index i, 16-byte aligned).
#define TL_LD(p, i) ((p)[i])
#define TL_ST(p, i, v) ((p)[i] = (v))
#define TL_LD4(p, i) (*reinterpret_cast<const float4*>((p) + (i)))
#define TL_ST4(p, i, v) (*reinterpret_cast<float4*>((p) + (i)) = (v))

// A block-static LDS array: TL_SHARED(float, As, [16][17]);
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

// Publish everything written before, then add to a counter (release).
__device__ __forceinline__ void tl_signal_add(int* flag, int value) {
  __threadfence();
  atomicAdd(flag, value);
}

// The thread index as a persistent kernel's member functions read it (HipLanguage.member_thread). hipcc inlines
// every __noinline__ member into the dispatch loop (its driver passes -amdgpu-early-inline-all), and LLVM then
// hoists each member's thread-index arithmetic out of the loop, all members' at once: mobilenet_v2-small's
// rProgram spilled 157 VGPRs that way. The empty asm makes the index opaque, so it is computed where it is used.
__device__ __forceinline__ unsigned tl_thread_x() {
  unsigned t = threadIdx.x;
  asm volatile("" : "+v"(t));
  return t;
}
// The i-th argument of a kernel whose arguments are all pointers, read from the kernarg segment (explicit
// arguments in order, 8 bytes each: the AMDGPU HSA ABI). A persistent kernel copies its buffers to LDS this way
// (HipLanguage.kernarg_ptr; a device loop its table too): by name, the backend loads every argument at the kernel's
// entry, and mobilenet_v2-small's rProgram's 237 pointers spilled 438 SGPRs before they reached the table.
#define tl_kernarg_ptr(i) (reinterpret_cast<const void* const*>(__builtin_amdgcn_kernarg_segment_ptr())[i])
#else
#define tl_thread_x() ((unsigned)threadIdx.x)
// The emulator's launch holds a pointer to each argument's value.
#define tl_kernarg_ptr(i) (*static_cast<void* const*>(tl_emu::tl_w->L->args[i]))
#endif  // TILEC_EMU

// CUDA spellings that hand-written kernel bodies still use (the arg-reduce kernels' __shfl_down_sync, resize's
// bf16 conversions), with CUDA's meaning: a shuffle without a width works on 32-lane groups, as on a CUDA warp,
// so a 32-lane reduction stays one inside a 64-lane wavefront. The mask is ignored: every lane of a tilec
// reduction takes part. The renderer itself prints HIP's names (__shfl_xor(v, lane, width), hip_bfloat16).
// Outside TILEC_EMU's guard: the emulator supplies __shfl_xor/__shfl_down and hip_bfloat16, these the rest.
template <class T>
__device__ __forceinline__ T tl_shfl_xor_sync(unsigned long long, T v, int lane, int width = 32) {
  return __shfl_xor(v, lane, width);
}
template <class T>
__device__ __forceinline__ T tl_shfl_down_sync(unsigned long long, T v, unsigned delta, int width = 32) {
  return __shfl_down(v, delta, width);
}
#define __shfl_xor_sync tl_shfl_xor_sync
#define __shfl_down_sync tl_shfl_down_sync
__device__ __forceinline__ float __bfloat162float(hip_bfloat16 x) { return static_cast<float>(x); }
__device__ __forceinline__ hip_bfloat16 __float2bfloat16(float x) { return hip_bfloat16(x); }

// Matrix cores (MFMA, CDNA2 gfx90a / CDNA3 gfx942): one wavefront computes c += a x b on a 32x32x8 or 16x16x16
// tile, f16 or bf16 inputs, f32 accumulators (backend/lower/mfma_engine.py; layouts in docs/amd.md and the
// emulator's emu_mfma.h, which supplies the builtins and these vector types under TILEC_EMU). A lane's A and B
// operands are 4 b16 bit patterns (tl_b16x4); the f16 builtins take _Float16 vectors, hence the bit casts.
#ifndef TILEC_EMU
typedef short tl_b16x4 __attribute__((ext_vector_type(4)));
typedef _Float16 tl_f16x4 __attribute__((ext_vector_type(4)));
typedef float tl_f32x4 __attribute__((ext_vector_type(4)));
typedef float tl_f32x16 __attribute__((ext_vector_type(16)));
#endif
__device__ __forceinline__ void tl_mfma_32x32x8_f16(tl_f32x16& c, tl_b16x4 a, tl_b16x4 b) {
  c = __builtin_amdgcn_mfma_f32_32x32x8f16(__builtin_bit_cast(tl_f16x4, a), __builtin_bit_cast(tl_f16x4, b), c, 0, 0,
                                           0);
}
__device__ __forceinline__ void tl_mfma_16x16x16_f16(tl_f32x4& c, tl_b16x4 a, tl_b16x4 b) {
  c = __builtin_amdgcn_mfma_f32_16x16x16f16(__builtin_bit_cast(tl_f16x4, a), __builtin_bit_cast(tl_f16x4, b), c, 0,
                                            0, 0);
}
__device__ __forceinline__ void tl_mfma_32x32x8_bf16(tl_f32x16& c, tl_b16x4 a, tl_b16x4 b) {
  c = __builtin_amdgcn_mfma_f32_32x32x8bf16_1k(a, b, c, 0, 0, 0);
}
__device__ __forceinline__ void tl_mfma_16x16x16_bf16(tl_f32x4& c, tl_b16x4 a, tl_b16x4 b) {
  c = __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(a, b, c, 0, 0, 0);
}

// Integer Pow (ONNX Pow on int32/int64): exponentiation by squaring in unsigned arithmetic, so an overflow
// wraps like numpy's; a negative exponent gives trunc(a^b) (1, -1 or 0) like the texpr evaluator.
__device__ __forceinline__ long long tl_ipow(long long a, long long b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  unsigned long long r = 1, x = (unsigned long long)a;
  for (; b; b >>= 1, x *= x)
    if (b & 1) r *= x;
  return (long long)r;
}

// Grid-wide barrier of a kernel whose `blocks` blocks are all resident (grinder's device loops, DESIGN section 6),
// as in cuda_prelude.h: bar[0] counts arrivals, bar[1] is the generation, `gen` the caller's count of barriers.
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
#endif  // TILEC_HIP_PRELUDE_H
