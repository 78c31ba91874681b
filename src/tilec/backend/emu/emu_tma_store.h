// tilec emulator: the prelude's TMA stores (tl_tma_store_{1..5}d: cp.async.bulk.tensor.Nd.global.shared::cta
// .bulk_group) and their bulk groups (tl_tma_store_commit, tl_tma_store_wait_read<N>, tl_tma_store_wait<N>).
//
// A store reads the box from shared memory at issue, laid out as a TMA load would write it (row-major, the
// tensor map's swizzle; emu_tma.h), and writes its in-bounds elements to global memory through tl_emu::st (so
// global bytes count exactly the in-bounds bytes; elements outside the tensor are dropped, as on a GPU). The
// source is hashed; the wait that covers the store's group reads it again and fails the launch if it changed:
// a kernel that refills the staging buffer before cp.async.bulk.wait_group.read races with the copy on a GPU.
// The global writes happen at issue, earlier than on a GPU, so a kernel reading them back before its wait is
// not caught (the waits themselves are checked).
#pragma once
#include <cstdint>
#include <cstring>

#include "emu_api.h"
#include "emu_tma.h"
#include "emu_wgmma.h"

namespace tl_emu {
inline uint64_t bytes_hash(const unsigned char* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

template <int R>
inline void tma_store(const TlTensorMap& m, const void* src, const int (&c)[R]) {
  int es = tma_elem_bytes(m.dtype);
  if (m.rank != R) tma_fail("the tensor map's rank differs from the instruction's dimension");
  if (!es || m.interleave || m.swizzle > 3) tma_fail("tensor map not emulated (type, interleave or swizzle)");
  int sb = swizzle_bits(m.swizzle);
  if (sb && size_t(m.box_dim[0]) * size_t(es) != (size_t(16) << sb))
    tma_fail("a swizzled box's inner dimension must be the swizzle span here (the driver allows narrower)");
  if (reinterpret_cast<uintptr_t>(src) & 127) tma_fail("the shared-memory source is not 128-byte aligned");
  size_t n[5], total = 1;
  for (int i = 0; i < R; ++i) {
    if (!m.box_dim[i] || m.box_dim[i] > 256) tma_fail("box out of range");
    n[i] = m.box_dim[i];   // stores take no element strides
    total *= n[i];
  }
  const unsigned char* s0 = static_cast<const unsigned char*>(src);
  char* base = reinterpret_cast<char*>(m.global_address);
  size_t idx[5] = {0, 0, 0, 0, 0};
  for (size_t e = 0; e < total; ++e) {
    bool in = true;
    long long off = 0;
    for (int i = 0; i < R; ++i) {
      long long g = c[i] + (long long)idx[i];
      in = in && g >= 0 && (unsigned long long)g < m.global_dim[i];
      off += i == 0 ? g * es : g * (long long)m.global_strides[i - 1];
    }
    if (in) {
      const unsigned char* p = s0 + (swizzle_address(reinterpret_cast<uintptr_t>(s0) + e * size_t(es), sb) -
                                     reinterpret_cast<uintptr_t>(s0));
      uint64_t v = 0;
      std::memcpy(&v, p, size_t(es));
      char* q = base + off;
      if (es == 1) st(reinterpret_cast<uint8_t*>(q), 0, uint8_t(v));
      else if (es == 2) st(reinterpret_cast<uint16_t*>(q), 0, uint16_t(v));
      else if (es == 4) st(reinterpret_cast<uint32_t*>(q), 0, uint32_t(v));
      else st(reinterpret_cast<uint64_t*>(q), 0, v);
    }
    for (int i = 0; i < R && ++idx[i] == n[i]; ++i) idx[i] = 0;
  }
  WgState* st_ = wg_state(tl_w->cur);
  if (st_->nstores == kBulkStores) tma_fail("more TMA stores in flight than the emulator keeps (32): wait first");
  size_t bytes = total * size_t(es);
  st_->stores[st_->nstores++] = BulkStore{s0, bytes, st_->store_committed, bytes_hash(s0, bytes)};
}

inline void tma_store_wait(int newest_pending) {
  WgState* s = wg_state(tl_w->cur);
  int keep = 0;
  for (int k = 0; k < s->nstores; ++k) {
    BulkStore& b = s->stores[k];
    if (b.group >= s->store_committed - newest_pending) {
      s->stores[keep++] = b;
      continue;
    }
    if (bytes_hash(b.src, b.bytes) != b.hash)
      tma_fail("the shared memory a TMA store reads changed before the cp.async.bulk.wait_group(.read) that "
               "covers it (a staging buffer refilled too early)");
  }
  s->nstores = keep;
}
}  // namespace tl_emu

inline void tl_tma_store_1d(const TlTensorMap& m, const void* src, int c0) { tl_emu::tma_store<1>(m, src, {c0}); }
inline void tl_tma_store_2d(const TlTensorMap& m, const void* src, int c0, int c1) {
  tl_emu::tma_store<2>(m, src, {c0, c1});
}
inline void tl_tma_store_3d(const TlTensorMap& m, const void* src, int c0, int c1, int c2) {
  tl_emu::tma_store<3>(m, src, {c0, c1, c2});
}
inline void tl_tma_store_4d(const TlTensorMap& m, const void* src, int c0, int c1, int c2, int c3) {
  tl_emu::tma_store<4>(m, src, {c0, c1, c2, c3});
}
inline void tl_tma_store_5d(const TlTensorMap& m, const void* src, int c0, int c1, int c2, int c3, int c4) {
  tl_emu::tma_store<5>(m, src, {c0, c1, c2, c3, c4});
}
inline void tl_tma_store_commit() { tl_emu::wg_state(tl_emu::tl_w->cur)->store_committed++; }
template <int N>
inline void tl_tma_store_wait_read() { tl_emu::tma_store_wait(N); }
template <int N>
inline void tl_tma_store_wait() { tl_emu::tma_store_wait(N); }
