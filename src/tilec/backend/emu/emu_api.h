// tilec emulator: the CUDA device API on top of the runtime (qualifiers, built-in indices, barriers, warp
// intrinsics, atomics, fences) and the prelude's contract (TL_LD/TL_ST/TL_LD4/TL_ST4, TL_SHARED,
// tl_wait_geq/tl_signal, and the thread-block cluster calls tl_cluster_sync/tl_cluster_rank/tl_cluster_map)
// with byte counting and bounds checking. Compiled into every kernel module: the fast
// paths are inline here, anything that touches the scheduler calls the runtime library (emu_state.h).
#pragma once
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu_state.h"

namespace tl_emu {
// This module's view of the running OS thread. `static`, so every kernel module has its own: it lives in the
// module's thread-local block beside the __shared__ arrays, and the runtime re-binds it (Module::bind)
// after poisoning or swapping that block.
static thread_local Worker* tl_w = nullptr;
// TL_SHARED bytes registered by this module's declaration sites (Module::shared_total).
static size_t g_shared_total = 0;
}  // namespace tl_emu

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
// The cluster shape is read from the source by signature.py (kernel_clusters) and passed to the launch.
#define __cluster_dims__(...)
#define __restrict__ __restrict
#define __constant__
#define __align__(n) __attribute__((aligned(n)))
// Block-scope thread_local is static per OS thread, and a block's fibers share one OS thread; in concurrent
// mode the runtime swaps these arrays per block. `extern __shared__ T x[]` becomes an extern thread_local
// array that the runner defines with kSmemCap bytes.
#define __shared__ thread_local
#define warpSize (tl_emu::kWarp)   // the target's: 32 on NVIDIA, 64 on AMD (TL_EMU_WARP)
#define threadIdx (tl_emu::tl_w->cur->tid)
#define blockIdx (tl_emu::tl_w->cur->blk->bid)
#define blockDim (tl_emu::tl_w->L->block)
#define gridDim (tl_emu::tl_w->L->grid)

namespace tl_emu {
inline bool in_bounds(const Launch* L, const void* p, size_t n) {
  uint64_t a = reinterpret_cast<uint64_t>(p);
  for (int i = 0; i < L->nranges; ++i)
    if (a >= L->ranges[2 * i] && a + n <= L->ranges[2 * i + 1]) return true;
  return false;
}

template <class T>
inline __attribute__((always_inline)) T ld(const T* p, long long i) {
  Worker* w = tl_w;
  w->ld += sizeof(T);
  if (SectorLog* g = w->log) l2_note(g, p + i, sizeof(T), false);
  if (w->L->check && __builtin_expect(!in_bounds(w->L, p + i, sizeof(T)), 0)) bad_access(w, "load", p + i, sizeof(T));
  return p[i];
}
template <class T, class V>
inline __attribute__((always_inline)) void st(T* p, long long i, const V& v) {
  Worker* w = tl_w;
  w->st += sizeof(T);
  if (SectorLog* g = w->log) l2_note(g, p + i, sizeof(T), true);
  if (w->L->check && __builtin_expect(!in_bounds(w->L, p + i, sizeof(T)), 0)) bad_access(w, "store", p + i, sizeof(T));
  p[i] = v;
}
template <class T>
inline float4 ld4(const T* p, long long i) {
  Worker* w = tl_w;
  const void* a = p + i;
  w->ld += 16;
  if (SectorLog* g = w->log) l2_note(g, a, 16, false);
  if (reinterpret_cast<uintptr_t>(a) & 15) bad_access(w, "misaligned float4 load", a, 16);
  if (w->L->check && !in_bounds(w->L, a, 16)) bad_access(w, "float4 load", a, 16);
  return *static_cast<const float4*>(a);
}
template <class T>
inline void st4(T* p, long long i, const float4& v) {
  Worker* w = tl_w;
  void* a = p + i;
  w->st += 16;
  if (SectorLog* g = w->log) l2_note(g, a, 16, true);
  if (reinterpret_cast<uintptr_t>(a) & 15) bad_access(w, "misaligned float4 store", a, 16);
  if (w->L->check && !in_bounds(w->L, a, 16)) bad_access(w, "float4 store", a, 16);
  *static_cast<float4*>(a) = v;
}

template <class T>
inline uint64_t pack(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t u = 0;
  memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
inline T unpack(uint64_t u) {
  T v;
  memcpy(&v, &u, sizeof(T));
  return v;
}
inline int lane_id() { return tl_w->cur->lane; }

// TL_SHARED: one arena per block, one offset per declaration site.
inline size_t shared_register(size_t bytes) {
  size_t sz = (bytes + 15) & ~size_t(15);
  size_t off = __atomic_fetch_add(&g_shared_total, sz, __ATOMIC_SEQ_CST);
  // On overflow block_arena() fails the launch: not here, inside the static's guarded initialisation,
  // where leaving the fiber would keep the guard locked.
  return off + sz > kSmemCap ? 0 : off;
}
inline char* block_arena() {
  Worker* w = tl_w;
  char* a = w->cur->blk->arena;
  if (__builtin_expect(!a || __atomic_load_n(&g_shared_total, __ATOMIC_RELAXED) > kSmemCap, 0))
    return block_arena_slow(w);
  return a;
}

// Whether `p` lies in the running block's TL_SHARED arena.
inline bool in_arena(const void* p) {
  Block* b = tl_w->cur->blk;
  uintptr_t off = reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(b->arena);
  return b->arena && off < __atomic_load_n(&g_shared_total, __ATOMIC_RELAXED);
}

// tl_cluster_map (mapa): the same offset in a peer block's shared memory (distributed shared memory), for the
// `n` bytes at `p`: in its TL_SHARED arena, or for a plain or extern __shared__ address its copy of the
// module's thread-local block (tls_cluster_address, emu_state.h). Accesses through it are plain pointer
// accesses: shared memory, never counted as global bytes. CUDA's rules for distributed shared memory are
// checked where the emulator's co-scheduled blocks would hide a race: a block reaches a peer only after a
// tl_cluster_sync (the peer may not have started before one), and never a peer that has exited.
inline char* cluster_address(const void* p, unsigned rank, size_t n = 1) {
  Worker* w = tl_w;
  Block* b = w->cur->blk;
  if (__builtin_expect(rank >= unsigned(w->L->cluster), 0)) bad_cluster_map(w, p, rank);
  if (rank != b->rank && __builtin_expect(!b->cluster_synced || !b->peers[rank].live, 0))
    fail_launch(w, !b->cluster_synced
                       ? "reaches a cluster peer's shared memory (mapa, a multicast copy or a remote arrive) before "
                         "any tl_cluster_sync: the peer may not have started yet"
                       : "reaches the shared memory of a cluster peer that has exited (a block's shared memory "
                         "lives until it exits: keep every block until its peers are done with it)");
  if (!in_arena(p)) return tls_cluster_address(w, p, n, rank);
  return b->peers[rank].arena + (reinterpret_cast<uintptr_t>(p) - reinterpret_cast<uintptr_t>(b->arena));
}

template <class F>
inline float atomic_f32(float* a, F op) {
  uint32_t* p = reinterpret_cast<uint32_t*>(a);
  uint32_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    float nf = op(__uint_as_float(old));
    if (__atomic_compare_exchange_n(p, &old, __float_as_uint(nf), false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
      return __uint_as_float(old);
  }
}
}  // namespace tl_emu

#define TL_LD(p, i) (tl_emu::ld((p), (long long)(i)))
#define TL_ST(p, i, v) (tl_emu::st((p), (long long)(i), (v)))
#define TL_LD4(p, i) (tl_emu::ld4((p), (long long)(i)))
#define TL_ST4(p, i, v) (tl_emu::st4((p), (long long)(i), (v)))
// One arena offset per declaration site (a thread-safe function-local static), the same for every block.
#define TL_SHARED(type, name, dims)                                                      \
  static const size_t name##_tl_emu_off = tl_emu::shared_register(sizeof(type dims));   \
  type(&name) dims = *reinterpret_cast<type(*) dims>(tl_emu::block_arena() + name##_tl_emu_off)

template <class T>
inline T __ldg(const T* p) { return tl_emu::ld(p, 0); }

inline void __syncthreads() { tl_emu::barrier(tl_emu::tl_w); }
inline int __syncthreads_count(int pred) {
  tl_emu::tl_w->cur->blk->bar_accum += pred != 0;
  __syncthreads();
  return tl_emu::tl_w->cur->blk->bar_result;
}
inline int __syncthreads_or(int pred) { return __syncthreads_count(pred) != 0; }
inline int __syncthreads_and(int pred) {
  int n = tl_emu::tl_w->cur->blk->live;   // live threads when this barrier opens (all of them arrive)
  return __syncthreads_count(pred) == n;
}
// Lane masks are LaneMask: CUDA's 32-bit `unsigned` on a 32-lane target, 64-bit on a 64-lane one (HIP's
// *_sync forms), so a 32-bit mask on a 64-lane target leaves lanes 32..63 out, and warp_op reports it.
inline void __syncwarp(tl_emu::LaneMask mask = tl_emu::LaneMask(tl_emu::kAllLanes)) {
  tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_SYNC, 0, 0);
}
inline tl_emu::LaneMask __activemask() {
  tl_emu::Fiber* f = tl_emu::tl_w->cur;
  return tl_emu::LaneMask(f->blk->warps[f->warp].live);
}
inline tl_emu::LaneMask __ballot_sync(tl_emu::LaneMask mask, int pred) {
  return tl_emu::LaneMask(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_BALLOT, pred != 0, 0));
}
inline int __any_sync(tl_emu::LaneMask mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(tl_emu::LaneMask mask, int pred) {
  return int(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_ALL, pred != 0, 0));
}

// Shuffles: `width` (a power of two, at most the warp) splits the warp into groups, as on both vendors.
template <class T>
inline T __shfl_sync(tl_emu::LaneMask mask, T v, int src, int width = warpSize) {
  int lane = tl_emu::lane_id();
  int s = (lane & ~(width - 1)) + (src & (width - 1));
  return tl_emu::unpack<T>(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_SHFL, tl_emu::pack(v), s));
}
template <class T>
inline T __shfl_down_sync(tl_emu::LaneMask mask, T v, unsigned delta, int width = warpSize) {
  int lane = tl_emu::lane_id();
  int s = (lane & (width - 1)) + int(delta) < width ? lane + int(delta) : lane;
  return tl_emu::unpack<T>(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_SHFL, tl_emu::pack(v), s));
}
template <class T>
inline T __shfl_up_sync(tl_emu::LaneMask mask, T v, unsigned delta, int width = warpSize) {
  int lane = tl_emu::lane_id();
  int s = (lane & (width - 1)) >= int(delta) ? lane - int(delta) : lane;
  return tl_emu::unpack<T>(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_SHFL, tl_emu::pack(v), s));
}
template <class T>
inline T __shfl_xor_sync(tl_emu::LaneMask mask, T v, int lane_mask, int width = warpSize) {
  int lane = tl_emu::lane_id();
  int s = lane ^ lane_mask;
  if (s >= (lane & ~(width - 1)) + width) s = lane;   // later groups are out of reach: own value
  return tl_emu::unpack<T>(tl_emu::warp_op(tl_emu::tl_w, mask, tl_emu::W_SHFL, tl_emu::pack(v), s));
}

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_system() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_signal_fence(__ATOMIC_SEQ_CST); }
inline void __nanosleep(unsigned) {}

// Thread-block clusters (the prelude's GPU side uses cooperative_groups::this_cluster()).
inline void tl_cluster_sync() { tl_emu::cluster_barrier(tl_emu::tl_w); }
inline unsigned tl_cluster_rank() { return tl_emu::tl_w->cur->blk->rank; }
template <class T>
inline T* tl_cluster_map(T* p, unsigned rank) {
  return reinterpret_cast<T*>(tl_emu::cluster_address(p, rank));
}

// Waits yield the fiber; the scheduler reports a deadlock when no waiter can ever get past its flag.
inline void tl_wait_geq(volatile int* flag, int value) {
  int* p = const_cast<int*>(flag);
  if (__atomic_load_n(p, __ATOMIC_ACQUIRE) >= value) return;
  tl_emu::wait_geq(tl_emu::tl_w, p, value);
}
inline void tl_signal(int* flag, int value) { __atomic_store_n(flag, value, __ATOMIC_SEQ_CST); }
inline void tl_signal_add(int* flag, int value) { __atomic_fetch_add(flag, value, __ATOMIC_SEQ_CST); }

// Atomics: real ones, since blocks run on several OS threads at once.
#define TL_EMU_ATOMIC_INT(T)                                                                                 \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_SEQ_CST); }                      \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_SEQ_CST); }                      \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_SEQ_CST); }                      \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_SEQ_CST); }                        \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_SEQ_CST); }                      \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_SEQ_CST); }                    \
  inline T atomicCAS(T* a, T cmp, T v) {                                                                    \
    __atomic_compare_exchange_n(a, &cmp, v, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);                     \
    return cmp;                                                                                             \
  }                                                                                                         \
  inline T atomicMax(T* a, T v) {                                                                           \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                           \
    while (old < v && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                       \
    return old;                                                                                             \
  }                                                                                                         \
  inline T atomicMin(T* a, T v) {                                                                           \
    T old = __atomic_load_n(a, __ATOMIC_RELAXED);                                                           \
    while (v < old && !__atomic_compare_exchange_n(a, &old, v, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) { \
    }                                                                                                       \
    return old;                                                                                             \
  }
TL_EMU_ATOMIC_INT(int)
TL_EMU_ATOMIC_INT(unsigned)
TL_EMU_ATOMIC_INT(unsigned long long)
TL_EMU_ATOMIC_INT(long long)
#undef TL_EMU_ATOMIC_INT

inline float atomicAdd(float* a, float v) { return tl_emu::atomic_f32(a, [v](float o) { return o + v; }); }
inline float atomicSub(float* a, float v) { return tl_emu::atomic_f32(a, [v](float o) { return o - v; }); }
inline float atomicExch(float* a, float v) { return tl_emu::atomic_f32(a, [v](float) { return v; }); }
// Same rule as the prelude's GPU CAS loop: replace only when the old value compares below (above) v.
inline float atomicMax(float* a, float v) { return tl_emu::atomic_f32(a, [v](float o) { return o < v ? v : o; }); }
inline float atomicMin(float* a, float v) { return tl_emu::atomic_f32(a, [v](float o) { return o > v ? v : o; }); }
inline double atomicAdd(double* a, double v) {
  uint64_t* p = reinterpret_cast<uint64_t*>(a);
  uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
  for (;;) {
    double o, n;
    memcpy(&o, &old, 8);
    n = o + v;
    uint64_t nb;
    memcpy(&nb, &n, 8);
    if (__atomic_compare_exchange_n(p, &old, nb, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED)) return o;
  }
}
