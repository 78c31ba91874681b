// tilec emulator: the execution model. A Worker (one OS thread) runs blocks; a block's threads are Fibers
// resumed in phases. A phase resumes every runnable fiber once, in the launch's order (normal / reverse /
// seeded shuffle); each runs until it exits or blocks at __syncthreads, a warp rendezvous or tl_wait_geq.
// A barrier opens when every live thread of the block has arrived (exited threads no longer count). A
// thread that never blocks runs start to finish on a recycled stack: two context switches, nothing more.
// A cluster kernel's worker runs a whole cluster at a time (as concurrent mode runs the whole grid): its
// blocks' fibers share one scheduler and phases, tl_cluster_sync opens when every live thread of every block
// of the cluster has arrived, and each block has its own TL_SHARED arena and swapped __shared__ arrays.
// Private to the runtime library (emu_runtime.cc, compiled once per cache); kernel modules see emu_state.h.
#pragma once
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "emu_l2.h"
#include "emu_state.h"

namespace tl_emu {
constexpr size_t kStack = 64 * 1024;   // per fiber; kernels keep register tiles, not deep call chains
constexpr size_t kGuard = 4096;        // a PROT_NONE page under every stack turns overflow into a crash, not corruption

enum Order { O_NORMAL = 0, O_REVERSE = 1, O_SHUFFLE = 2 };

struct LaunchRt : Launch {
  long resident = 0;   // concurrent mode: blocks resident at once (resident-limit mode when below nblocks)
  std::atomic<long> next_block{0};
  std::atomic<int> failed{0};
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  char* err;
  int errlen;
  L2Request* l2 = nullptr;                      // the L2 model, when armed (tl_emu_rt_l2_arm)
  std::vector<std::vector<uint64_t>> l2_blocks;   // per block (linear id): its sorted granule entries
};
struct Span { char* p; size_t n; };
struct WorkerRt : Worker {
  Context sched;
  std::vector<Fiber*> ready, next, waiting;
  std::vector<Block*> blocks;
  std::vector<char*> free_stacks;
  char* stack_region = nullptr;
  size_t stack_bytes = 0;
  uint64_t progress = 0;
  std::vector<Span> spans;   // the kernel module's TLS block (plain __shared__ arrays), less unused dynamic smem
  size_t span_total = 0;
  Block* resident = nullptr;
  size_t admitted = 0, finished = 0;   // concurrent mode: blocks of w->blocks started so far, and exited
  bool stop = false;
  LaunchRt* launch() const { return static_cast<LaunchRt*>(L); }
};
inline WorkerRt* rt(Worker* w) { return static_cast<WorkerRt*>(w); }

// The runtime's own handle on the running worker (fiber_entry has no arguments). Kernel modules have theirs
// (Module::bind); this one is in the runtime's TLS block, which is never poisoned.
inline thread_local WorkerRt* rt_w = nullptr;

inline void fail(WorkerRt* w, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
inline void fail(WorkerRt* w, const char* fmt, ...) {
  LaunchRt* L = w->launch();
  pthread_mutex_lock(&L->mu);
  if (!L->failed.load()) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err, size_t(L->errlen), fmt, ap);
    va_end(ap);
    L->failed.store(1);
  }
  pthread_mutex_unlock(&L->mu);
  w->stop = true;
}

// Leave the current fiber for good (after fail): the scheduler sees `stop` and ends the launch.
[[noreturn]] inline void abandon(WorkerRt* w) {
  Fiber* f = w->cur;
  f->state = S_DONE;
  context_switch(&f->ctx, &w->sched);
  __builtin_unreachable();
}

// Shared-memory arenas start on a 1024-byte boundary, as a GPU's shared window does, so offsets inside them
// keep the alignment the swizzle patterns (emu_tma.h, emu_wgmma.h) and TMA multicast's same-offset rule need.
inline char* alloc_poisoned(size_t n) {
  char* p = static_cast<char*>(aligned_alloc(1024, n));
  if (p) memset(p, 0xff, n);
  return p;
}

// ---- the kernel module's thread-local block: where `__shared__` (thread_local) arrays live -------------
struct TlsFind { uintptr_t addr; char* data; size_t size; };
inline int tls_find_cb(struct dl_phdr_info* info, size_t, void* d) {
  TlsFind* t = static_cast<TlsFind*>(d);
  bool mine = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const auto& ph = info->dlpi_phdr[i];
    uintptr_t lo = info->dlpi_addr + ph.p_vaddr;
    if (ph.p_type == PT_LOAD && t->addr >= lo && t->addr < lo + ph.p_memsz) mine = true;
  }
  if (!mine) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i)
    if (info->dlpi_phdr[i].p_type == PT_TLS) {
      t->size = info->dlpi_phdr[i].p_memsz;
      t->data = static_cast<char*>(info->dlpi_tls_data);
    }
  return 1;
}

// Spans to poison (and, in concurrent mode, to swap per block): the module's TLS block, minus the dynamic
// shared arrays' tails beyond this launch's smem bytes (they are 227 KiB each and mostly unused). The module
// is the object that holds its bind hook; binding first has allocated the block on this thread.
inline void find_tls(WorkerRt* w) {
  const Module* m = w->L->mod;
  TlsFind t{reinterpret_cast<uintptr_t>(m->bind), nullptr, 0};
  dl_iterate_phdr(tls_find_cb, &t);
  if (!t.data || !t.size) {
    // The module's tl_w is thread-local, so the block exists; not finding it means the libc does not report
    // it. Normal mode only loses poisoning; concurrent mode would silently share __shared__ across blocks.
    if (w->L->concurrent) fail(w, "kernel %s: cannot locate thread-local shared memory for concurrent mode", w->L->name);
    return;
  }
  std::vector<std::pair<char*, char*>> holes;
  for (int i = 0; i < m->ndyn; ++i) {
    char* a = static_cast<char*>(m->dyn_address(i));
    holes.push_back({a + w->L->smem, a + kSmemCap});
  }
  std::sort(holes.begin(), holes.end());
  char* p = t.data;
  char* end = t.data + t.size;
  for (auto& h : holes) {
    char* lo = std::max(p, std::min(h.first, end));
    if (lo > p) w->spans.push_back({p, size_t(lo - p)});
    p = std::max(p, std::min(h.second, end));
  }
  if (end > p) w->spans.push_back({p, size_t(end - p)});
  for (auto& s : w->spans) w->span_total += s.n;
}

inline void poison_tls(WorkerRt* w) {
  for (auto& s : w->spans) memset(s.p, 0xff, s.n);
  w->L->mod->bind(w);   // the module's tl_w lives in the same TLS block
}

// Concurrent mode: blocks share one OS thread, so their plain __shared__ arrays are swapped in and out.
inline void swap_tls(WorkerRt* w, Block* b) {
  if (w->resident && w->span_total) {
    Block* r = w->resident;
    if (!r->tls_save) r->tls_save = static_cast<char*>(malloc(w->span_total));
    char* q = r->tls_save;
    for (auto& s : w->spans) { memcpy(q, s.p, s.n); q += s.n; }
  }
  if (b->tls_save) {
    const char* q = b->tls_save;
    for (auto& s : w->spans) { memcpy(s.p, q, s.n); q += s.n; }
    w->L->mod->bind(w);
  } else {
    poison_tls(w);
  }
  w->resident = b;
}

// ---- TL_SHARED: one arena per block (offsets are the module's; see emu_api.h) ------------------------------
inline size_t module_shared_total(const Launch* L) {
  return __atomic_load_n(L->mod->shared_total, __ATOMIC_RELAXED);
}

// ---- fibers --------------------------------------------------------------------------------------------
inline bool alloc_stacks(WorkerRt* w, size_t count) {
  size_t slot = kStack + kGuard;
  w->stack_bytes = slot * count;
  void* m = mmap(nullptr, w->stack_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return false;
  w->stack_region = static_cast<char*>(m);
  // Guards split the mapping; past a few thousand stacks that would exhaust vm.max_map_count.
  bool guard = count <= 8192;
  for (size_t i = count; i-- > 0;) {
    char* s = w->stack_region + i * slot;
    if (guard) mprotect(s, kGuard, PROT_NONE);
    w->free_stacks.push_back(s + kGuard);
  }
  return true;
}

inline bool warp_try_complete(WorkerRt* w, Block* b, int warp, Fiber* self);

// ---- warpgroups (wgmma's rendezvous, group_sync) -----------------------------------------------------------
constexpr int kGroup = 128;
// Complete the warpgroup of threads [lo, lo + 128) when every member that has not exited is parked in
// group_sync (or is `self`, arriving last): the parked ones run in the next phase, `self` goes on.
inline bool group_try_complete(WorkerRt* w, Block* b, int lo, Fiber* self) {
  int hi = std::min(lo + kGroup, b->n), parked = 0;
  for (int t = lo; t < hi; ++t) {
    State s = b->fib[t].state;
    if (s != S_DONE && s != S_GROUP && &b->fib[t] != self) return false;
    parked += s == S_GROUP;
  }
  if (!parked && !self) return false;
  b->at_group -= parked;
  for (int t = lo; t < hi; ++t)
    if (b->fib[t].state == S_GROUP) {
      b->fib[t].state = S_READY;
      w->next.push_back(&b->fib[t]);
    }
  return true;
}

// A malloc'd chain whose nodes start with their next pointer (Block::bulk).
inline void free_chain(void* p) {
  while (p) {
    void* next = *static_cast<void**>(p);
    free(p);
    p = next;
  }
}

// A cluster block's last thread is leaving: every barrier it initialised must be between phases. One that is
// mid-phase (some arrivals of its phase in, or bytes announced that no copy delivered) still expects arrivals
// or multicast bytes, which only a peer can bring now, into a block that has exited (its shared memory gone: a
// missing producer tail). Checked at the exit, not at the peer's late arrive, so it fails in every schedule.
inline void check_exit_barriers(WorkerRt* w, Block* b) {
  for (int i = 0; i < b->ninits; ++i) {
    const MbarInit& m = b->inits[i];
    // the block is resident (its last thread runs): a __shared__ barrier's word is at its own address
    const uint64_t* p = reinterpret_cast<const uint64_t*>(m.arena ? b->arena + m.key : reinterpret_cast<char*>(m.key));
    uint64_t v = *p;
    if ((v & kMbarMagicMask) != kMbarMagic) continue;   // re-purposed memory: not a barrier any more
    if (m.unobserved)
      return fail(w,
                  "kernel %s: block (%u,%u,%u) exits before any of its threads waited for the phase that a cluster "
                  "peer's remote arrive completed on its mbarrier at %p: on a GPU that arrive may reach the shared "
                  "memory of a peer that has exited (keep every block until its peers are done with it: wait for "
                  "every stage's final release, the producer tail)",
                  w->L->name, b->bid.x, b->bid.y, b->bid.z, static_cast<const void*>(p));
    if (mbar_pending(v) == mbar_expected(v) && mbar_tx(v) == 0) continue;
    return fail(w,
                "kernel %s: block (%u,%u,%u) exits while its mbarrier at %p is mid-phase (%u of %u arrivals pending, "
                "tx-count %ld): a cluster peer's remaining remote arrives or multicast bytes would reach the shared "
                "memory of a peer that has exited (keep every block until its peers are done with it: wait for "
                "every stage's final release, the producer tail)",
                w->L->name, b->bid.x, b->bid.y, b->bid.z, static_cast<const void*>(p), mbar_pending(v),
                mbar_expected(v), mbar_tx(v));
  }
}

[[noreturn]] inline void thread_exit(WorkerRt* w, Fiber* f) {
  Block* b = f->blk;
  Warp& W = b->warps[f->warp];
  if (--b->live == 0) {
    w->finished++;
    if (b->ninits) check_exit_barriers(w, b);   // only cluster kernels record their inits
  }
  W.live &= ~(uint64_t(1) << f->lane);
  w->progress++;
  f->state = S_DONE;
  free(f->async);   // copies never waited for: their data never lands (emu_async.h)
  f->async = nullptr;
  free(f->wgmma);   // wgmma results never waited for never land (emu_wgmma.h)
  f->wgmma = nullptr;
  if (b->at_group) group_try_complete(w, b, f->linear & ~(kGroup - 1), nullptr);   // its warpgroup may be waiting
  if (W.arrived) warp_try_complete(w, b, f->warp, nullptr);   // lanes may have been waiting for this one
  context_switch(&f->ctx, &w->sched);
  __builtin_unreachable();
}

inline void fiber_entry() {
  WorkerRt* w = rt_w;
  w->L->tramp(w->L->args);
  thread_exit(rt_w, rt_w->cur);
}

inline void resume(WorkerRt* w, Fiber* f) {
  if ((w->L->concurrent || w->L->cluster > 1) && w->resident != f->blk) swap_tls(w, f->blk);
  if (f->state == S_NEW) {
    f->stack = w->free_stacks.back();
    w->free_stacks.pop_back();
    context_init(&f->ctx, f->stack, kStack, fiber_entry);
  }
  f->state = S_RUN;
  w->cur = f;
  w->log = f->blk->sectors;   // the L2 model's hook reads it on every access (null when the model is off)
  context_switch(&w->sched, &f->ctx);
  w->cur = nullptr;
  if (f->state == S_DONE && f->stack) {   // the next fresh thread reuses this (cache-hot) stack
    w->free_stacks.push_back(f->stack);
    f->stack = nullptr;
  }
}

// Park the running fiber in `state` and return to the scheduler.
inline void park(WorkerRt* w, Fiber* f, State state) {
  f->state = state;
  context_switch(&f->ctx, &w->sched);
}

// ---- warps -----------------------------------------------------------------------------------------------
// Complete every group of lanes whose members (its mask, less exited lanes) have all arrived. The last
// arriver (`self`) keeps running; the others become runnable in the next phase.
inline bool warp_try_complete(WorkerRt* w, Block* b, int warp, Fiber* self) {
  Warp& W = b->warps[warp];
  Fiber* lanes = b->fib + warp * kWarp;
  bool self_done = false;
  uint64_t pending = W.arrived;
  while (pending) {
    int l = __builtin_ctzll(pending);
    uint64_t need = (lanes[l].wmask & W.live) | (uint64_t(1) << l);
    pending &= ~(uint64_t(1) << l);
    if ((W.arrived & need) != need) continue;
    int kind = lanes[l].wkind;
    if (kind == W_SHFL) {
      for (uint64_t m = need; m; m &= m - 1) {
        int L = __builtin_ctzll(m), s = lanes[L].wsrc;
        lanes[L].wres = (s >= 0 && s < kWarp && ((need >> s) & 1u)) ? lanes[s].wval : lanes[L].wval;
      }
    } else if (kind == W_BALLOT || kind == W_ALL) {
      uint64_t bits = 0;
      for (uint64_t m = need; m; m &= m - 1) {
        int L = __builtin_ctzll(m);
        if (lanes[L].wval) bits |= uint64_t(1) << L;
      }
      for (uint64_t m = need; m; m &= m - 1) lanes[__builtin_ctzll(m)].wres = kind == W_BALLOT ? bits : (bits == need);
    }
    W.arrived &= ~need;
    pending &= ~need;
    for (uint64_t m = need; m; m &= m - 1) {
      Fiber* f = &lanes[__builtin_ctzll(m)];
      if (f == self) {
        self_done = true;
      } else {
        f->state = S_READY;
        w->next.push_back(f);
      }
    }
  }
  return self_done;
}

// ---- the scheduler ---------------------------------------------------------------------------------------
inline uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

inline void order_phase(WorkerRt* w, std::vector<Fiber*>& v, bool sorted) {
  if (!sorted)
    std::sort(v.begin(), v.end(), [](Fiber* a, Fiber* b) {
      return a->blk->linear != b->blk->linear ? a->blk->linear < b->blk->linear : a->linear < b->linear;
    });
  if (v.empty()) return;
  if (w->L->order == O_REVERSE) {
    std::reverse(v.begin(), v.end());
  } else if (w->L->order == O_SHUFFLE) {
    Block* b = v[0]->blk;   // seeded per block and phase, so the result does not depend on OS threads
    uint64_t s = splitmix(w->L->seed ^ splitmix(uint64_t(b->linear) * 1000003u + b->phase++));
    for (size_t i = v.size(); i > 1; --i) {
      s = splitmix(s);
      std::swap(v[i - 1], v[s % i]);
    }
  }
}

// Resident-limit mode: start the grid's next blocks, in order, while fewer than L->resident are live, as a
// GPU's block scheduler fills the slots blocks free when they exit (whole clusters at a time). Their threads
// run in the next phase.
inline void admit(WorkerRt* w) {
  const LaunchRt* L = w->launch();
  size_t X = size_t(L->cluster), cap = std::max(X, size_t(L->resident) / X * X);
  while (w->admitted < w->blocks.size() && w->admitted - w->finished + X <= cap)
    for (size_t r = 0; r < X; ++r) {
      Block* b = w->blocks[w->admitted++];
      for (int t = 0; t < b->n; ++t) w->next.push_back(&b->fib[t]);
    }
}

// What a deadlock in resident-limit mode owes to the limit: blocks that never started.
inline void resident_note(WorkerRt* w, char* out, size_t n) {
  const LaunchRt* L = w->launch();
  out[0] = 0;
  if (L->concurrent && L->resident < L->nblocks)
    snprintf(out, n, "; resident-limit mode: at most %ld of the grid's %ld blocks resident at once, %zu never "
             "started", L->resident, L->nblocks, w->blocks.size() - w->admitted);
}

inline void report_deadlock(WorkerRt* w) {
  int bar = 0, warp = 0, wait = 0, clu = 0, grp = 0, mbar = 0;
  Block* first = nullptr;
  Fiber* stuck = nullptr;   // the first thread in an mbarrier wait
  for (Block* b : w->blocks)
    for (int t = 0; t < b->n; ++t) {
      State s = b->fib[t].state;
      bar += s == S_BARRIER;
      warp += s == S_WARP;
      wait += s == S_WAIT;
      clu += s == S_CLUSTER;
      grp += s == S_GROUP;
      mbar += s == S_MBAR;
      if (!stuck && s == S_MBAR) stuck = &b->fib[t];
      if (!first && s != S_DONE) first = b;
    }
  uint3 id = first ? first->bid : uint3{0, 0, 0};
  char note[256], hop[1024] = "", what[640] = "";
  resident_note(w, note, sizeof note);
  if (stuck) {
    // Its barrier may be a plain or dynamic __shared__ word: read it with the stuck thread's block resident.
    if ((w->L->concurrent || w->L->cluster > 1) && w->resident != stuck->blk) swap_tls(w, stuck->blk);
    auto describe = reinterpret_cast<void (*)(void*, char*, size_t)>(stuck->wres);
    describe(reinterpret_cast<void*>(stuck->wval), what, sizeof what);
  }
  if (grp || mbar)
    snprintf(hop, sizeof hop, ", %d at a warpgroup rendezvous (wgmma), %d in mbarrier waits%s%s", grp, mbar,
             stuck ? " (first: " : "", stuck ? what : "");
  if (stuck) snprintf(hop + strlen(hop), sizeof hop - strlen(hop), ", thread %d of block (%u,%u,%u))",
                      stuck->linear, stuck->blk->bid.x, stuck->blk->bid.y, stuck->blk->bid.z);
  fail(w,
       "kernel %s: deadlock%s (first stuck block (%u,%u,%u)): %d threads at __syncthreads, %d in warp "
       "operations, %d at tl_cluster_sync, %d in tl_wait_geq with no progress%s%s%s",
       w->L->name, w->L->concurrent ? " with concurrent blocks" : "", id.x, id.y, id.z, bar, warp, clu, wait,
       (wait && !w->L->concurrent) ? "; blocks of a launch only wait for each other with concurrent_blocks=True" : "",
       hop, note);
}

// Run w->ready (and everything it unblocks) until every fiber of w->blocks has exited; false on failure.
inline bool run_sched(WorkerRt* w, bool sorted) {
  order_phase(w, w->ready, sorted);
  for (;;) {
    for (size_t i = 0; i < w->ready.size(); ++i) {
      resume(w, w->ready[i]);
      if (w->stop) return false;
    }
    w->ready.clear();
    if (w->admitted < w->blocks.size() && w->L->concurrent) admit(w);
    if (!w->next.empty()) {
      std::swap(w->ready, w->next);
      order_phase(w, w->ready, false);
      continue;
    }
    for (Block* b : w->blocks) {
      if (!b->at_barrier || b->at_barrier != b->live) continue;
      b->at_barrier = 0;
      b->bar_result = b->bar_accum;
      b->bar_accum = 0;
      for (int t = 0; t < b->n; ++t)
        if (b->fib[t].state == S_BARRIER) {
          b->fib[t].state = S_READY;
          w->ready.push_back(&b->fib[t]);
        }
    }
    // Cluster barriers (tl_cluster_sync): w->blocks holds whole clusters, in rank order; without clusters
    // each block is its own, so there it is one more block-wide barrier.
    size_t opened = w->ready.size(), X = size_t(w->L->cluster);
    for (size_t c = 0; c + X <= w->blocks.size(); c += X) {
      int arrived = 0, live = 0;
      for (size_t r = 0; r < X; ++r) {
        arrived += w->blocks[c + r]->at_cluster;
        live += w->blocks[c + r]->live;
      }
      if (!arrived || arrived != live) continue;
      for (size_t r = 0; r < X; ++r) {
        Block* b = w->blocks[c + r];
        b->at_cluster = 0;
        b->cluster_synced = 1;   // its peers have all started: it may reach their shared memory (cluster_address)
        ++b->cluster_gen;        // publishes the barrier inits fenced before it (emu_mbarrier.h)
        for (int i = 0; b->unobserved && i < b->ninits; ++i) b->inits[i].unobserved = false;   // arrives ordered
        b->unobserved = 0;
        for (int t = 0; t < b->n; ++t)
          if (b->fib[t].state == S_CLUSTER) {
            b->fib[t].state = S_READY;
            w->ready.push_back(&b->fib[t]);
          }
      }
    }
    bool sorted_ready = opened == 0 || opened == w->ready.size();   // one kind of barrier opened
    if (!w->ready.empty()) {
      order_phase(w, w->ready, sorted_ready);   // built in (block, thread) order, unless both kinds opened
      continue;
    }
    if (!w->waiting.empty()) {
      // Nothing else can run: let the waiters re-check. If none gets past its flag, nothing ever will.
      uint64_t before = w->progress;
      std::swap(w->ready, w->waiting);
      order_phase(w, w->ready, false);
      for (size_t i = 0; i < w->ready.size(); ++i) {
        resume(w, w->ready[i]);
        if (w->stop) return false;
      }
      w->ready.clear();
      if (w->progress == before && w->next.empty()) {
        report_deadlock(w);
        return false;
      }
      continue;
    }
    bool live = false;
    for (Block* b : w->blocks) live |= b->live > 0;
    if (!live) return true;
    report_deadlock(w);
    return false;
  }
}

inline void init_block(WorkerRt* w, Block* b, long linear) {
  const Launch* L = w->L;
  long gx = L->grid.x, gy = L->grid.y;
  b->bid = uint3{unsigned(linear % gx), unsigned((linear / gx) % gy), unsigned(linear / (gx * gy))};
  b->linear = linear;
  b->live = b->n;
  b->at_barrier = b->bar_accum = b->bar_result = 0;
  b->phase = 0;
  b->rank = unsigned(linear % L->cluster);   // grid.x is a multiple of the cluster size
  b->peers = b - b->rank;                    // the cluster's Blocks are contiguous, in rank order
  b->at_cluster = 0;
  b->cluster_synced = 0;
  b->cluster_gen = 0;
  b->ninits = 0;   // the list's storage is kept for the next block run in this slot
  b->unobserved = 0;
  free_chain(b->bulk);   // TMA copies a failed or finished block never waited for
  b->bulk = nullptr;
  b->at_group = 0;
  for (int k = 0; k * kWarp < b->n; ++k) {
    int lanes = std::min(kWarp, b->n - k * kWarp);
    b->warps[k].live = lanes == 64 ? ~uint64_t(0) : ((uint64_t(1) << lanes) - 1u);
    b->warps[k].arrived = 0;
  }
  unsigned bx = L->block.x, by = L->block.y;
  for (int t = 0; t < b->n; ++t) {
    Fiber& f = b->fib[t];
    f.tid = uint3{unsigned(t) % bx, (unsigned(t) / bx) % by, unsigned(t) / (bx * by)};
    f.linear = t;
    f.lane = t % kWarp;
    f.warp = t / kWarp;
    f.state = S_NEW;
    f.blk = b;
    f.stack = nullptr;
    f.async = nullptr;
    f.wgmma = nullptr;
  }
}
}  // namespace tl_emu
