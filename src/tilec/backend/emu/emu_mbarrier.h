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

#include "emu_api.h"

namespace tl_emu {
constexpr uint64_t kMbarCount = (1u << 20) - 1;
constexpr uint64_t kMbarMagic = uint64_t(1) << 61;
constexpr uint64_t kMbarMagicMask = uint64_t(3) << 61;
constexpr long kMbarTxMax = (1l << 20) - 1;   // the ISA's tx-count range is +-(2^20 - 1)

inline void bulk_land(Block* b, const unsigned long long* bar);   // emu_tma.h

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

inline void mbar_init(unsigned long long* bar, unsigned count) {
  if (reinterpret_cast<uintptr_t>(bar) & 7) mbar_fail(bar, "not 8-byte aligned");
  if (count < 1 || count > kMbarCount) mbar_fail(bar, "init count outside 1..2^20-1");
  *bar = mbar_pack(count, count, 0, 0);
}

// The state token mbarrier.arrive returns: the parity of the phase it arrived in (bit 63), as tests need.
inline uint64_t mbar_arrive(unsigned long long* bar, unsigned count, long tx) {
  uint64_t before = mbar_word(bar);
  mbar_update(bar, count, tx);
  return before & (uint64_t(1) << 63);
}

inline bool mbar_try_wait(unsigned long long* bar, unsigned parity) {
  bulk_land(tl_w->cur->blk, bar);
  return mbar_parity(mbar_word(bar)) != (parity & 1u);
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
inline void tl_mbarrier_init_fence() {}   // orders init before other blocks' use; the emulator is sequential
inline uint64_t tl_mbarrier_arrive(unsigned long long* bar) { return tl_emu::mbar_arrive(bar, 1, 0); }
inline uint64_t tl_mbarrier_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
  return tl_emu::mbar_arrive(bar, 1, long(bytes));
}
inline void tl_mbarrier_expect_tx(unsigned long long* bar, unsigned bytes) { tl_emu::mbar_update(bar, 0, long(bytes)); }
inline void tl_mbarrier_complete_tx(unsigned long long* bar, unsigned bytes) { tl_emu::mbar_update(bar, 0, -long(bytes)); }
// mbarrier.arrive.release.cluster on the barrier at bar's shared offset in block `rank` of the cluster
// (tl_cluster_map's rule: TL_SHARED, plain or extern __shared__), as CUTLASS's ClusterBarrier::arrive(cta_id).
inline void tl_mbarrier_arrive_cluster(unsigned long long* bar, unsigned rank) {
  tl_emu::mbar_arrive(reinterpret_cast<unsigned long long*>(tl_emu::cluster_address(bar, rank, 8)), 1, 0);
}
inline bool tl_mbarrier_try_wait_parity(unsigned long long* bar, unsigned parity) { return tl_emu::mbar_try_wait(bar, parity); }
inline void tl_mbarrier_wait_parity(unsigned long long* bar, unsigned parity) { tl_emu::mbar_wait(bar, parity); }
