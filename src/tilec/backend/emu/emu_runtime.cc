// tilec emulator: the runtime library, compiled once per compiler command and header set into rt-<hash>.so
// (tilec.backend.emu.build) and linked by every kernel module. Holds everything that is not a device-side fast
// path: the context switch, the launch with its worker threads, and the entry points of emu_state.h.
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

void barrier(Worker* wk) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  f->blk->at_barrier++;
  w->progress++;
  park(w, f, S_BARRIER);
}

uint64_t warp_op(Worker* wk, unsigned mask, int kind, uint64_t val, int src) {
  WorkerRt* w = rt(wk);
  Fiber* f = w->cur;
  Block* b = f->blk;
  f->wkind = kind;
  f->wmask = mask;
  f->wval = val;
  f->wsrc = src;
  b->warps[f->warp].arrived |= 1u << f->lane;
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
inline void run_blocks(WorkerRt* w) {
  LaunchRt* L = w->launch();
  int n = L->nthreads;
  std::vector<Fiber> fib(static_cast<size_t>(n));
  std::vector<Warp> warps(static_cast<size_t>((n + 31) / 32));
  Block b{};
  b.fib = fib.data();
  b.n = n;
  b.warps = warps.data();
  w->blocks.push_back(&b);
  if (!alloc_stacks(w, size_t(n))) return fail(w, "kernel %s: cannot map fiber stacks", L->name);
  for (;;) {
    if (L->failed.load(std::memory_order_relaxed)) break;
    long bi = L->next_block.fetch_add(1);
    if (bi >= L->nblocks) break;
    init_block(w, &b, bi);
    poison_tls(w);   // a read before the first write (a missing barrier) sees NaN, not the last block's data
    if (b.arena) memset(b.arena, 0xff, std::min(module_shared_total(L), kSmemCap));
    w->ready.clear();
    w->next.clear();
    w->waiting.clear();
    for (int t = 0; t < n; ++t) w->ready.push_back(&fib[size_t(t)]);
    if (!run_sched(w, true)) break;
  }
  free(b.arena);
}

inline void run_concurrent(WorkerRt* w) {
  LaunchRt* L = w->launch();
  int n = L->nthreads, nw = (n + 31) / 32;
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
    for (int t = 0; t < n; ++t) w->ready.push_back(&b.fib[t]);
  }
  run_sched(w, true);
  for (Block& b : blocks) {
    free(b.arena);
    free(b.tls_save);
  }
}

inline void* worker_main(void* arg) {
  WorkerRt* w = static_cast<WorkerRt*>(arg);
  rt_w = w;
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

// The launch behind each module's tl_emu_launch. grid/block: 3 values each; ranges: nranges [lo, hi) pairs;
// bytes_out: loaded, stored. Every launch has its own workers, so byte counts never mix across launches or
// modules. Returns 0, or 1 with a message in err.
extern "C" int tl_emu_rt_launch(const tl_emu::Module* mod, void (*tramp)(void**), void** args, const char* name,
                                const unsigned* grid, const unsigned* block, unsigned long long smem, int order,
                                unsigned long long seed, int check, int nranges, const unsigned long long* ranges,
                                int concurrent, int nworkers, unsigned long long* bytes_out, char* err, int errlen) {
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
  L.err = err;
  L.errlen = errlen;
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
  long nw = concurrent ? 1 : std::max(1L, std::min(long(nworkers), L.nblocks));
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
  return L.failed.load() ? 1 : 0;
}
