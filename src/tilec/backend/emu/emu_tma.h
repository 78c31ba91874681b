// tilec emulator: the prelude's TMA loads (tl_tma_load_{1..5}d, tl_tma_load_multicast_{1..5}d:
// cp.async.bulk.tensor.Nd.shared::cluster.global.mbarrier::complete_tx::bytes[.multicast::cluster]).
//
// TlTensorMap: on a GPU the 128-byte opaque CUtensorMap that cuTensorMapEncodeTiled writes; here a struct of
// the same arguments (tilec.runtime.tensor_map.TensorMapSpec.emu_bytes packs it), passed the same way, as a
// `const __grid_constant__` kernel parameter.
//
// A load reads the box at `coords` (elements, innermost first, may be negative) when it is issued: every
// in-bounds element through tl_emu::ld (so global bytes count exactly the in-bounds bytes, and the L2 hook and
// bounds checks see them), every out-of-bounds one as zero, or NaN with CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_
// REQUEST_ZERO_FMA. The box lies in shared memory row-major (dim 0 fastest, ceil(box[i] / elementStrides[i])
// elements along dim i >= 1), each 16-byte chunk at the address the swizzle mode gives: with SWIZZLE_32B/64B/
// 128B, address bits [4, 4 + b) are XORed with bits [7, 7 + b) (b = 1, 2, 3), on the absolute address, the
// pattern wgmma's descriptors read (emu_wgmma.h). The destination is poisoned at issue; the data lands, and
// complete_tx(box bytes) reaches the mbarrier, only when a thread waits on that barrier (bulk_land from
// tl_mbarrier_try_wait/wait_parity), so reading a stage before its wait sees NaN. The tx-count is the whole
// box, out-of-bounds fill included, as on a GPU.
//
// Multicast (ctaMask) lands the same box at the same shared offsets, and signals the barrier at the same
// offset, in every block of the mask (each block's copy lands when one of its threads waits on its barrier);
// global memory is read once. Destination and barrier may be TL_SHARED, plain or extern (dynamic) __shared__
// memory: the emulator reaches a peer's through tl_cluster_map's rule (cluster_address, emu_api.h). A block
// outside the mask gets nothing: no bytes, no complete_tx.
//
// Not emulated (refused with an error): interleaved maps, a swizzled box whose inner dimension is not the
// swizzle span (the driver allows narrower), the 128B_ATOM_* swizzles and the packed 4/6-bit types.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "emu_api.h"
#include "emu_mbarrier.h"

#define __grid_constant__

// The emulator's tensor map: cuTensorMapEncodeTiled's arguments (tilec/runtime/tensor_map.py packs it).
struct TlTensorMap {
  unsigned long long global_address;
  unsigned long long global_dim[5];       // elements, innermost first
  unsigned long long global_strides[4];   // bytes, of dims 1..rank-1
  unsigned box_dim[5];
  unsigned element_strides[5];
  unsigned char dtype, rank, interleave, swizzle, l2_promotion, oob_fill, pad[2];
};
static_assert(sizeof(TlTensorMap) == 128, "TlTensorMap is 128 bytes, as CUtensorMap");

namespace tl_emu {
// A copy issued but not landed: one node of Block::bulk (next pointer first; the runtime frees the chain).
struct BulkCopy {
  BulkCopy* next;
  unsigned long long* bar;
  char* dst;
  size_t bytes;
  unsigned char data[1];   // `bytes` bytes, already in their swizzled places
};

// Land this block's copies that signal `bar`, in issue order.
inline void bulk_land(Block* b, const unsigned long long* bar) {
  BulkCopy** link = reinterpret_cast<BulkCopy**>(&b->bulk);
  while (BulkCopy* c = *link) {
    if (c->bar != bar) {
      link = &c->next;
      continue;
    }
    *link = c->next;
    std::memcpy(c->dst, c->data, c->bytes);
    unsigned long long* target = c->bar;
    size_t bytes = c->bytes;
    free(c);
    mbar_update(target, 0, -long(bytes));
  }
}

inline int tma_elem_bytes(unsigned dtype) {
  static const signed char size[] = {1, 2, 4, 4, 8, 8, 2, 4, 8, 2, 4, 4, 4};
  return dtype < sizeof size ? size[dtype] : 0;
}
inline bool tma_is_float(unsigned dtype) { return dtype >= 6 && dtype <= 12; }

[[noreturn]] inline void tma_fail(const char* what) {
  char msg[320];
  snprintf(msg, sizeof msg, "TMA load: %s", what);
  fail_launch(tl_w, msg);
}

// The swizzled address of byte `a` (XOR of bits [4, 4 + b) with bits [7, 7 + b)); b = 0: unchanged.
inline uintptr_t swizzle_address(uintptr_t a, int b) {
  return a ^ (((a >> 7) & ((uintptr_t(1) << b) - 1)) << 4);
}
inline int swizzle_bits(unsigned mode) { return mode == 1 ? 1 : mode == 2 ? 2 : mode == 3 ? 3 : 0; }

template <int R>
inline void tma_load(void* dst, const TlTensorMap& m, unsigned long long* bar, const int (&c)[R], unsigned mask, bool multicast) {
  Worker* w = tl_w;
  if (multicast && !mask) tma_fail("an empty multicast mask");
  int es = tma_elem_bytes(m.dtype);
  if (m.rank != R) tma_fail("the tensor map's rank differs from the instruction's dimension");
  if (!es || m.dtype > 12) tma_fail("data type not emulated (packed 4/6-bit types)");
  if (m.interleave) tma_fail("interleaved tensor maps are not emulated");
  if (m.swizzle > 3) tma_fail("the 128B_ATOM_* swizzle modes are not emulated");
  int sb = swizzle_bits(m.swizzle);
  size_t inner = size_t(m.box_dim[0]) * size_t(es);
  if (sb && inner != (size_t(16) << sb))
    tma_fail("a swizzled box's inner dimension must be the swizzle span here (the driver allows narrower)");
  if (reinterpret_cast<uintptr_t>(dst) & 127) tma_fail("the shared-memory destination is not 128-byte aligned");
  size_t n[5], total = 1;
  for (int i = 0; i < R; ++i) {
    unsigned es_i = i == 0 ? 1 : m.element_strides[i];   // dimension 0 takes no element stride
    if (!m.box_dim[i] || m.box_dim[i] > 256 || !es_i || es_i > 8) tma_fail("box or element stride out of range");
    n[i] = (m.box_dim[i] + es_i - 1) / es_i;
    total *= n[i];
  }
  size_t bytes = total * size_t(es);
  BulkCopy* img = static_cast<BulkCopy*>(malloc(sizeof(BulkCopy) + bytes));
  if (!img) tma_fail("out of memory");
  uint64_t nan_bits = es == 2 ? 0x7fffu : es == 4 ? 0x7fffffffu : 0x7fffffffffffffffull;
  uint64_t fill = (m.oob_fill && tma_is_float(m.dtype)) ? nan_bits : 0;
  const char* base = reinterpret_cast<const char*>(m.global_address);
  uintptr_t d0 = reinterpret_cast<uintptr_t>(dst);
  size_t idx[5] = {0, 0, 0, 0, 0};
  for (size_t e = 0; e < total; ++e) {
    bool in = true;
    long long off = 0;
    for (int i = 0; i < R; ++i) {
      long long g = c[i] + (long long)(idx[i]) * (i == 0 ? 1 : m.element_strides[i]);
      in = in && g >= 0 && (unsigned long long)g < m.global_dim[i];
      off += i == 0 ? g * es : g * (long long)m.global_strides[i - 1];
    }
    uint64_t v = fill;
    if (in) {
      const char* p = base + off;
      v = es == 1 ? ld(reinterpret_cast<const uint8_t*>(p), 0)
        : es == 2 ? ld(reinterpret_cast<const uint16_t*>(p), 0)
        : es == 4 ? ld(reinterpret_cast<const uint32_t*>(p), 0)
                  : ld(reinterpret_cast<const uint64_t*>(p), 0);
    }
    size_t at = swizzle_address(d0 + e * size_t(es), sb) - d0;
    std::memcpy(img->data + at, &v, size_t(es));
    for (int i = 0; i < R && ++idx[i] == n[i]; ++i) idx[i] = 0;
  }
  Block* self = w->cur->blk;
  unsigned ranks = mask ? mask : 1u << self->rank;
  if (mask >> unsigned(w->L->cluster)) tma_fail("the multicast mask names blocks outside the cluster");
  bool first = true;
  for (unsigned r = 0; r < 16; ++r) {
    if (!((ranks >> r) & 1u)) continue;
    // `now`: where the bytes and the barrier are while this block runs (the poison goes there, the barrier is
    // checked there); the copy keeps the address the destination block sees when it runs and lands it, which
    // for plain or extern __shared__ memory is this block's own (emu_state.h).
    char* now = mask ? cluster_address(dst, r, bytes) : static_cast<char*>(dst);
    char* d = mask && in_arena(dst) ? now : static_cast<char*>(dst);
    unsigned long long* bar_now = mask ? mbar_peer(bar, r, false) : bar;   // a peer's: its init must be visible
    unsigned long long* bb = mask && in_arena(bar) ? bar_now : bar;
    BulkCopy* copy = img;
    if (!first) {
      copy = static_cast<BulkCopy*>(malloc(sizeof(BulkCopy) + bytes));
      if (!copy) tma_fail("out of memory");
      std::memcpy(copy->data, img->data, bytes);
    }
    first = false;
    copy->next = nullptr;
    copy->bar = bb;
    copy->dst = d;
    copy->bytes = bytes;
    mbar_word(bar_now);   // the barrier must be initialised when the copy is issued
    Block* target = mask ? &self->peers[r] : self;
    BulkCopy** link = reinterpret_cast<BulkCopy**>(&target->bulk);
    while (*link) link = &(*link)->next;
    *link = copy;
    std::memset(now, 0xff, bytes);   // poison until it lands
  }
}
}  // namespace tl_emu

inline void tl_tma_load_1d(void* dst, const TlTensorMap& m, unsigned long long* bar, int c0) {
  tl_emu::tma_load<1>(dst, m, bar, {c0}, 0, false);
}
inline void tl_tma_load_2d(void* dst, const TlTensorMap& m, unsigned long long* bar, int c0, int c1) {
  tl_emu::tma_load<2>(dst, m, bar, {c0, c1}, 0, false);
}
inline void tl_tma_load_3d(void* dst, const TlTensorMap& m, unsigned long long* bar, int c0, int c1, int c2) {
  tl_emu::tma_load<3>(dst, m, bar, {c0, c1, c2}, 0, false);
}
inline void tl_tma_load_4d(void* dst, const TlTensorMap& m, unsigned long long* bar, int c0, int c1, int c2, int c3) {
  tl_emu::tma_load<4>(dst, m, bar, {c0, c1, c2, c3}, 0, false);
}
inline void tl_tma_load_5d(void* dst, const TlTensorMap& m, unsigned long long* bar, int c0, int c1, int c2, int c3, int c4) {
  tl_emu::tma_load<5>(dst, m, bar, {c0, c1, c2, c3, c4}, 0, false);
}
inline void tl_tma_load_multicast_1d(void* dst, const TlTensorMap& m, unsigned long long* bar, unsigned short mask, int c0) {
  tl_emu::tma_load<1>(dst, m, bar, {c0}, mask, true);
}
inline void tl_tma_load_multicast_2d(void* dst, const TlTensorMap& m, unsigned long long* bar, unsigned short mask, int c0,
                                     int c1) {
  tl_emu::tma_load<2>(dst, m, bar, {c0, c1}, mask, true);
}
inline void tl_tma_load_multicast_3d(void* dst, const TlTensorMap& m, unsigned long long* bar, unsigned short mask, int c0,
                                     int c1, int c2) {
  tl_emu::tma_load<3>(dst, m, bar, {c0, c1, c2}, mask, true);
}
inline void tl_tma_load_multicast_4d(void* dst, const TlTensorMap& m, unsigned long long* bar, unsigned short mask, int c0,
                                     int c1, int c2, int c3) {
  tl_emu::tma_load<4>(dst, m, bar, {c0, c1, c2, c3}, mask, true);
}
inline void tl_tma_load_multicast_5d(void* dst, const TlTensorMap& m, unsigned long long* bar, unsigned short mask, int c0,
                                     int c1, int c2, int c3, int c4) {
  tl_emu::tma_load<5>(dst, m, bar, {c0, c1, c2, c3, c4}, mask, true);
}
// fence.proxy.async.shared::cta: orders generic-proxy shared writes before async-proxy reads (TMA store,
// wgmma); the emulator has one proxy.
inline void tl_fence_proxy_async() {}
