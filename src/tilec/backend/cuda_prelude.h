// tilec CUDA prelude: the contract between the emitter and the runtimes (pasted verbatim atop every kernel).
// Kernels touch global memory only through TL_LD/TL_ST/TL_LD4/TL_ST4, declare block-static shared arrays with
// TL_SHARED and wait on other blocks only through tl_wait_geq/tl_signal(_add), so the CPU emulator (TILEC_EMU, whose
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

// Publish everything written before, then add to a counter (release): an rProgram's rOperators count their
// finished rTasks, and every vEU that ran some adds its share.
__device__ __forceinline__ void tl_signal_add(int* flag, int value) {
  __threadfence();
  atomicAdd(flag, value);
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

// sm_90 primitives (issue #21; docs/hopper.md): mbarriers, TMA tensor loads and warpgroup MMAs, one
// inline-PTX instruction each, written as CUTLASS's cute/arch/copy_sm90_desc.hpp, copy_sm90_tma.hpp and
// mma_sm90_gmma.hpp write them. The emulator (emu/emu_mbarrier.h, emu_tma.h, emu_wgmma.h) implements the same
// semantics: phases and transaction counts, the box with its out-of-bounds fill and swizzle, the descriptors'
// canonical layouts and the warpgroup's accumulator fragment, with results that land only at their wait.
// Shared-memory pointers are generic here and converted with __cvta_generic_to_shared. mbarrier and TMA need
// sm_90; wgmma needs the arch-specific target sm_90a (nvcc -arch=sm_90a, NVRTC --gpu-architecture=sm_90a),
// so it is defined only there; the host pass sees declarations.
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 900
// An mbarrier: 8 bytes of shared memory. init sets the expected arrival count of every phase; a phase
// completes when that many arrivals have come and its transaction count (bytes announced by expect_tx, paid
// by complete_tx, which TMA loads perform) is back to zero; wait_parity(P) returns once the phase of parity P
// (0 for the first) has completed.
__device__ __forceinline__ void tl_mbarrier_init(unsigned long long* bar, unsigned count) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(s), "r"(count));
}
// Makes the inits visible to the cluster's other blocks and to the async proxy (TMA) before their first use.
__device__ __forceinline__ void tl_mbarrier_init_fence() { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ unsigned long long tl_mbarrier_arrive(unsigned long long* bar) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  unsigned long long state;
  asm volatile("mbarrier.arrive.shared::cta.b64 %0, [%1];\n" : "=l"(state) : "r"(s) : "memory");
  return state;
}
__device__ __forceinline__ unsigned long long tl_mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  unsigned long long state;
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 %0, [%1], %2;\n" : "=l"(state) : "r"(s), "r"(bytes) : "memory");
  return state;
}
__device__ __forceinline__ void tl_mbarrier_expect_tx(unsigned long long* bar, unsigned bytes) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(s), "r"(bytes) : "memory");
}
__device__ __forceinline__ void tl_mbarrier_complete_tx(unsigned long long* bar, unsigned bytes) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar));
  asm volatile("mbarrier.complete_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(s), "r"(bytes) : "memory");
}
// Arrive on the barrier at bar's offset in block `rank` of the cluster (a consumer releasing a multicast stage
// to its producer): mapa, then an arrive with the default semantics (release, CTA scope), as CUTLASS's
// ClusterBarrier::arrive(cta_id) does. The stage's readers (wgmma) have completed at their wait_group, so the
// producer's refill after it sees the phase is no hazard; .release.cluster would cost a MEMBAR.ALL.GPU per arrive.
__device__ __forceinline__ void tl_mbarrier_arrive_cluster(unsigned long long* bar, unsigned rank) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar)), remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(s), "r"(rank));
  asm volatile("mbarrier.arrive.shared::cluster.b64 _, [%0];\n" ::"r"(remote) : "memory");
}
__device__ __forceinline__ bool tl_mbarrier_try_wait_parity(unsigned long long* bar, unsigned parity) {
  unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(bar)), done;
  asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
               : "=r"(done) : "r"(s), "r"(parity) : "memory");
  return done != 0;
}
__device__ __forceinline__ void tl_mbarrier_wait_parity(unsigned long long* bar, unsigned parity) {
  while (!tl_mbarrier_try_wait_parity(bar, parity)) {
  }
}

// TMA: a tensor map is the 128-byte CUtensorMap that cuTensorMapEncodeTiled writes on the host
// (tilec/runtime/tensor_map.py), passed as a `const __grid_constant__ TlTensorMap` kernel parameter.
// tl_tma_load_Nd copies the box at element coordinates c0 (innermost) .. to shared memory at dst (128-byte
// aligned), zero- or NaN-filling what lies outside the tensor, and performs complete_tx(box bytes) on bar; the
// multicast forms write the same box at the same offset of every block of the cluster in `mask`, each
// signalling its own barrier at bar's offset.
struct alignas(64) TlTensorMap {
  unsigned long long opaque[16];
};
#define TL_TMA_LOAD(N, COORDS, ...)                                                                                \
  asm volatile("cp.async.bulk.tensor." #N "d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {" COORDS \
               "}], [%2];\n" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(dst))),                          \
               "l"(reinterpret_cast<unsigned long long>(&map)), "r"(static_cast<unsigned>(__cvta_generic_to_shared(bar))),   \
               __VA_ARGS__ : "memory")
#define TL_TMA_MULTICAST(N, COORDS, ...)                                                                           \
  asm volatile("cp.async.bulk.tensor." #N "d.shared::cluster.global.mbarrier::complete_tx::bytes.multicast::cluster" \
               " [%0], [%1, {" COORDS "}], [%2], %3;\n" ::"r"(static_cast<unsigned>(__cvta_generic_to_shared(dst))),     \
               "l"(reinterpret_cast<unsigned long long>(&map)), "r"(static_cast<unsigned>(__cvta_generic_to_shared(bar))),   \
               "h"(mask), __VA_ARGS__ : "memory")
__device__ __forceinline__ void tl_tma_load_1d(void* dst, const TlTensorMap& map, unsigned long long* bar, int c0) {
  TL_TMA_LOAD(1, "%3", "r"(c0));
}
__device__ __forceinline__ void tl_tma_load_2d(void* dst, const TlTensorMap& map, unsigned long long* bar, int c0, int c1) {
  TL_TMA_LOAD(2, "%3, %4", "r"(c0), "r"(c1));
}
__device__ __forceinline__ void tl_tma_load_3d(void* dst, const TlTensorMap& map, unsigned long long* bar, int c0, int c1, int c2) {
  TL_TMA_LOAD(3, "%3, %4, %5", "r"(c0), "r"(c1), "r"(c2));
}
__device__ __forceinline__ void tl_tma_load_4d(void* dst, const TlTensorMap& map, unsigned long long* bar, int c0, int c1, int c2,
                                               int c3) {
  TL_TMA_LOAD(4, "%3, %4, %5, %6", "r"(c0), "r"(c1), "r"(c2), "r"(c3));
}
__device__ __forceinline__ void tl_tma_load_5d(void* dst, const TlTensorMap& map, unsigned long long* bar, int c0, int c1, int c2,
                                               int c3, int c4) {
  TL_TMA_LOAD(5, "%3, %4, %5, %6, %7", "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4));
}
__device__ __forceinline__ void tl_tma_load_multicast_1d(void* dst, const TlTensorMap& map, unsigned long long* bar,
                                                         unsigned short mask, int c0) {
  TL_TMA_MULTICAST(1, "%4", "r"(c0));
}
__device__ __forceinline__ void tl_tma_load_multicast_2d(void* dst, const TlTensorMap& map, unsigned long long* bar,
                                                         unsigned short mask, int c0, int c1) {
  TL_TMA_MULTICAST(2, "%4, %5", "r"(c0), "r"(c1));
}
__device__ __forceinline__ void tl_tma_load_multicast_3d(void* dst, const TlTensorMap& map, unsigned long long* bar,
                                                         unsigned short mask, int c0, int c1, int c2) {
  TL_TMA_MULTICAST(3, "%4, %5, %6", "r"(c0), "r"(c1), "r"(c2));
}
__device__ __forceinline__ void tl_tma_load_multicast_4d(void* dst, const TlTensorMap& map, unsigned long long* bar,
                                                         unsigned short mask, int c0, int c1, int c2, int c3) {
  TL_TMA_MULTICAST(4, "%4, %5, %6, %7", "r"(c0), "r"(c1), "r"(c2), "r"(c3));
}
__device__ __forceinline__ void tl_tma_load_multicast_5d(void* dst, const TlTensorMap& map, unsigned long long* bar,
                                                         unsigned short mask, int c0, int c1, int c2, int c3, int c4) {
  TL_TMA_MULTICAST(5, "%4, %5, %6, %7, %8", "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4));
}
// TMA store: the box at coords of the tensor takes the shared-memory box at src (128-byte aligned, laid out as a
// load would write it); elements outside the tensor are dropped. Stores join bulk groups (commit); wait_read<N>
// returns once all but the newest N groups have read their source (the buffer may be refilled), wait<N> once
// their writes are done.
#define TL_TMA_STORE(N, COORDS, ...)                                                                              \
  asm volatile("cp.async.bulk.tensor." #N "d.global.shared::cta.bulk_group [%0, {" COORDS "}], [%1];\n"          \
               ::"l"(reinterpret_cast<unsigned long long>(&map)),                                               \
               "r"(static_cast<unsigned>(__cvta_generic_to_shared(src))), __VA_ARGS__ : "memory")
__device__ __forceinline__ void tl_tma_store_1d(const TlTensorMap& map, const void* src, int c0) {
  TL_TMA_STORE(1, "%2", "r"(c0));
}
__device__ __forceinline__ void tl_tma_store_2d(const TlTensorMap& map, const void* src, int c0, int c1) {
  TL_TMA_STORE(2, "%2, %3", "r"(c0), "r"(c1));
}
__device__ __forceinline__ void tl_tma_store_3d(const TlTensorMap& map, const void* src, int c0, int c1, int c2) {
  TL_TMA_STORE(3, "%2, %3, %4", "r"(c0), "r"(c1), "r"(c2));
}
__device__ __forceinline__ void tl_tma_store_4d(const TlTensorMap& map, const void* src, int c0, int c1, int c2,
                                                int c3) {
  TL_TMA_STORE(4, "%2, %3, %4, %5", "r"(c0), "r"(c1), "r"(c2), "r"(c3));
}
__device__ __forceinline__ void tl_tma_store_5d(const TlTensorMap& map, const void* src, int c0, int c1, int c2,
                                                int c3, int c4) {
  TL_TMA_STORE(5, "%2, %3, %4, %5, %6", "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(c4));
}
__device__ __forceinline__ void tl_tma_store_commit() { asm volatile("cp.async.bulk.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void tl_tma_store_wait_read() {
  asm volatile("cp.async.bulk.wait_group.read %0;\n" ::"n"(N) : "memory");
}
template <int N>
__device__ __forceinline__ void tl_tma_store_wait() { asm volatile("cp.async.bulk.wait_group %0;\n" ::"n"(N) : "memory"); }
#undef TL_TMA_LOAD
#undef TL_TMA_MULTICAST
#undef TL_TMA_STORE
// Orders this thread's generic shared-memory writes before async-proxy reads of them (wgmma, TMA stores).
__device__ __forceinline__ void tl_fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// wgmma: D (64 x N, f32, in registers) = A (64 x K) * B (K x N) + (scale_d ? D : 0) for the 128 threads of a
// warpgroup. A and B come from shared memory through 64-bit matrix descriptors (tl_wgmma_desc: start address,
// leading and stride byte offsets, swizzle 0/32/64/128 B; the layouts are the PTX ISA's canonical ones, see
// docs/hopper.md), A optionally from registers (_rs: mma.sync's A fragment per warp). TA / TB = 1 read A / B
// MN-major (f16/bf16 only). Each thread holds N / 2 accumulators: register 4i + q of thread 32w + 4g + t is
// D[16w + g + 8(q / 2)][8i + 2t + q % 2]. The instruction is asynchronous: fence before it (tl_wgmma_fence),
// commit it into a group (tl_wgmma_commit) and wait for the group (tl_wgmma_wait<N>: all but the newest N)
// before touching its accumulators; tl_wgmma_fence_operand keeps the compiler from moving accesses to them
// across those points (CUTLASS's warpgroup_fence_operand).
__device__ __forceinline__ unsigned long long tl_wgmma_desc(const void* smem, unsigned lbo, unsigned sbo, int swizzle) {
  unsigned a = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  unsigned long long layout = swizzle == 128 ? 1 : swizzle == 64 ? 2 : swizzle == 32 ? 3 : 0;
  return (unsigned long long)((a & 0x3ffff) >> 4) | (unsigned long long)((lbo >> 4) & 0x3fff) << 16 |
         (unsigned long long)((sbo >> 4) & 0x3fff) << 32 | layout << 62;
}
template <int R>
__device__ __forceinline__ void tl_wgmma_fence_operand(float (&d)[R]) {
#pragma unroll
  for (int i = 0; i < R; ++i) asm volatile("" : "+f"(d[i])::"memory");
}
#if defined(__CUDA_ARCH__)
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
__device__ __forceinline__ void tl_wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void tl_wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void tl_wgmma_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }
// Warp specialisation: every warp of a warpgroup moves its per-thread register budget to N (24..256, a multiple
// of 8): producers give registers back (dec), consumers take them (inc), as CUTLASS's warpgroup_reg_dealloc /
// warpgroup_reg_alloc.
template <int N>
__device__ __forceinline__ void tl_setmaxnreg_inc() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24..256 in steps of 8");
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N>
__device__ __forceinline__ void tl_setmaxnreg_dec() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24..256 in steps of 8");
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
// ---- begin gen_wgmma_operands (scripts/gen_wgmma_operands.py; do not edit by hand)
#define TL_WG_SHAPES(X) X(8, 4) X(16, 8) X(24, 12) X(32, 16) X(40, 20) X(48, 24) X(56, 28) X(64, 32) X(72, 36) X(80, 40) X(88, 44) X(96, 48) X(104, 52) X(112, 56) X(120, 60) X(128, 64) X(136, 68) X(144, 72) X(152, 76) X(160, 80) X(168, 84) X(176, 88) X(184, 92) X(192, 96) X(200, 100) X(208, 104) X(216, 108) X(224, 112) X(232, 116) X(240, 120) X(248, 124) X(256, 128)
#define TL_WG_SS_P4 "%3, %4, %5, %6"
#define TL_WG_RS_P4 "%6, %7, %8, %9"
#define TL_WG_SS_T4 "%7, %8"
#define TL_WG_RS_T4 "%10"
#define TL_WG_O4(d) "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
#define TL_WG_SS_P8 TL_WG_SS_P4 ", %7, %8, %9, %10"
#define TL_WG_RS_P8 TL_WG_RS_P4 ", %10, %11, %12, %13"
#define TL_WG_SS_T8 "%11, %12"
#define TL_WG_RS_T8 "%14"
#define TL_WG_O8(d) TL_WG_O4(d), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
#define TL_WG_SS_P12 TL_WG_SS_P8 ", %11, %12, %13, %14"
#define TL_WG_RS_P12 TL_WG_RS_P8 ", %14, %15, %16, %17"
#define TL_WG_SS_T12 "%15, %16"
#define TL_WG_RS_T12 "%18"
#define TL_WG_O12(d) TL_WG_O8(d), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11])
#define TL_WG_SS_P16 TL_WG_SS_P12 ", %15, %16, %17, %18"
#define TL_WG_RS_P16 TL_WG_RS_P12 ", %18, %19, %20, %21"
#define TL_WG_SS_T16 "%19, %20"
#define TL_WG_RS_T16 "%22"
#define TL_WG_O16(d) TL_WG_O12(d), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
#define TL_WG_SS_P20 TL_WG_SS_P16 ", %19, %20, %21, %22"
#define TL_WG_RS_P20 TL_WG_RS_P16 ", %22, %23, %24, %25"
#define TL_WG_SS_T20 "%23, %24"
#define TL_WG_RS_T20 "%26"
#define TL_WG_O20(d) TL_WG_O16(d), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19])
#define TL_WG_SS_P24 TL_WG_SS_P20 ", %23, %24, %25, %26"
#define TL_WG_RS_P24 TL_WG_RS_P20 ", %26, %27, %28, %29"
#define TL_WG_SS_T24 "%27, %28"
#define TL_WG_RS_T24 "%30"
#define TL_WG_O24(d) TL_WG_O20(d), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
#define TL_WG_SS_P28 TL_WG_SS_P24 ", %27, %28, %29, %30"
#define TL_WG_RS_P28 TL_WG_RS_P24 ", %30, %31, %32, %33"
#define TL_WG_SS_T28 "%31, %32"
#define TL_WG_RS_T28 "%34"
#define TL_WG_O28(d) TL_WG_O24(d), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27])
#define TL_WG_SS_P32 TL_WG_SS_P28 ", %31, %32, %33, %34"
#define TL_WG_RS_P32 TL_WG_RS_P28 ", %34, %35, %36, %37"
#define TL_WG_SS_T32 "%35, %36"
#define TL_WG_RS_T32 "%38"
#define TL_WG_O32(d) TL_WG_O28(d), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
#define TL_WG_SS_P36 TL_WG_SS_P32 ", %35, %36, %37, %38"
#define TL_WG_RS_P36 TL_WG_RS_P32 ", %38, %39, %40, %41"
#define TL_WG_SS_T36 "%39, %40"
#define TL_WG_RS_T36 "%42"
#define TL_WG_O36(d) TL_WG_O32(d), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35])
#define TL_WG_SS_P40 TL_WG_SS_P36 ", %39, %40, %41, %42"
#define TL_WG_RS_P40 TL_WG_RS_P36 ", %42, %43, %44, %45"
#define TL_WG_SS_T40 "%43, %44"
#define TL_WG_RS_T40 "%46"
#define TL_WG_O40(d) TL_WG_O36(d), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
#define TL_WG_SS_P44 TL_WG_SS_P40 ", %43, %44, %45, %46"
#define TL_WG_RS_P44 TL_WG_RS_P40 ", %46, %47, %48, %49"
#define TL_WG_SS_T44 "%47, %48"
#define TL_WG_RS_T44 "%50"
#define TL_WG_O44(d) TL_WG_O40(d), "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43])
#define TL_WG_SS_P48 TL_WG_SS_P44 ", %47, %48, %49, %50"
#define TL_WG_RS_P48 TL_WG_RS_P44 ", %50, %51, %52, %53"
#define TL_WG_SS_T48 "%51, %52"
#define TL_WG_RS_T48 "%54"
#define TL_WG_O48(d) TL_WG_O44(d), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47])
#define TL_WG_SS_P52 TL_WG_SS_P48 ", %51, %52, %53, %54"
#define TL_WG_RS_P52 TL_WG_RS_P48 ", %54, %55, %56, %57"
#define TL_WG_SS_T52 "%55, %56"
#define TL_WG_RS_T52 "%58"
#define TL_WG_O52(d) TL_WG_O48(d), "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51])
#define TL_WG_SS_P56 TL_WG_SS_P52 ", %55, %56, %57, %58"
#define TL_WG_RS_P56 TL_WG_RS_P52 ", %58, %59, %60, %61"
#define TL_WG_SS_T56 "%59, %60"
#define TL_WG_RS_T56 "%62"
#define TL_WG_O56(d) TL_WG_O52(d), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55])
#define TL_WG_SS_P60 TL_WG_SS_P56 ", %59, %60, %61, %62"
#define TL_WG_RS_P60 TL_WG_RS_P56 ", %62, %63, %64, %65"
#define TL_WG_SS_T60 "%63, %64"
#define TL_WG_RS_T60 "%66"
#define TL_WG_O60(d) TL_WG_O56(d), "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59])
#define TL_WG_SS_P64 TL_WG_SS_P60 ", %63, %64, %65, %66"
#define TL_WG_RS_P64 TL_WG_RS_P60 ", %66, %67, %68, %69"
#define TL_WG_SS_T64 "%67, %68"
#define TL_WG_RS_T64 "%70"
#define TL_WG_O64(d) TL_WG_O60(d), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
#define TL_WG_SS_P68 TL_WG_SS_P64 ", %67, %68, %69, %70"
#define TL_WG_RS_P68 TL_WG_RS_P64 ", %70, %71, %72, %73"
#define TL_WG_SS_T68 "%71, %72"
#define TL_WG_RS_T68 "%74"
#define TL_WG_O68(d) TL_WG_O64(d), "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67])
#define TL_WG_SS_P72 TL_WG_SS_P68 ", %71, %72, %73, %74"
#define TL_WG_RS_P72 TL_WG_RS_P68 ", %74, %75, %76, %77"
#define TL_WG_SS_T72 "%75, %76"
#define TL_WG_RS_T72 "%78"
#define TL_WG_O72(d) TL_WG_O68(d), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71])
#define TL_WG_SS_P76 TL_WG_SS_P72 ", %75, %76, %77, %78"
#define TL_WG_RS_P76 TL_WG_RS_P72 ", %78, %79, %80, %81"
#define TL_WG_SS_T76 "%79, %80"
#define TL_WG_RS_T76 "%82"
#define TL_WG_O76(d) TL_WG_O72(d), "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75])
#define TL_WG_SS_P80 TL_WG_SS_P76 ", %79, %80, %81, %82"
#define TL_WG_RS_P80 TL_WG_RS_P76 ", %82, %83, %84, %85"
#define TL_WG_SS_T80 "%83, %84"
#define TL_WG_RS_T80 "%86"
#define TL_WG_O80(d) TL_WG_O76(d), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79])
#define TL_WG_SS_P84 TL_WG_SS_P80 ", %83, %84, %85, %86"
#define TL_WG_RS_P84 TL_WG_RS_P80 ", %86, %87, %88, %89"
#define TL_WG_SS_T84 "%87, %88"
#define TL_WG_RS_T84 "%90"
#define TL_WG_O84(d) TL_WG_O80(d), "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83])
#define TL_WG_SS_P88 TL_WG_SS_P84 ", %87, %88, %89, %90"
#define TL_WG_RS_P88 TL_WG_RS_P84 ", %90, %91, %92, %93"
#define TL_WG_SS_T88 "%91, %92"
#define TL_WG_RS_T88 "%94"
#define TL_WG_O88(d) TL_WG_O84(d), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87])
#define TL_WG_SS_P92 TL_WG_SS_P88 ", %91, %92, %93, %94"
#define TL_WG_RS_P92 TL_WG_RS_P88 ", %94, %95, %96, %97"
#define TL_WG_SS_T92 "%95, %96"
#define TL_WG_RS_T92 "%98"
#define TL_WG_O92(d) TL_WG_O88(d), "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91])
#define TL_WG_SS_P96 TL_WG_SS_P92 ", %95, %96, %97, %98"
#define TL_WG_RS_P96 TL_WG_RS_P92 ", %98, %99, %100, %101"
#define TL_WG_SS_T96 "%99, %100"
#define TL_WG_RS_T96 "%102"
#define TL_WG_O96(d) TL_WG_O92(d), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95])
#define TL_WG_SS_P100 TL_WG_SS_P96 ", %99, %100, %101, %102"
#define TL_WG_RS_P100 TL_WG_RS_P96 ", %102, %103, %104, %105"
#define TL_WG_SS_T100 "%103, %104"
#define TL_WG_RS_T100 "%106"
#define TL_WG_O100(d) TL_WG_O96(d), "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99])
#define TL_WG_SS_P104 TL_WG_SS_P100 ", %103, %104, %105, %106"
#define TL_WG_RS_P104 TL_WG_RS_P100 ", %106, %107, %108, %109"
#define TL_WG_SS_T104 "%107, %108"
#define TL_WG_RS_T104 "%110"
#define TL_WG_O104(d) TL_WG_O100(d), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103])
#define TL_WG_SS_P108 TL_WG_SS_P104 ", %107, %108, %109, %110"
#define TL_WG_RS_P108 TL_WG_RS_P104 ", %110, %111, %112, %113"
#define TL_WG_SS_T108 "%111, %112"
#define TL_WG_RS_T108 "%114"
#define TL_WG_O108(d) TL_WG_O104(d), "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107])
#define TL_WG_SS_P112 TL_WG_SS_P108 ", %111, %112, %113, %114"
#define TL_WG_RS_P112 TL_WG_RS_P108 ", %114, %115, %116, %117"
#define TL_WG_SS_T112 "%115, %116"
#define TL_WG_RS_T112 "%118"
#define TL_WG_O112(d) TL_WG_O108(d), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111])
#define TL_WG_SS_P116 TL_WG_SS_P112 ", %115, %116, %117, %118"
#define TL_WG_RS_P116 TL_WG_RS_P112 ", %118, %119, %120, %121"
#define TL_WG_SS_T116 "%119, %120"
#define TL_WG_RS_T116 "%122"
#define TL_WG_O116(d) TL_WG_O112(d), "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115])
#define TL_WG_SS_P120 TL_WG_SS_P116 ", %119, %120, %121, %122"
#define TL_WG_RS_P120 TL_WG_RS_P116 ", %122, %123, %124, %125"
#define TL_WG_SS_T120 "%123, %124"
#define TL_WG_RS_T120 "%126"
#define TL_WG_O120(d) TL_WG_O116(d), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119])
#define TL_WG_SS_P124 TL_WG_SS_P120 ", %123, %124, %125, %126"
#define TL_WG_RS_P124 TL_WG_RS_P120 ", %126, %127, %128, %129"
#define TL_WG_SS_T124 "%127, %128"
#define TL_WG_RS_T124 "%130"
#define TL_WG_O124(d) TL_WG_O120(d), "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123])
#define TL_WG_SS_P128 TL_WG_SS_P124 ", %127, %128, %129, %130"
#define TL_WG_RS_P128 TL_WG_RS_P124 ", %130, %131, %132, %133"
#define TL_WG_SS_T128 "%131, %132"
#define TL_WG_RS_T128 "%134"
#define TL_WG_O128(d) TL_WG_O124(d), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
// ---- end gen_wgmma_operands
// One asm statement per shape (TL_WG_SHAPES); only the instantiated N is compiled.
#define TL_WG_ASM_SS(n, r, TY, K)                                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\nwgmma.mma_async.sync.aligned.m64n" #n "k" #K ".f32." TY "." TY \
               " {" TL_WG_SS_P##r "}, %0, %1, p, 1, 1, " TL_WG_SS_T##r ";\n}\n"                                     \
               : "+l"(da), "+l"(db), "+r"(scale_d), TL_WG_O##r(d) : "n"(TA), "n"(TB))
#define TL_WG_ASM_RS(n, r, TY, K)                                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %5, 0;\nwgmma.mma_async.sync.aligned.m64n" #n "k" #K ".f32." TY "." TY \
               " {" TL_WG_RS_P##r "}, {%0, %1, %2, %3}, %4, p, 1, 1, " TL_WG_RS_T##r ";\n}\n"                       \
               : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+l"(db), "+r"(scale_d), TL_WG_O##r(d) : "n"(TB))
// tf32 takes no transpose immediates: K-major only.
#define TL_WG_ASM_SS_TF32(n, r)                                                                                    \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %2, 0;\nwgmma.mma_async.sync.aligned.m64n" #n "k8.f32.tf32.tf32"     \
               " {" TL_WG_SS_P##r "}, %0, %1, p, 1, 1;\n}\n" : "+l"(da), "+l"(db), "+r"(scale_d), TL_WG_O##r(d))
#define TL_WG_ASM_RS_TF32(n, r)                                                                                    \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %5, 0;\nwgmma.mma_async.sync.aligned.m64n" #n "k8.f32.tf32.tf32"     \
               " {" TL_WG_RS_P##r "}, {%0, %1, %2, %3}, %4, p, 1, 1;\n}\n"                                          \
               : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3), "+l"(db), "+r"(scale_d), TL_WG_O##r(d))
template <int N, bool BF, int TA, int TB>
__device__ __forceinline__ void tl_wgmma_ss_b16(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma: N is 8..256 in steps of 8");
#define TL_X(n, r)                        \
  if constexpr (N == n) {                 \
    if constexpr (BF)                     \
      TL_WG_ASM_SS(n, r, "bf16", 16);     \
    else                                  \
      TL_WG_ASM_SS(n, r, "f16", 16);      \
  }
  TL_WG_SHAPES(TL_X)
#undef TL_X
}
template <int N, bool BF, int TB>
__device__ __forceinline__ void tl_wgmma_rs_b16(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma: N is 8..256 in steps of 8");
  unsigned a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#define TL_X(n, r)                        \
  if constexpr (N == n) {                 \
    if constexpr (BF)                     \
      TL_WG_ASM_RS(n, r, "bf16", 16);     \
    else                                  \
      TL_WG_ASM_RS(n, r, "f16", 16);      \
  }
  TL_WG_SHAPES(TL_X)
#undef TL_X
}
template <int N, int TA = 0, int TB = 0>
__device__ __forceinline__ void tl_wgmma_f16(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d) {
  tl_wgmma_ss_b16<N, false, TA, TB>(d, da, db, scale_d);
}
template <int N, int TA = 0, int TB = 0>
__device__ __forceinline__ void tl_wgmma_bf16(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d) {
  tl_wgmma_ss_b16<N, true, TA, TB>(d, da, db, scale_d);
}
template <int N, int TB = 0>
__device__ __forceinline__ void tl_wgmma_f16_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d) {
  tl_wgmma_rs_b16<N, false, TB>(d, a, db, scale_d);
}
template <int N, int TB = 0>
__device__ __forceinline__ void tl_wgmma_bf16_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d) {
  tl_wgmma_rs_b16<N, true, TB>(d, a, db, scale_d);
}
template <int N>
__device__ __forceinline__ void tl_wgmma_tf32(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma: N is 8..256 in steps of 8");
#define TL_X(n, r) \
  if constexpr (N == n) TL_WG_ASM_SS_TF32(n, r);
  TL_WG_SHAPES(TL_X)
#undef TL_X
}
template <int N>
__device__ __forceinline__ void tl_wgmma_tf32_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d) {
  static_assert(N % 8 == 0 && N >= 8 && N <= 256, "wgmma: N is 8..256 in steps of 8");
  unsigned a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#define TL_X(n, r) \
  if constexpr (N == n) TL_WG_ASM_RS_TF32(n, r);
  TL_WG_SHAPES(TL_X)
#undef TL_X
}
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
#else   // the host pass: declarations, so kernels that call these parse
__device__ void tl_wgmma_fence();
__device__ void tl_wgmma_commit();
template <int N>
__device__ void tl_wgmma_wait();
template <int N>
__device__ void tl_setmaxnreg_inc();
template <int N>
__device__ void tl_setmaxnreg_dec();
template <int N, int TA = 0, int TB = 0>
__device__ void tl_wgmma_f16(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d);
template <int N, int TA = 0, int TB = 0>
__device__ void tl_wgmma_bf16(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d);
template <int N, int TB = 0>
__device__ void tl_wgmma_f16_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d);
template <int N, int TB = 0>
__device__ void tl_wgmma_bf16_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d);
template <int N>
__device__ void tl_wgmma_tf32(float (&d)[N / 2], unsigned long long da, unsigned long long db, int scale_d);
template <int N>
__device__ void tl_wgmma_tf32_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long db, int scale_d);
#endif  // __CUDA_ARCH__
#endif  // sm_90

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

// The element offset of (row, col) in a shared [rows][C] tile of 2-byte elements whose 16-byte chunks are
// XOR-swizzled by row (CUTLASS's Swizzle<3,3,3> on 128-byte lines): the chunk index is XORed with the row's
// line number, so the 8 rows that one ldmatrix phase (or a warp's cp.async stores) touches at one logical
// chunk land in 8 different 16-byte bank groups. C is a multiple of 16; rows narrower than 128 bytes share a
// line and XOR fewer bits.
template <int C>
__device__ __forceinline__ int tl_swizzle_b16(int row, int col) {
  constexpr int chunks = C / 8, rows_per_line = chunks >= 8 ? 1 : 8 / chunks, span = chunks >= 8 ? 8 : chunks;
  return row * C + ((((col >> 3) ^ (row / rows_per_line)) & (span - 1)) | ((col >> 3) & ~(span - 1))) * 8 +
         (col & 7);
}

// Two 2-byte values (half or bf16) as one 32-bit word, `lo` in the low half: one store for the two adjacent
// columns an mma accumulator fragment holds. Both types are standard-layout around one unsigned short.
template <class T>
__device__ __forceinline__ unsigned tl_pack_b16x2(T lo, T hi) {
  return unsigned(*reinterpret_cast<const unsigned short*>(&lo)) |
         unsigned(*reinterpret_cast<const unsigned short*>(&hi)) << 16;
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
