// tilec emulator: the prelude's sm_90a warpgroup MMAs (tl_wgmma_*: wgmma.mma_async.sync.aligned.m64nNk16
// .f32.{f16,bf16} and m64nNk8.f32.tf32, A and B from shared-memory matrix descriptors or A from registers) and
// their ordering instructions (tl_wgmma_fence, tl_wgmma_commit, tl_wgmma_wait<N>), after the PTX ISA
// ("Asynchronous Warpgroup Level Matrix Multiply-Accumulate Instructions"); also setmaxnreg, the other
// warpgroup-collective instruction, and the per-thread state TMA stores keep (emu_tma_store.h).
//
// Warpgroup-collective: the 128 threads of a warpgroup meet at the runtime's rendezvous (group_sync), each
// bringing its accumulator registers (and A registers for the .rs forms); the first to continue reads the
// operands and computes the whole 64xN tile for all of them, while the others are parked. Accumulators use the
// ISA's D fragment over the warpgroup: warp w of the group owns rows 16w..16w+15; with g = lane / 4 and
// t = lane % 4, register 4i + q holds D[16w + g + 8(q / 2)][8i + 2t + q % 2]. A from registers has mma.sync's
// m16n8k16 A fragment (tf32: m16n8k8's) per warp, rows offset by 16w.
//
// Asynchronous: the results do not reach the registers at the instruction. They wait in the thread's pending
// list, tagged with its commit group (tl_wgmma_commit), and the registers hold NaN; tl_wgmma_wait<N> lands every
// group but the newest N. So reading an accumulator before the wait that covers it reads NaN, as a missing
// wait would read garbage on a GPU. A later wgmma whose accumulators are still pending (the chaining the ISA
// orders by itself, same registers, same shape) starts from the pending values. The operands are read at
// issue and hashed; the first wait that lands the results reads them again, and a difference (the kernel
// refilled or reused a stage before the wait: a race on a GPU, which reads them asynchronously) fails.
//
// Fences: the ISA requires wgmma.fence before the first wgmma and between a thread's own accesses to the
// registers and a wgmma that uses them. The emulator cannot see register accesses, so it checks a cheap rule
// that a correct mainloop satisfies: a wgmma that does not chain on pending accumulators (or reads A from
// registers) needs a tl_wgmma_fence since the thread's last tl_wgmma_wait (or since the start); otherwise the
// launch fails naming the missing fence. This is stricter than the ISA after a wait that no register access
// follows (CUTLASS fences there too).
//
// Descriptors (tl_wgmma_desc): the ISA's 64-bit matrix descriptor (bits 0-13 start address >> 4, 16-29
// leading byte offset >> 4, 32-45 stride byte offset >> 4, 49-51 base offset, 62-63 swizzle: 0 none, 1 128B,
// 2 64B, 3 32B). The emulator's shared memory is not one 256 KiB window, so tl_wgmma_desc also writes which
// region the start address is in (bits 56-59, reserved on a GPU: 1 the TL_SHARED arena, 2 + i the i-th
// extern __shared__ array); the start field holds the address's low 18 bits as on a GPU, so adding to the
// descriptor (stepping K) works the same. Canonical layouts (CUTLASS cute/atom/mma_traits_sm90_gmma.hpp, in
// 16-byte chunks, T = elements per chunk, W = 1/2/4/8 for none/32B/64B/128B):
//   K-major:  element (mn, k), mn = r + 8i, k = e + Tj:  (r * 16W + i * SBO + j * (W == 1 ? LBO : 16)) + e * size
//   MN-major: mn = e + Tv + TWi, k = r + 8j:  swizzled e * size + 16v + i * LBO + 16W r + j * SBO;
//                                             none     e * size + i * SBO + 16 r + j * LBO
// and the swizzle XORs address bits [4, 4 + log2 W) with bits [7, 7 + log2 W) of the absolute address (the
// TMA's pattern, emu_tma.h). A non-zero base offset is refused (CUTLASS never sets it).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu_api.h"
#include "emu_tma.h"

namespace tl_emu {
enum WgType { WG_F16, WG_BF16, WG_TF32 };

// What one wgmma read from shared memory, to check at its wait that nothing overwrote it meanwhile (a GPU reads
// the operands asynchronously, so a stage reused before the wait races). Shared by the warpgroup's pending
// entries; the first wait that lands it checks, the last frees it.
struct WgOp {
  int refs;
  bool checked, has_a, ta, tb;
  int n, k, size;
  uint64_t da, db, hash;
};
struct WgPending {
  float* regs;
  int n, group;
  WgOp* op;
  float vals[128];
};
// A TMA store whose shared-memory source must stay unchanged until its bulk group's wait (emu_tma_store.h).
struct BulkStore {
  const unsigned char* src;
  size_t bytes;
  int group;
  uint64_t hash;
};
constexpr int kBulkStores = 32;   // TMA stores one thread may have in flight here
// The thread's sm_90 asynchronous state (Fiber::wgmma, freed at exit): wgmma's fence flag, commit count and
// pending results; the TMA stores' bulk groups.
struct WgState {
  bool fenced;
  int committed, n, cap;
  int store_committed, nstores;
  BulkStore stores[kBulkStores];
  WgPending p[1];   // n pending results, oldest first (allocated for cap)
};

inline WgState* wg_state(Fiber* f) {
  WgState* s = static_cast<WgState*>(f->wgmma);
  if (s) return s;
  s = static_cast<WgState*>(malloc(sizeof(WgState) + 3 * sizeof(WgPending)));
  s->fenced = false;
  s->committed = s->n = 0;
  s->store_committed = s->nstores = 0;
  s->cap = 4;
  f->wgmma = s;
  return s;
}

[[noreturn]] inline void wg_fail(const char* what) {
  char msg[400];
  snprintf(msg, sizeof msg, "wgmma: %s", what);
  fail_launch(tl_w, msg);
}

// The newest pending result for exactly these registers, or null.
inline WgPending* wg_chained(WgState* s, float* regs, int n) {
  for (int k = s->n; k-- > 0;)
    if (s->p[k].regs == regs && s->p[k].n == n) return &s->p[k];
  for (int k = 0; k < s->n; ++k)
    if (s->p[k].regs < regs + n && regs < s->p[k].regs + s->p[k].n)
      wg_fail("accumulator registers overlap a pending wgmma's without being the same (shape or array differs)");
  return nullptr;
}

// ---- descriptors ---------------------------------------------------------------------------------------
constexpr int kDescTagShift = 56;

inline uint64_t wgmma_desc(const void* smem, unsigned lbo, unsigned sbo, int swizzle) {
  Worker* w = tl_w;
  uintptr_t a = reinterpret_cast<uintptr_t>(smem);
  uint64_t tag = 0;
  char* arena = w->cur->blk->arena;
  if (arena && a >= uintptr_t(arena) && a < uintptr_t(arena) + kSmemCap) tag = 1;
  for (int i = 0; !tag && i < w->L->mod->ndyn && i < 14; ++i) {
    uintptr_t d = reinterpret_cast<uintptr_t>(w->L->mod->dyn_address(i));
    if (a >= d && a < d + kSmemCap) tag = uint64_t(2 + i);
  }
  if (!tag) wg_fail("a descriptor must point into TL_SHARED or extern __shared__ memory in the emulator");
  if ((a | lbo | sbo) & 15) wg_fail("descriptor address and byte offsets must be multiples of 16");
  if (lbo >= (1u << 18) || sbo >= (1u << 18)) wg_fail("descriptor byte offsets must be below 2^18");
  uint64_t layout = swizzle == 128 ? 1 : swizzle == 64 ? 2 : swizzle == 32 ? 3 : 0;
  if (swizzle != 0 && !layout) wg_fail("swizzle must be 0, 32, 64 or 128 bytes");
  return uint64_t((a & 0x3ffff) >> 4) | uint64_t(lbo >> 4) << 16 | uint64_t(sbo >> 4) << 32 |
         tag << kDescTagShift | layout << 62;
}

// A decoded descriptor: the host address of its start and its fields.
struct WgDesc {
  uintptr_t start, lo;   // start address; the region [lo, lo + kSmemCap) it lies in
  unsigned lbo, sbo;
  int wbytes, sbits;     // the swizzle span W x 16 (16 for none) and log2 W
};

inline WgDesc wg_decode(uint64_t d) {
  Worker* w = tl_w;
  unsigned tag = unsigned(d >> kDescTagShift) & 15u;
  uintptr_t lo = 0;
  if (tag == 1 && w->cur->blk->arena) lo = reinterpret_cast<uintptr_t>(w->cur->blk->arena);
  if (tag >= 2 && int(tag) - 2 < w->L->mod->ndyn) lo = reinterpret_cast<uintptr_t>(w->L->mod->dyn_address(int(tag) - 2));
  if (!lo) wg_fail("a descriptor not made by tl_wgmma_desc (no shared-memory region)");
  if ((d >> 49) & 7u) wg_fail("a non-zero descriptor base offset is not emulated");
  uintptr_t low = uintptr_t(d & 0x3fff) << 4;
  uintptr_t start = (lo & ~uintptr_t(0x3ffff)) | low;
  if (start < lo) start += uintptr_t(1) << 18;   // the region spans at most one 256 KiB boundary
  int layout = int(d >> 62);
  int sbits = layout == 1 ? 3 : layout == 2 ? 2 : layout == 3 ? 1 : 0;
  return WgDesc{start, lo, unsigned((d >> 16) & 0x3fff) << 4, unsigned((d >> 32) & 0x3fff) << 4, 16 << sbits, sbits};
}

// The shared-memory address of element (mn, k) of a canonical layout (see the header comment).
inline const unsigned char* wg_element(const WgDesc& g, int mn, int k, int size, bool mn_major) {
  int t = 16 / size;
  uintptr_t off;
  if (!mn_major) {
    int r = mn % 8, i = mn / 8, e = k % t, j = k / t;
    off = uintptr_t(r * g.wbytes) + uintptr_t(i) * g.sbo + uintptr_t(j) * (g.sbits ? 16u : g.lbo) + uintptr_t(e * size);
  } else {
    int w = g.wbytes / 16, e = mn % t, v = (mn / t) % w, i = mn / (t * w), r = k % 8, j = k / 8;
    off = g.sbits ? uintptr_t(e * size + 16 * v) + uintptr_t(i) * g.lbo + uintptr_t(g.wbytes * r) + uintptr_t(j) * g.sbo
                  : uintptr_t(e * size) + uintptr_t(i) * g.sbo + uintptr_t(16 * r) + uintptr_t(j) * g.lbo;
  }
  uintptr_t a = swizzle_address(g.start + off, g.sbits);
  if (a < g.lo || a + size_t(size) > g.lo + kSmemCap) wg_fail("an operand element lies outside shared memory");
  return reinterpret_cast<const unsigned char*>(a);
}

// FNV-1a over the bytes of every operand element the instruction reads, in a fixed order.
inline uint64_t wg_operand_hash(const WgOp& op) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const unsigned char* p) {
    for (int i = 0; i < op.size; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  if (op.has_a) {
    WgDesc ga = wg_decode(op.da);
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < op.k; ++k) mix(wg_element(ga, m, k, op.size, op.ta));
  }
  WgDesc gb = wg_decode(op.db);
  for (int n = 0; n < op.n; ++n)
    for (int k = 0; k < op.k; ++k) mix(wg_element(gb, n, k, op.size, op.tb));
  return h;
}

inline float wg_value(const unsigned char* p, WgType ty) {
  if (ty == WG_TF32) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return __uint_as_float(v & 0xffffe000u);   // the tensor core reads 10 mantissa bits
  }
  uint16_t v;
  std::memcpy(&v, p, 2);
  return ty == WG_BF16 ? bf2f(v) : h2f(v);
}

// One thread's part: its registers and what it asked for (checked to be the same across the warpgroup).
struct WgRequest {
  float* d;
  const uint32_t* a;   // .rs: this thread's 4 A registers
  uint64_t desc_a, desc_b;
  int scale_d;
  bool done;
};

template <int N, WgType Ty>
inline void wgmma(float* d, const uint32_t* a_regs, uint64_t desc_a, uint64_t desc_b, int scale_d, int trans_a,
                  int trans_b) {
  static_assert(N >= 8 && N <= 256 && N % 8 == 0, "wgmma: N is 8..256 in steps of 8");
  constexpr int K = Ty == WG_TF32 ? 8 : 16, R = N / 2, size = Ty == WG_TF32 ? 4 : 2;
  Worker* w = tl_w;
  Fiber* self = w->cur;
  Block* b = self->blk;
  if (b->n % 128) wg_fail("the block's threads are not whole warpgroups (a multiple of 128)");
  if (kWarp != 32) wg_fail("wgmma is NVIDIA's (warpgroups of four 32-lane warps); this target's warps are 64 lanes");
  WgRequest req{d, a_regs, desc_a, desc_b, scale_d, false};
  group_sync(w, reinterpret_cast<uint64_t>(&req));
  if (req.done) return;
  int lo = self->linear & ~127;
  WgRequest* rq[128];   // the members' requests (null: exited)
  for (int t = 0; t < 128; ++t) {
    Fiber& f = b->fib[lo + t];
    rq[t] = f.state == S_DONE ? nullptr : reinterpret_cast<WgRequest*>(f.wval);
  }
  for (int t = 0; t < 128; ++t)
    if (rq[t] && (rq[t]->desc_a != desc_a || rq[t]->desc_b != desc_b || rq[t]->scale_d != scale_d || !rq[t]->a != !a_regs))
      wg_fail("the warpgroup's threads issued different descriptors, scale-d or forms");
  // Operands: A (64 x K) from a descriptor or the threads' registers, B as N x K (B[k][n] = Bt[n][k]).
  float A[64][16], Bt[N][16];   // on the fiber's stack: at most 20 KiB of its 64
  if (a_regs) {
    for (int t = 0; t < 128; ++t) {
      int wp = t / 32, g = (t % 32) / 4, tq = t % 4;
      for (int i = 0; i < 4; ++i) {
        int row = 16 * wp + g + 8 * (i % 2);
        for (int h = 0; h < (Ty == WG_TF32 ? 1 : 2); ++h) {
          int col = Ty == WG_TF32 ? tq + 4 * (i / 2) : 2 * tq + 8 * (i / 2) + h;
          float v = NAN;
          if (rq[t]) {
            uint32_t r = rq[t]->a[i];
            v = Ty == WG_TF32 ? __uint_as_float(r & 0xffffe000u)
                : Ty == WG_BF16 ? bf2f(uint16_t(r >> (16 * h))) : h2f(uint16_t(r >> (16 * h)));
          }
          A[row][col] = v;
        }
      }
    }
  } else {
    WgDesc ga = wg_decode(desc_a);
    for (int m = 0; m < 64; ++m)
      for (int k = 0; k < K; ++k) A[m][k] = wg_value(wg_element(ga, m, k, size, trans_a != 0), Ty);
  }
  WgDesc gb = wg_decode(desc_b);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < K; ++k) Bt[n][k] = wg_value(wg_element(gb, n, k, size, trans_b != 0), Ty);
  WgOp* op = static_cast<WgOp*>(malloc(sizeof(WgOp)));
  *op = WgOp{0, false, !a_regs, trans_a != 0, trans_b != 0, N, K, size, desc_a, desc_b, 0};
  op->hash = wg_operand_hash(*op);
  for (int t = 0; t < 128; ++t) {
    if (!rq[t]) continue;
    WgState* s = wg_state(&b->fib[lo + t]);
    WgPending* prev = wg_chained(s, rq[t]->d, R);
    if (!prev && !s->fenced)
      wg_fail("a wgmma uses accumulator registers that are not pending from an earlier wgmma, with no "
              "tl_wgmma_fence since the thread's last wait (or the start): fence before the first wgmma and after each wait");
    if (a_regs && !s->fenced) wg_fail("a wgmma reads A from registers with no tl_wgmma_fence since the last wait");
    if (s->n == s->cap) {
      s->cap *= 2;
      s = static_cast<WgState*>(realloc(s, sizeof(WgState) + size_t(s->cap - 1) * sizeof(WgPending)));
      b->fib[lo + t].wgmma = s;
      prev = wg_chained(s, rq[t]->d, R);
    }
    WgPending& out = s->p[s->n];
    int wp = t / 32, g = (t % 32) / 4, tq = t % 4;
    for (int j = 0; j < R; ++j) {
      int i = j / 4, q = j % 4, row = 16 * wp + g + 8 * (q / 2), col = 8 * i + 2 * tq + q % 2;
      float acc = !scale_d ? 0.0f : prev ? prev->vals[j] : rq[t]->d[j];
      for (int k = 0; k < K; ++k) acc += A[row][k] * Bt[col][k];
      out.vals[j] = acc;
    }
    out.regs = rq[t]->d;
    out.n = R;
    out.group = s->committed;
    out.op = op;
    op->refs++;
    s->n++;
    for (int j = 0; j < R; ++j) rq[t]->d[j] = NAN;   // until the wait that covers this group
    rq[t]->done = true;
  }
}

inline void wgmma_wait(int newest_pending) {
  Fiber* f = tl_w->cur;
  WgState* s = wg_state(f);
  int keep = 0;
  for (int k = 0; k < s->n; ++k) {
    WgPending& p = s->p[k];
    if (p.group < s->committed - newest_pending) {
      if (!p.op->checked && wg_operand_hash(*p.op) != p.op->hash)
        wg_fail("shared memory that a wgmma reads changed before the wait that covers it (a stage reused or "
                "refilled before tl_wgmma_wait: the GPU reads the operands asynchronously)");
      p.op->checked = true;
      if (--p.op->refs == 0) free(p.op);
      std::memcpy(p.regs, p.vals, sizeof(float) * size_t(p.n));
    } else
      s->p[keep++] = p;
  }
  s->n = keep;
  s->fenced = false;
}
}  // namespace tl_emu

namespace tl_emu {
// setmaxnreg: a warpgroup-collective register budget change. Registers are not modelled; the emulator checks
// that the whole warpgroup takes part (a missing warp is a reported deadlock) with one direction and count.
inline void setmaxnreg(int n, bool inc) {
  Worker* w = tl_w;
  uint64_t mine = uint64_t(n) << 1 | uint64_t(inc);
  if (!group_sync(w, mine)) return;
  Block* b = w->cur->blk;
  int lo = w->cur->linear & ~127;
  for (int t = lo; t < lo + 128 && t < b->n; ++t)
    if (b->fib[t].state != S_DONE && b->fib[t].wval != mine)
      wg_fail("the warpgroup's threads ran setmaxnreg with different counts or directions");
}
}  // namespace tl_emu

template <int N>
inline void tl_setmaxnreg_inc() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24..256 in steps of 8");
  tl_emu::setmaxnreg(N, true);
}
template <int N>
inline void tl_setmaxnreg_dec() {
  static_assert(N >= 24 && N <= 256 && N % 8 == 0, "setmaxnreg: 24..256 in steps of 8");
  tl_emu::setmaxnreg(N, false);
}

inline uint64_t tl_wgmma_desc(const void* smem, unsigned lbo, unsigned sbo, int swizzle) {
  return tl_emu::wgmma_desc(smem, lbo, sbo, swizzle);
}
inline void tl_wgmma_fence() { tl_emu::wg_state(tl_emu::tl_w->cur)->fenced = true; }
inline void tl_wgmma_commit() { tl_emu::wg_state(tl_emu::tl_w->cur)->committed++; }
template <int N>
inline void tl_wgmma_wait() { tl_emu::wgmma_wait(N); }
template <int R>
inline void tl_wgmma_fence_operand(float (&)[R]) {}   // a compiler barrier on a GPU; nothing to order here

template <int N, int TA = 0, int TB = 0>
inline void tl_wgmma_f16(float (&d)[N / 2], uint64_t da, uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_F16>(d, nullptr, da, db, scale_d, TA, TB);
}
template <int N, int TA = 0, int TB = 0>
inline void tl_wgmma_bf16(float (&d)[N / 2], uint64_t da, uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_BF16>(d, nullptr, da, db, scale_d, TA, TB);
}
template <int N>
inline void tl_wgmma_tf32(float (&d)[N / 2], uint64_t da, uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_TF32>(d, nullptr, da, db, scale_d, 0, 0);
}
template <int N, int TB = 0>
inline void tl_wgmma_f16_rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_F16>(d, a, 0, db, scale_d, 0, TB);
}
template <int N, int TB = 0>
inline void tl_wgmma_bf16_rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_BF16>(d, a, 0, db, scale_d, 0, TB);
}
template <int N>
inline void tl_wgmma_tf32_rs(float (&d)[N / 2], const unsigned (&a)[4], uint64_t db, int scale_d) {
  tl_emu::wgmma<N, tl_emu::WG_TF32>(d, a, 0, db, scale_d, 0, 0);
}
