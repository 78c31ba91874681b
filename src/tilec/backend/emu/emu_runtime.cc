// tilec emulator: the runtime library, compiled once per compiler command and header set into rt-<hash>.so
// (tilec.backend.emu.build) and linked by every kernel module. Holds everything that is not a device-side fast
// path: the context switch, the launch with its worker threads (one block, or one thread-block cluster, at a
// time; or the whole grid in concurrent mode), and the entry points of emu_state.h.
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "emu_runtime.h"

#if defined(__x86_64__) && !defined(TILEC_EMU_UCONTEXT)
// tl_emu_switch(save, to): store the current stack pointer in *save, continue on the stack `to`.
extern "C" void tl_emu_switch(void** save, void* to);
asm(R"(
  .text
  .p2align 4
  .hidden tl_emu_switch
  .globl tl_emu_switch
  .type tl_emu_switch,@function
tl_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tl_emu_switch,.-tl_emu_switch
)");
#endif

// ---- entry points for device code (emu_state.h) ----------------------------------------------------------
namespace tl_emu {
[[noreturn]] void bad_access(Worker* wk, const char* what, const void* p, size_t n) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  fail(w,
       "kernel %s: %s of %zu bytes at %p is outside every array argument (thread (%u,%u,%u) of block "
       "(%u,%u,%u))",
       w->L->name, what, n, p, f->tid.x, f->tid.y, f->tid.z, f->blk->bid.x, f->blk->bid.y, f->blk->bid.z);
  abandon(w);
}

// Count the running fiber in at its block's ``count`` and park it in ``state`` until the scheduler opens
// that barrier (__syncthreads: the block's live threads; tl_cluster_sync: the cluster's).
inline void arrive(Worker* wk, int Block::*count, State state) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  f->blk->*count += 1;
  w->progress++;
  park(w, f, state);
}

void barrier(Worker* wk) { arrive(wk, &Block::at_barrier, S_BARRIER); }

uint64_t warp_op(Worker* wk, uint64_t mask, int kind, uint64_t val, int src) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  Block* b = f->blk;
  if (!((mask >> f->lane) & 1u)) {
    // CUDA and HIP both require the calling lane in the mask. On a 64-lane target a 32-bit mask (0xffffffff)
    // leaves lanes 32..63 out: the kernel assumes 32-lane warps.
    fail(w, "kernel %s: thread (%u,%u,%u) of block (%u,%u,%u), lane %d of a %d-lane warp, calls a warp operation "
         "with mask 0x%llx that leaves it out%s", w->L->name, f->tid.x, f->tid.y, f->tid.z, b->bid.x, b->bid.y,
         b->bid.z, f->lane, kWarp, (unsigned long long)mask,
         f->lane >= 32 ? " (a mask written for 32-lane warps?)" : "");
    abandon(w);
  }
  f->wkind = kind;
  f->wmask = mask;
  f->wval = val;
  f->wsrc = src;
  b->warps[f->warp].arrived |= uint64_t(1) << f->lane;
  w->progress++;
  if (!warp_try_complete(w, b, f->warp, f)) park(w, f, S_WARP);
  return f->wres;
}

// Waits yield the fiber; the scheduler reports a deadlock when no waiter can ever get past its flag.
void wait_geq(Worker* wk, int* p, int value) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  while (__atomic_load_n(p, __ATOMIC_ACQUIRE) < value) {
    w->waiting.push_back(f);
    park(w, f, S_WAIT);
  }
  w->progress++;
}

void cluster_barrier(Worker* wk) { arrive(wk, &Block::at_cluster, S_CLUSTER); }

bool group_sync(Worker* wk, uint64_t val) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  f->wval = val;
  w->progress++;
  if (group_try_complete(w, f->blk, f->linear & ~(kGroup - 1), f)) return true;
  f->blk->at_group++;
  park(w, f, S_GROUP);
  return false;
}

// Like wait_geq, with the condition and its description supplied by the caller (emu_mbarrier.h).
void wait_until(Worker* wk, bool (*ready)(void*), void (*describe)(void*, char*, size_t), void* arg) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  while (!ready(arg)) {
    f->wval = reinterpret_cast<uint64_t>(arg);
    f->wres = reinterpret_cast<uint64_t>(describe);
    w->waiting.push_back(f);
    park(w, f, S_MBAR);
  }
  w->progress++;
}

[[noreturn]] void fail_launch(Worker* wk, const char* msg) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  fail(w, "kernel %s: %s (thread (%u,%u,%u) of block (%u,%u,%u))", w->L->name, msg, f->tid.x, f->tid.y, f->tid.z,
       f->blk->bid.x, f->blk->bid.y, f->blk->bid.z);
  abandon(w);
}

[[noreturn]] void bad_cluster_map(Worker* wk, const void* p, unsigned rank) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  if (rank >= unsigned(w->L->cluster))
    fail(w, "kernel %s: tl_cluster_map to rank %u, but the cluster has %d blocks (thread (%u,%u,%u) of block (%u,%u,%u))",
         w->L->name, rank, w->L->cluster, f->tid.x, f->tid.y, f->tid.z, f->blk->bid.x, f->blk->bid.y, f->blk->bid.z);
  else
    fail(w,
         "kernel %s: tl_cluster_map of %p, which is not in this block's shared memory (TL_SHARED, __shared__ or "
         "the launch's dynamic shared bytes) (thread (%u,%u,%u) of block (%u,%u,%u)); only shared memory can be "
         "mapped to a cluster peer",
         w->L->name, p, f->tid.x, f->tid.y, f->tid.z, f->blk->bid.x, f->blk->bid.y, f->blk->bid.z);
  abandon(w);
}

char* tls_cluster_address(Worker* wk, const void* p, size_t n, unsigned rank) {
  WorkerRt* w = rt(wk);
  Block* b = w->cur->blk;
  uintptr_t a = reinterpret_cast<uintptr_t>(p);
  size_t off = 0;
  for (const Span& s : w->spans) {
    uintptr_t lo = reinterpret_cast<uintptr_t>(s.p);
    if (a >= lo && a + n <= lo + s.n) {
      if (rank == b->rank) return const_cast<char*>(static_cast<const char*>(p));
      Block* peer = &b->peers[rank];
      if (!peer->tls_save) {   // the peer has not run yet: it starts poisoned, as swap_tls would start it
        peer->tls_save = static_cast<char*>(malloc(w->span_total));
        if (!peer->tls_save) {
          fail(w, "kernel %s: out of memory for a cluster peer's shared memory", w->L->name);
          abandon(w);
        }
        memset(peer->tls_save, 0xff, w->span_total);
      }
      return peer->tls_save + off + (a - lo);
    }
    off += s.n;
  }
  bad_cluster_map(wk, p, rank);
}

void sector_log_grow(SectorLog* g) {
  size_t cap = g->cap ? g->cap * 2 : 4096;
  uint64_t* p = static_cast<uint64_t*>(realloc(g->p, cap * sizeof(uint64_t)));
  if (!p) {
    WorkerRt* w = rt_w;
    fail(w, "kernel %s: out of memory for the L2 model's access log", w->L->name);
    abandon(w);
  }
  g->p = p;
  g->cap = cap;
}

char* block_arena_slow(Worker* wk) {
  WorkerRt* w = rt(wk);
  if (module_shared_total(w->L) > kSmemCap) {
    fail(w, "kernel %s: TL_SHARED arrays need more than %zu bytes of shared memory", w->L->name, kSmemCap);
    abandon(w);
  }
  Block* b = w->cur->blk;
  if (!b->arena) b->arena = alloc_poisoned(kSmemCap);
  return b->arena;
}
}  // namespace tl_emu

// ---- launches ----------------------------------------------------------------------------------------------
namespace tl_emu {
// Poisoned TL_SHARED arenas for every block of a cluster up front: a peer may map another block's arena
// before that block has touched its own arrays. false (launch failed) when the module needs too much.
inline bool cluster_arenas(WorkerRt* w, Block* blocks, size_t count) {
  if (module_shared_total(w->L) > kSmemCap) {
    fail(w, "kernel %s: TL_SHARED arrays need more than %zu bytes of shared memory", w->L->name, kSmemCap);
    return false;
  }
  for (size_t i = 0; i < count; ++i)
    if (!blocks[i].arena && !(blocks[i].arena = alloc_poisoned(kSmemCap))) {
      fail(w, "kernel %s: cannot allocate shared memory", w->L->name);
      return false;
    }
  return true;
}

// The L2 model: one access log per block slot, empty, with the recent filter cleared.
inline std::vector<SectorLog> l2_logs(WorkerRt* w, std::vector<Block>& blocks) {
  std::vector<SectorLog> logs(w->l2 ? blocks.size() : 0);
  for (size_t i = 0; i < logs.size(); ++i) {
    logs[i].p = nullptr;
    logs[i].n = logs[i].cap = 0;
    std::fill(logs[i].recent, logs[i].recent + kRecent, ~uint64_t(0));
    blocks[i].sectors = &logs[i];
  }
  return logs;
}

// Blocks that ran to the end hand their sorted, deduplicated log to the launch (slots are per block).
inline void l2_collect(WorkerRt* w, Block* b) {
  if (w->l2) l2_finish_block(b->sectors, w->launch()->l2_blocks[size_t(b->linear)]);
}

inline void l2_free(std::vector<SectorLog>& logs) {
  for (SectorLog& g : logs) free(g.p);
}

// One block at a time, or (cluster kernels) one cluster at a time, in one scheduler.
inline void run_blocks(WorkerRt* w) {
  LaunchRt* L = w->launch();
  int n = L->nthreads, nw = (n + kWarp - 1) / kWarp;
  size_t X = size_t(L->cluster);
  std::vector<Fiber> fib(X * size_t(n));
  std::vector<Warp> warps(X * size_t(nw));
  std::vector<Block> blocks(X);
  for (size_t r = 0; r < X; ++r) {
    blocks[r].fib = &fib[r * size_t(n)];
    blocks[r].n = n;
    blocks[r].warps = &warps[r * size_t(nw)];
    w->blocks.push_back(&blocks[r]);
  }
  std::vector<SectorLog> logs = l2_logs(w, blocks);
  if (!alloc_stacks(w, X * size_t(n))) return fail(w, "kernel %s: cannot map fiber stacks", L->name);
  for (;;) {
    if (L->failed.load(std::memory_order_relaxed)) break;
    long bi = L->next_block.fetch_add(long(X));
    if (bi >= L->nblocks) break;
    for (size_t r = 0; r < X; ++r) init_block(w, &blocks[r], bi + long(r));
    if (X == 1) {
      poison_tls(w);   // a read before the first write (a missing barrier) sees NaN, not the last block's data
    } else {
      // __shared__ arrays are swapped per block (resume): start every block of this cluster poisoned, not
      // with the previous cluster's arrays.
      for (Block& b : blocks) {
        free(b.tls_save);
        b.tls_save = nullptr;
      }
      w->resident = nullptr;
      if (!cluster_arenas(w, blocks.data(), X)) break;
    }
    for (Block& b : blocks)
      if (b.arena) memset(b.arena, 0xff, std::min(module_shared_total(L), kSmemCap));
    w->ready.clear();
    w->next.clear();
    w->waiting.clear();
    for (Block& b : blocks)
      for (int t = 0; t < n; ++t) w->ready.push_back(&b.fib[t]);
    if (!run_sched(w, true)) break;
    for (Block& b : blocks) l2_collect(w, &b);
  }
  for (Block& b : blocks) {
    free(b.arena);
    free(b.tls_save);
    free(b.inits);
    free_chain(b.bulk);
  }
  l2_free(logs);
}

inline void run_concurrent(WorkerRt* w) {
  LaunchRt* L = w->launch();
  int n = L->nthreads, nw = (n + kWarp - 1) / kWarp;
  size_t nb = size_t(L->nblocks);
  std::vector<Block> blocks(nb);
  std::vector<Fiber> fib(nb * size_t(n));
  std::vector<Warp> warps(nb * size_t(nw));
  if (!alloc_stacks(w, nb * size_t(n))) return fail(w, "kernel %s: cannot map fiber stacks", L->name);
  for (size_t bi = 0; bi < nb; ++bi) {
    Block& b = blocks[bi];
    b.fib = &fib[bi * size_t(n)];
    b.n = n;
    b.warps = &warps[bi * size_t(nw)];
    init_block(w, &b, long(bi));
    w->blocks.push_back(&b);
  }
  std::vector<SectorLog> logs = l2_logs(w, blocks);
  w->admitted = 0;
  admit(w);   // the whole grid, or in resident-limit mode the first L->resident blocks
  std::swap(w->ready, w->next);
  if (L->cluster > 1 && !cluster_arenas(w, blocks.data(), nb)) return;
  if (run_sched(w, true))
    for (Block& b : blocks) l2_collect(w, &b);
  for (Block& b : blocks) {
    free(b.arena);
    free(b.tls_save);
    free(b.inits);
    free_chain(b.bulk);
  }
  l2_free(logs);
}

inline void* worker_main(void* arg) {
  WorkerRt* w = static_cast<WorkerRt*>(arg);
  rt_w = w;
  w->l2 = w->launch()->l2 != nullptr;
  w->L->mod->bind(w);   // first touch allocates the module's TLS block on this thread
  find_tls(w);
  if (w->stop)
    ;
  else if (w->L->concurrent)
    run_concurrent(w);
  else
    run_blocks(w);
  if (w->stack_region) munmap(w->stack_region, w->stack_bytes);
  return nullptr;
}
}  // namespace tl_emu

// The L2 model's request for the next launch on this OS thread (tl_emu_rt_l2_arm), taken by that launch.
static thread_local tl_emu::L2Request* l2_armed = nullptr;

// Arm the L2 model for the next launch on the calling thread: `req` holds the cache and the wave size in, and
// gets the counts back once that launch has succeeded (tilec.backend.emu.l2). Null disarms.
extern "C" TL_EMU_RT void tl_emu_rt_l2_arm(tl_emu::L2Request* req) { l2_armed = req; }

// The launch behind each module's tl_emu_launch. grid/block: 3 values each; ranges: nranges [lo, hi) pairs;
// bytes_out: loaded, stored. Every launch has its own workers, so byte counts never mix across launches or
// modules. Returns 0, or 1 with a message in err.
extern "C" int tl_emu_rt_launch(const tl_emu::Module* mod, void (*tramp)(void**), void** args, const char* name,
                                const unsigned* grid, const unsigned* block, unsigned long long smem, int order,
                                unsigned long long seed, int check, int nranges, const unsigned long long* ranges,
                                int concurrent, int cluster, int nworkers, unsigned long long* bytes_out, char* err,
                                int errlen) {
  using namespace tl_emu;
  LaunchRt L;
  L.mod = mod;
  L.tramp = tramp;
  L.args = args;
  L.name = name;
  L.grid = dim3(grid[0], grid[1], grid[2]);
  L.block = dim3(block[0], block[1], block[2]);
  L.nblocks = long(grid[0]) * grid[1] * grid[2];
  L.nthreads = int(block[0] * block[1] * block[2]);
  L.smem = smem;
  L.order = order;
  L.seed = seed;
  L.check = check;
  L.nranges = nranges;
  L.ranges = reinterpret_cast<const uint64_t*>(ranges);
  L.concurrent = concurrent != 0;
  L.resident = std::min(long(concurrent), L.nblocks);   // concurrent: how many blocks may be resident at once
  L.cluster = cluster;
  L.err = err;
  L.errlen = errlen;
  L.l2 = l2_armed;
  l2_armed = nullptr;
  if (L.l2) L.l2_blocks.resize(size_t(std::max(0L, L.nblocks)));
  bytes_out[0] = bytes_out[1] = 0;
  if (smem > kSmemCap) {
    snprintf(err, size_t(errlen), "kernel %s: %llu bytes of dynamic shared memory, more than %zu", name, smem, kSmemCap);
    return 1;
  }
  if (L.nthreads < 1 || L.nthreads > 1024 || L.nblocks < 1) {
    snprintf(err, size_t(errlen), "kernel %s: bad launch shape (%d threads per block, %ld blocks)", name,
             L.nthreads, L.nblocks);
    return 1;
  }
  if (cluster < 1 || cluster > 8) {
    snprintf(err, size_t(errlen), "kernel %s: cluster size %d is not in 1..8", name, cluster);
    return 1;
  }
  if (grid[0] % unsigned(cluster) != 0) {   // as cudaLaunchKernel refuses it
    snprintf(err, size_t(errlen), "kernel %s: grid.x = %u is not a multiple of the cluster size %d (__cluster_dims__)",
             name, grid[0], cluster);
    return 1;
  }
  long nw = concurrent ? 1 : std::max(1L, std::min(long(nworkers), L.nblocks / cluster));
  std::vector<WorkerRt> ws(static_cast<size_t>(nw));
  std::vector<pthread_t> th(static_cast<size_t>(nw));
  long started = 0;
  for (; started < nw; ++started) {
    ws[size_t(started)].L = &L;
    if (pthread_create(&th[size_t(started)], nullptr, worker_main, &ws[size_t(started)]) != 0) break;
  }
  if (started == 0) {
    snprintf(err, size_t(errlen), "kernel %s: cannot start a worker thread", name);
    return 1;
  }
  for (long i = 0; i < started; ++i) {
    pthread_join(th[size_t(i)], nullptr);
    bytes_out[0] += ws[size_t(i)].ld;
    bytes_out[1] += ws[size_t(i)].st;
  }
  if (L.failed.load()) return 1;
  if (L.l2) l2_simulate(L.l2, L.l2_blocks);
  return 0;
}
