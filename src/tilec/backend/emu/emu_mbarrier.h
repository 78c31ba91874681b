// tilec emulator: the prelude's sm_90 mbarriers (tl_mbarrier_*), with the PTX ISA's phases, pending arrival
// counts and transaction counts ("Parallel Synchronization and Communication Instructions: mbarrier").
//
// An mbarrier is the 8 bytes of shared memory the kernel gives it, as on a GPU; the emulator keeps its state
// in them (the GPU's encoding is opaque):
//   bits  0..19  arrivals still pending in the current phase     bits 20..39  the expected count (init)
//   bits 40..60  tx-count, 21-bit two's complement                bits 61..62  01: initialised
//   bit  63      the current phase's parity
// Shared memory starts poisoned (all ones), so a barrier used before tl_mbarrier_init fails with a clear error.
// A phase completes when its pending arrivals reach 0 and its tx-count is 0; then the parity flips and the
// pending count is reset to the expected count. expect_tx raises the tx-count, complete_tx (a TMA copy landing,
// emu_tma.h) lowers it; it may go below 0 in between, as the ISA allows.
//
// try_wait.parity P is true once the phase of parity P has completed (the current parity differs from P).
// Before it looks, it lands the TMA copies into this block that signal this barrier (bulk_land, emu_tma.h):
// a copy's data reaches shared memory only when someone waits on its barrier, so a consumer that reads a
// stage without waiting sees poison. A wait that can never succeed (a wrong expect_tx, a missing arrive) parks
// in the runtime's wait list; when no thread can make progress the launch fails as a deadlock that names the
// barrier and its counts, instead of hanging.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "emu_api.h"

namespace tl_emu {
// The word's layout (kMbarCount, mbar_pending, mbar_pack, ...) is in emu_state.h: the runtime reads it too.
inline void bulk_land(Block* b, const unsigned long long* bar);   // emu_tma.h

[[noreturn]] inline void mbar_fail(const unsigned long long* bar, const char* what) {
  char msg[256];
  snprintf(msg, sizeof msg, "mbarrier at %p: %s", static_cast<const void*>(bar), what);
  fail_launch(tl_w, msg);
}

// The barrier's word, checked: 8-byte aligned and initialised.
inline unsigned long long& mbar_word(unsigned long long* bar) {
  if (reinterpret_cast<uintptr_t>(bar) & 7) mbar_fail(bar, "not 8-byte aligned");
  if ((*bar & kMbarMagicMask) != kMbarMagic) mbar_fail(bar, "used before tl_mbarrier_init");
  return *bar;
}

// Apply an arrival count and a tx-count change; complete the phase when both reach zero.
inline void mbar_update(unsigned long long* bar, unsigned arrivals, long tx_delta) {
  unsigned long long& v = mbar_word(bar);
  unsigned pending = mbar_pending(v), expected = mbar_expected(v), parity = mbar_parity(v);
  long tx = mbar_tx(v) + tx_delta;
  if (arrivals > pending) mbar_fail(bar, "more arrivals in one phase than its expected count");
  if (tx > kMbarTxMax || tx < -kMbarTxMax) mbar_fail(bar, "tx-count out of the ISA's range +-(2^20 - 1)");
  pending -= arrivals;
  if (pending == 0 && tx == 0) {
    pending = expected;
    parity ^= 1u;
  }
  v = mbar_pack(pending, expected, tx, parity);
}

// ---- cluster visibility of an init (fence.mbarrier_init.release.cluster) ----------------------------------
// On a GPU a peer's multicast complete_tx or remote arrive may reach a barrier whose init it cannot see yet:
// the init is visible to the cluster only after the initialising thread's fence.mbarrier_init and a cluster
// barrier that opened after that fence (CUTLASS: fence_barrier_init, then cluster_sync). The emulator runs the
// inits of every block in one phase, so it would never see the race; instead each init of a cluster kernel is
// recorded (Block::inits) and a peer's access checks the rule. Only cluster kernels pay for it.

// The name of the barrier at `bar` (an address in the running block) that every block of the cluster shares.
inline uintptr_t mbar_key(const unsigned long long* bar) {
  Block* b = tl_w->cur->blk;
  return in_arena(bar) ? reinterpret_cast<uintptr_t>(bar) - reinterpret_cast<uintptr_t>(b->arena)
                       : reinterpret_cast<uintptr_t>(bar);
}

inline void mbar_note_init(unsigned long long* bar) {
  Block* b = tl_w->cur->blk;
  uintptr_t key = mbar_key(bar);
  int i = 0;
  while (i < b->ninits && b->inits[i].key != key) ++i;
  if (i == b->cap_inits) {
    int cap = b->cap_inits ? 2 * b->cap_inits : 16;
    void* p = realloc(b->inits, size_t(cap) * sizeof(MbarInit));
    if (!p) mbar_fail(bar, "out of memory for the cluster's barrier records");
    b->inits = static_cast<MbarInit*>(p);
    b->cap_inits = cap;
  }
  if (i < b->ninits && b->inits[i].unobserved) --b->unobserved;
  if (i == b->ninits) ++b->ninits;
  // a re-init needs a new fence and cluster barrier before peers may reach it
  b->inits[i] = MbarInit{key, tl_w->cur->linear, kNoFence, in_arena(bar), false};
}

// fence.mbarrier_init: the running thread's earlier inits become visible at the next cluster barrier.
inline void mbar_init_fence() {
  Block* b = tl_w->cur->blk;
  for (int i = 0; i < b->ninits; ++i)
    if (b->inits[i].fence_gen == kNoFence && b->inits[i].thread == tl_w->cur->linear) b->inits[i].fence_gen = b->cluster_gen;
}

// The barrier at `bar`'s offset in block `rank` of the cluster (mapa), for a multicast copy's complete_tx or
// (`arrive`) a remote arrive; fails the launch when that block's init of it is not visible to the cluster yet.
// A remote arrive marks the barrier unobserved until its block waits for a phase it completed (mbar_observe).
inline unsigned long long* mbar_peer(unsigned long long* bar, unsigned rank, bool arrive) {
  auto* p = reinterpret_cast<unsigned long long*>(cluster_address(bar, rank, 8));
  Block* self = tl_w->cur->blk;
  if (rank == self->rank) return p;
  Block& owner = self->peers[rank];
  uintptr_t key = mbar_key(bar);
  for (int i = 0; i < owner.ninits; ++i) {
    MbarInit& m = owner.inits[i];
    if (m.key != key) continue;
    if (m.fence_gen != kNoFence && owner.cluster_gen > m.fence_gen) {
      if (arrive && !m.unobserved) {
        m.unobserved = true;
        ++owner.unobserved;
      }
      return p;
    }
    char msg[320];
    snprintf(msg, sizeof msg,
             "reaches the mbarrier at %p of cluster rank %u (a multicast copy's complete_tx or a remote arrive) "
             "before its init is visible to the cluster: %s",
             static_cast<const void*>(p), rank,
             m.fence_gen == kNoFence
                 ? "the initialising thread issued no tl_mbarrier_init_fence (fence.mbarrier_init.release.cluster) "
                   "after tl_mbarrier_init"
                 : "no tl_cluster_sync opened after the init and its tl_mbarrier_init_fence");
    fail_launch(tl_w, msg);
  }
  return p;   // never initialised: mbar_word reports it
}

// A thread of the owning block saw the phase of `bar` complete. When no arrival of a later phase is in (the
// barrier is between phases), every remote arrive it received has been observed: the block may exit.
inline void mbar_observe(Block* b, unsigned long long* bar) {
  uint64_t v = *bar;
  if (mbar_pending(v) != mbar_expected(v) || mbar_tx(v) != 0) return;
  uintptr_t key = mbar_key(bar);
  for (int i = 0; i < b->ninits; ++i)
    if (b->inits[i].key == key && b->inits[i].unobserved) {
      b->inits[i].unobserved = false;
      --b->unobserved;
    }
}

inline void mbar_init(unsigned long long* bar, unsigned count) {
  if (reinterpret_cast<uintptr_t>(bar) & 7) mbar_fail(bar, "not 8-byte aligned");
  if (count < 1 || count > kMbarCount) mbar_fail(bar, "init count outside 1..2^20-1");
  *bar = mbar_pack(count, count, 0, 0);
  if (tl_w->L->cluster > 1) mbar_note_init(bar);
}

// The state token mbarrier.arrive returns: the parity of the phase it arrived in (bit 63), as tests need.
inline uint64_t mbar_arrive(unsigned long long* bar, unsigned count, long tx) {
  uint64_t before = mbar_word(bar);
  mbar_update(bar, count, tx);
  return before & (uint64_t(1) << 63);
}

inline bool mbar_try_wait(unsigned long long* bar, unsigned parity) {
  Block* b = tl_w->cur->blk;
  bulk_land(b, bar);
  bool done = mbar_parity(mbar_word(bar)) != (parity & 1u);
  if (done && __builtin_expect(b->unobserved, 0)) mbar_observe(b, bar);   // cluster kernels only
  return done;
}

struct MbarWait { unsigned long long* bar; unsigned parity; };
inline bool mbar_ready(void* arg) {
  MbarWait* m = static_cast<MbarWait*>(arg);
  return mbar_try_wait(m->bar, m->parity);
}
inline void mbar_describe(void* arg, char* out, size_t n) {
  MbarWait* m = static_cast<MbarWait*>(arg);
  uint64_t v = *m->bar;
  long tx = mbar_tx(v);
  snprintf(out, n,
           "waiting for phase parity %u of the mbarrier at %p, still in that phase with %u of %u arrivals "
           "pending and tx-count %ld%s",
           m->parity & 1u, static_cast<void*>(m->bar), mbar_pending(v), mbar_expected(v), tx,
           tx > 0   ? " (expect_tx bytes that no copy delivered: a wrong expect_tx or a missing TMA load?)"
           : tx < 0 ? " (copies delivered more bytes than expect_tx announced)"
                    : "");
}

inline void mbar_wait(unsigned long long* bar, unsigned parity) {
  MbarWait m{bar, parity};
  if (mbar_try_wait(bar, parity)) return;
  wait_until(tl_w, mbar_ready, mbar_describe, &m);
}
}  // namespace tl_emu

inline void tl_mbarrier_init(unsigned long long* bar, unsigned count) { tl_emu::mbar_init(bar, count); }
// fence.mbarrier_init.release.cluster: orders the thread's inits before peers' use (cluster kernels only).
inline void tl_mbarrier_init_fence() {
  if (tl_emu::tl_w->L->cluster > 1) tl_emu::mbar_init_fence();
}
inline uint64_t tl_mbarrier_arrive(unsigned long long* bar) { return tl_emu::mbar_arrive(bar, 1, 0); }
inline uint64_t tl_mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
  return tl_emu::mbar_arrive(bar, 1, long(bytes));
}
inline void tl_mbarrier_expect_tx(unsigned long long* bar, unsigned bytes) { tl_emu::mbar_update(bar, 0, long(bytes)); }
inline void tl_mbarrier_complete_tx(unsigned long long* bar, unsigned bytes) { tl_emu::mbar_update(bar, 0, -long(bytes)); }
// mbarrier.arrive.shared::cluster (default semantics, as the prelude issues it) on the barrier at bar's shared
// offset in block `rank` of the cluster (tl_cluster_map's rule: TL_SHARED, plain or extern __shared__), as
// CUTLASS's ClusterBarrier::arrive(cta_id).
inline void tl_mbarrier_arrive_cluster(unsigned long long* bar, unsigned rank) {
  tl_emu::mbar_arrive(tl_emu::mbar_peer(bar, rank, true), 1, 0);
}
inline bool tl_mbarrier_try_wait_parity(unsigned long long* bar, unsigned parity) { return tl_emu::mbar_try_wait(bar, parity); }
inline void tl_mbarrier_wait_parity(unsigned long long* bar, unsigned parity) { tl_emu::mbar_wait(bar, parity); }
