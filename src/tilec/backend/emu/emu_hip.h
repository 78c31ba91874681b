// tilec emulator: HIP's device names on the emulator's primitives (emu_api.h), so HIP text (the HIP renderer's
// .hip kernels, hand-written ones) runs as CUDA text does: same byte counting, bounds checks, thread orders.
// Most of HIP's device API already has CUDA's spelling (__syncthreads, __shared__, threadIdx, atomics, __half,
// __float2half, __launch_bounds__ with its waves-per-EU argument); this adds what differs:
// - warp operations without masks (__shfl, __shfl_up/down/xor, __ballot, __any, __all), `width` defaulting to
//   warpSize. ROCm's lane arithmetic (hip/amd_detail/amd_warp_functions.h) is CUDA's, which the *_sync forms
//   implement. A shuffle of `width` lanes can only read its own aligned group of `width` lanes, so it meets
//   that group's live lanes (the others may be elsewhere: a width-32 reduction in half a wavefront is fine);
//   ballots and votes meet the whole wavefront. A group lane that never arrives is a reported deadlock
//   (hardware would read an inactive lane's stale register);
// - __ballot returns 64 bits, as on AMD; the lane masks of the *_sync forms are LaneMask, 64-bit on a
//   64-lane target, so HIP's __shfl_xor_sync(0xffffffffffffffff, ...) takes the whole wavefront;
// - the few amdgcn built-ins a kernel may call directly, and HIP's type and index spellings.
// warpSize is the target's (TL_EMU_WARP): 64 for AMD CDNA (gfx90a, gfx942).
#pragma once
#include "emu_api.h"

#if TL_EMU_WARP == 64
#define __AMDGCN_WAVEFRONT_SIZE 64   // hipcc defines it for wave64 targets
#endif

#define hipThreadIdx_x (threadIdx.x)
#define hipThreadIdx_y (threadIdx.y)
#define hipThreadIdx_z (threadIdx.z)
#define hipBlockIdx_x (blockIdx.x)
#define hipBlockIdx_y (blockIdx.y)
#define hipBlockIdx_z (blockIdx.z)
#define hipBlockDim_x (blockDim.x)
#define hipBlockDim_y (blockDim.y)
#define hipBlockDim_z (blockDim.z)
#define hipGridDim_x (gridDim.x)
#define hipGridDim_y (gridDim.y)
#define hipGridDim_z (gridDim.z)

// HIP has two bf16 types: __hip_bfloat16 (hip_bf16.h, CUDA's __nv_bfloat16 by another name) and the older
// hip_bfloat16 struct (hip_bfloat16.h), a type of its own, so conversions a prelude declares for it are overloads.
typedef __nv_bfloat16 __hip_bfloat16;
struct hip_bfloat16 : __nv_bfloat16 {
  using __nv_bfloat16::__nv_bfloat16;
  hip_bfloat16() = default;
  hip_bfloat16(__nv_bfloat16 b) : __nv_bfloat16(b) {}
};

inline unsigned __lane_id() { return unsigned(tl_emu::lane_id()); }

namespace tl_emu {
// The lanes a shuffle of `width` lanes can read: the caller's aligned group (the whole warp from warpSize up).
inline LaneMask width_group(int width) {
  if (width >= kWarp || width <= 0) return LaneMask(kAllLanes);
  uint64_t group = (uint64_t(1) << width) - 1;
  return LaneMask(group << (lane_id() & ~(width - 1)));
}
}  // namespace tl_emu

template <class T>
inline T __shfl(T v, int src, int width = warpSize) {
  return __shfl_sync(tl_emu::width_group(width), v, src, width);
}
template <class T>
inline T __shfl_up(T v, unsigned delta, int width = warpSize) {
  return __shfl_up_sync(tl_emu::width_group(width), v, delta, width);
}
template <class T>
inline T __shfl_down(T v, unsigned delta, int width = warpSize) {
  return __shfl_down_sync(tl_emu::width_group(width), v, delta, width);
}
template <class T>
inline T __shfl_xor(T v, int lane_mask, int width = warpSize) {
  return __shfl_xor_sync(tl_emu::width_group(width), v, lane_mask, width);
}
inline unsigned long long __ballot(int pred) {
  return tl_emu::warp_op(tl_emu::tl_w, tl_emu::kAllLanes, tl_emu::W_BALLOT, pred != 0, 0);
}
inline unsigned long long __ballot64(int pred) { return __ballot(pred); }
inline int __any(int pred) { return __ballot(pred) != 0; }
inline int __all(int pred) {
  return int(tl_emu::warp_op(tl_emu::tl_w, tl_emu::kAllLanes, tl_emu::W_ALL, pred != 0, 0));
}

// amdgcn built-ins: ds_bpermute reads lane (addr / 4) of the wavefront; readfirstlane the first live lane's value.
inline int __builtin_amdgcn_ds_bpermute(int addr, int v) {
  return __shfl_sync(tl_emu::LaneMask(tl_emu::kAllLanes), v, (addr >> 2) & (tl_emu::kWarp - 1), tl_emu::kWarp);
}
inline int __builtin_amdgcn_readfirstlane(int v) {
  return __shfl_sync(tl_emu::LaneMask(tl_emu::kAllLanes), v, __builtin_ctzll(__activemask()), tl_emu::kWarp);
}
inline void __builtin_amdgcn_s_barrier() { __syncthreads(); }
inline void __builtin_amdgcn_wave_barrier() {}   // a scheduling barrier: no effect on values
inline void __builtin_amdgcn_s_sleep(int) {}

// HIP's extra atomic spellings: the same read-modify-writes.
template <class T>
inline T atomicAdd_system(T* a, T v) { return atomicAdd(a, v); }
template <class T>
inline T unsafeAtomicAdd(T* a, T v) { return atomicAdd(a, v); }
template <class T>
inline T safeAtomicAdd(T* a, T v) { return atomicAdd(a, v); }
