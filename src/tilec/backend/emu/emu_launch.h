// tilec emulator: a launch. Normal mode spreads blocks over a pool of OS threads (each block's threads are
// fibers on one of them); concurrent mode runs every block of the grid as fibers of one OS thread, so
// persistent kernels whose blocks wait on each other (tl_wait_geq) make progress or fail as a deadlock.
#pragma once
#include "emu_api.h"

namespace tl_emu {
inline void run_blocks(Worker* w) {
  Launch* L = w->L;
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
    if (b.arena) memset(b.arena, 0xff, std::min(g_shared_total.load(), kSmemCap));
    w->ready.clear();
    w->next.clear();
    w->waiting.clear();
    for (int t = 0; t < n; ++t) w->ready.push_back(&fib[size_t(t)]);
    if (!run_sched(w, true)) break;
  }
  free(b.arena);
}

inline void run_concurrent(Worker* w) {
  Launch* L = w->L;
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
  Worker* w = static_cast<Worker*>(arg);
  tl_w = w;   // first touch allocates this module's TLS block on this thread
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

// The runner's entry point. grid/block: 3 values each; ranges: nranges [lo, hi) pairs; bytes_out: loaded,
// stored. Returns 0, or 1 with a message in err.
extern "C" __attribute__((visibility("default"))) int tl_emu_launch(
    void (*tramp)(void**), void** args, const char* name, const unsigned* grid, const unsigned* block,
    unsigned long long smem, int order, unsigned long long seed, int check, int nranges,
    const unsigned long long* ranges, int concurrent, int nworkers, unsigned long long* bytes_out, char* err,
    int errlen) {
  using namespace tl_emu;
  Launch L;
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
  std::vector<Worker> ws(static_cast<size_t>(nw));
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
