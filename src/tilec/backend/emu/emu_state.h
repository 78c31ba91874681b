// tilec emulator: the state that kernel modules and the runtime library share, and the runtime's entry points.
//
// The runtime (emu_runtime.cc: launch, worker threads, fibers, scheduler, warps, poisoning, errors) is compiled
// once into rt-<hash>.so; every kernel module links against it and sees only these plain structs plus the
// inline device API (emu_api.h). The runtime extends Worker and Launch with its private fields (WorkerRt,
// LaunchRt), so nothing here drags in <vector> or <atomic>.
//
// A device-side helper that needs the scheduler (a new kind of wait, a grid barrier) is declared here with
// TL_EMU_RT, defined in emu_runtime.cc, and wrapped by an inline function in emu_api.h.
//
// Thread-block clusters (sm_90 `__cluster_dims__(X, 1, 1)`): Launch::cluster blocks of consecutive blockIdx.x
// form a cluster, run by one worker as fibers of one scheduler. A cluster's Blocks are contiguous in memory
// (Block::peers is its rank 0), so a peer's TL_SHARED arena (distributed shared memory) is peers[rank].arena.
// Plain and extern (dynamic) __shared__ arrays live in the module's thread-local block, swapped per block, so
// they sit at the same address in every block while it runs: a peer's copy is its Block::tls_save
// (tls_cluster_address), and an address a peer will see when it runs (a multicast copy's destination) is the
// running block's own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "emu_fiber.h"
#include "emu_types.h"

// Runtime entry points keep default visibility while kernel modules are compiled with -fvisibility=hidden.
#define TL_EMU_RT __attribute__((visibility("default")))

namespace tl_emu {
// The largest per-block shared memory of the GPU specs (analysis/hw/*.json), passed by backend/emu/build.py.
#ifndef TL_EMU_SMEM_CAP
#error "TL_EMU_SMEM_CAP (the largest per-block shared memory of the GPU specs) is set by backend/emu/build.py"
#endif
constexpr size_t kSmemCap = TL_EMU_SMEM_CAP;
// The warp (wavefront) width of the target: 32 on NVIDIA GPUs, 64 on AMD CDNA (the spec's warp_size, passed by
// backend/emu/build.py). Lane masks are 64-bit inside the runtime either way; the device API's mask type is
// LaneMask, 32 or 64 bits as the target's (CUDA's `unsigned`, HIP's `unsigned long long`).
#ifndef TL_EMU_WARP
#error "TL_EMU_WARP (the target's warp size, spec.warp_size) is set by backend/emu/build.py"
#endif
constexpr int kWarp = TL_EMU_WARP;
static_assert(kWarp == 32 || kWarp == 64, "warps are 32 (NVIDIA) or 64 (AMD wavefronts) lanes");
using LaneMask = std::conditional_t<kWarp == 64, unsigned long long, unsigned>;
constexpr uint64_t kAllLanes = kWarp == 64 ? ~uint64_t(0) : 0xffffffffull;

enum State : uint8_t { S_NEW, S_READY, S_RUN, S_BARRIER, S_WARP, S_WAIT, S_CLUSTER, S_GROUP, S_MBAR, S_DONE };
enum WarpKind { W_SHFL, W_BALLOT, W_ALL, W_SYNC };

struct Block;
struct Fiber {
  Context ctx;
  uint3 tid;
  int linear, lane, warp;
  State state;
  Block* blk;
  char* stack;
  // The warp rendezvous slot: what this lane brought and what it gets back.
  int wkind, wsrc;
  uint64_t wmask;
  uint64_t wval, wres;
  void* async;   // this thread's pending cp.async copies (emu_async.h); null when none, freed at exit
  void* wgmma;   // this thread's wgmma state (emu_wgmma.h): fence flag, commit count, pending results; freed at exit
};
struct Warp { uint64_t live, arrived; };   // lane bits (kWarp of them)

// The L2 model (emu_l2.h): a block's global accesses as sector entries (sector << 1 | is_store), appended when
// the launch asks for the model. `recent` is a direct-mapped filter of the last entries seen, so a thread
// walking one sector (or a warp re-reading a tile) adds an entry once, not once per access.
constexpr int kRecent = 512;
// Entries are 32-byte granules, the smallest sector of any GPU tilec targets; the model groups them into the
// arch spec's sector (a multiple of 32 B) when it simulates the cache.
constexpr int kGranuleShift = 5;
struct SectorLog {
  uint64_t* p;
  size_t n, cap;
  uint64_t recent[kRecent];
};
// A barrier's tl_mbarrier_init in a cluster kernel (emu_mbarrier.h): `key` names it alike in every block of the
// cluster (its TL_SHARED arena offset, or its plain/extern __shared__ address, the same in every block), `thread`
// initialised it, `fence_gen` is the block's cluster_gen when that thread's tl_mbarrier_init_fence followed the
// init (kNoFence before one). Peers may reach the barrier once a cluster barrier opened after that fence.
// `arena`: the key is a TL_SHARED arena offset (else a __shared__ address of the running block's TLS copy).
constexpr unsigned kNoFence = ~0u;
// `unobserved`: a peer's remote arrive reached it, and no thread of the block has since waited for a phase
// that it completed (nor has a cluster barrier opened): the block may not exit yet (emu_runtime.h).
struct MbarInit { uintptr_t key; int thread; unsigned fence_gen; bool arena, unobserved; };

// An mbarrier's 8-byte word as the emulator keeps it (emu_mbarrier.h describes the fields).
constexpr uint64_t kMbarCount = (1u << 20) - 1;
constexpr uint64_t kMbarMagic = uint64_t(1) << 61;
constexpr uint64_t kMbarMagicMask = uint64_t(3) << 61;
constexpr long kMbarTxMax = (1l << 20) - 1;   // the ISA's tx-count range is +-(2^20 - 1)

inline unsigned mbar_pending(uint64_t v) { return unsigned(v & kMbarCount); }
inline unsigned mbar_expected(uint64_t v) { return unsigned((v >> 20) & kMbarCount); }
inline long mbar_tx(uint64_t v) {
  long t = long((v >> 40) & ((1u << 21) - 1));
  return t >= (1l << 20) ? t - (1l << 21) : t;
}
inline unsigned mbar_parity(uint64_t v) { return unsigned(v >> 63); }
inline uint64_t mbar_pack(unsigned pending, unsigned expected, long tx, unsigned parity) {
  return uint64_t(pending) | uint64_t(expected) << 20 | (uint64_t(tx) & ((1u << 21) - 1)) << 40 | kMbarMagic |
         uint64_t(parity & 1u) << 63;
}

struct Block {
  uint3 bid;
  long linear;
  Fiber* fib;
  int n, live, at_barrier;
  int bar_accum, bar_result;   // __syncthreads_count/and/or
  Warp* warps;
  char* arena;      // TL_SHARED storage
  char* tls_save;   // concurrent or cluster mode: this block's plain __shared__ arrays while another is resident
  unsigned long phase;
  Block* peers;     // rank 0 of this block's cluster (itself when clusters are 1 block)
  unsigned rank;    // blockIdx.x % Launch::cluster
  int at_cluster;   // threads parked in tl_cluster_sync
  int cluster_synced;   // a tl_cluster_sync has opened for this block: every peer has started
  unsigned cluster_gen;  // tl_cluster_syncs opened for this block so far
  MbarInit* inits;       // cluster kernels: this block's barrier inits (ninits of cap_inits), malloc'd
  int ninits, cap_inits;
  int unobserved;        // inits[] entries with `unobserved` set
  void* bulk;        // TMA copies into this block not landed yet (emu_tma.h): a malloc'd chain, next pointer first
  int at_group;      // threads parked in group_sync (wgmma's warpgroup rendezvous)
  SectorLog* sectors;   // the L2 model's log of this block's sectors (only when Worker::l2)
};

struct Worker;
// What a kernel module tells the runtime about itself (defined by the code the runner appends to each unit).
// Per-module state stays in the module: its thread-local block (plain __shared__ arrays, dynamic shared
// arrays and its own `tl_w`) and its TL_SHARED total, so modules sharing one runtime never see each other's.
struct Module {
  void (*bind)(Worker* w);       // set this module's thread-local tl_w (also locates its TLS block)
  void* (*dyn_address)(int i);   // this thread's i-th dynamic shared array
  int ndyn;
  size_t* shared_total;          // bytes of TL_SHARED arena registered by this module's declaration sites
};

// The read-only part of a launch that inline device code needs.
struct Launch {
  void (*tramp)(void**);
  void** args;
  const char* name;
  const Module* mod;
  dim3 grid, block;
  long nblocks;
  int nthreads;
  size_t smem;
  int order;
  uint64_t seed;
  int check, nranges;
  const uint64_t* ranges;   // [lo, hi) byte ranges of the array arguments
  bool concurrent;
  int cluster;   // blocks per cluster (1: no clusters); divides grid.x
};

// One OS thread of a launch, as inline device code sees it.
struct Worker {
  uint64_t ld = 0, st = 0;   // global bytes; per OS thread, summed after the launch
  Launch* L = nullptr;
  Fiber* cur = nullptr;
  bool l2 = false;   // the launch runs the L2 model: every global access is logged (l2_note)
  SectorLog* log = nullptr;   // the running thread's block's log (set on resume; null without the model)
};

// ---- the runtime library's entry points for device code --------------------------------------------------
[[noreturn]] TL_EMU_RT void bad_access(Worker* w, const char* what, const void* p, size_t n);
TL_EMU_RT void barrier(Worker* w);                        // __syncthreads: park until the block arrives
TL_EMU_RT uint64_t warp_op(Worker* w, uint64_t mask, int kind, uint64_t val, int src);
TL_EMU_RT void wait_geq(Worker* w, int* flag, int value);   // park until *flag >= value (or deadlock)
TL_EMU_RT char* block_arena_slow(Worker* w);               // allocate the block's arena, or fail on overflow
TL_EMU_RT void cluster_barrier(Worker* w);                // tl_cluster_sync: park until the cluster arrives
[[noreturn]] TL_EMU_RT void bad_cluster_map(Worker* w, const void* p, unsigned rank);   // fail the launch
// The same `n` bytes at `p`, a plain or extern __shared__ address (the module's thread-local block), in block
// `rank` of the running thread's cluster, as the running thread can reach them now: `p` itself for its own
// block; for a peer, that block's swapped-out copy (Block::tls_save, allocated poisoned on first use), which
// stays current while the running thread's block is the resident one. Fails the launch for any other address.
TL_EMU_RT char* tls_cluster_address(Worker* w, const void* p, size_t n, unsigned rank);
// A rendezvous of the running thread's warpgroup (the aligned 128 threads; exited ones absent); `val` goes to
// Fiber::wval. Returns true to the last arriver, which runs on while every other member is parked (the others
// resume in the next phase), as warp_op does (emu_wgmma.h). Threads stuck here are a reported deadlock.
TL_EMU_RT bool group_sync(Worker* w, uint64_t val);
// Park until ready(arg) (an mbarrier phase, emu_mbarrier.h); in a deadlock report, describe(arg) says what
// the first such thread waits for.
TL_EMU_RT void wait_until(Worker* w, bool (*ready)(void*), void (*describe)(void*, char*, size_t), void* arg);
[[noreturn]] TL_EMU_RT void fail_launch(Worker* w, const char* msg);   // fail with `msg` (prefixed by the kernel)
TL_EMU_RT void sector_log_grow(SectorLog* g);             // make room for one more entry

// The L2 model's per-access hook (TL_LD/TL_ST and friends call it with Worker::log when that is set): log the
// sectors of [a, a + n) in the running thread's block's log `g`. Cheap on repeats: one compare against the
// recent filter.
inline void l2_note(SectorLog* g, const void* a, size_t n, bool store) {
  uint64_t lo = reinterpret_cast<uint64_t>(a) >> kGranuleShift;
  uint64_t hi = (reinterpret_cast<uint64_t>(a) + n - 1) >> kGranuleShift;
  for (uint64_t s = lo; s <= hi; ++s) {
    uint64_t e = s << 1 | uint64_t(store);
    uint64_t& slot = g->recent[(s ^ (s >> 8)) & (kRecent - 1)];
    if (slot == e) continue;
    slot = e;
    if (__builtin_expect(g->n == g->cap, 0)) sector_log_grow(g);
    g->p[g->n++] = e;
  }
}
}  // namespace tl_emu

// The launch behind every module's tl_emu_launch (see signature.appendix). Returns 0, or 1 with err set.
extern "C" TL_EMU_RT int tl_emu_rt_launch(const tl_emu::Module* mod, void (*tramp)(void**), void** args,
                                          const char* name, const unsigned* grid, const unsigned* block,
                                          unsigned long long smem, int order, unsigned long long seed, int check,
                                          int nranges, const unsigned long long* ranges, int concurrent,
                                          int cluster, int nworkers, unsigned long long* bytes_out, char* err, int errlen);
