// tilec emulator: the prelude's asynchronous global -> shared copies (tl_cp_async_16/8/4, tl_cp_async_commit,
// tl_cp_async_wait<N>, tl_cp_async_wait_all), with the PTX ISA's commit groups.
//
// A copy reads global memory when it is issued, through the same counters, L2 hook and checks as TL_LD
// (tl_emu::ld4 / ld), and fills its shared-memory destination with poison (0xff bytes: NaN as f16, bf16 and
// f32). The data lands only at the cp.async.wait_group that covers the copy's commit group, so a kernel that
// reads a stage before waiting for it sees NaNs and fails numerically, as it would on a GPU, where it reads
// whatever the buffer held. A copy with `valid` false is cp.async's src-size 0: nothing is read, and the
// destination becomes zeros at its wait (the zero-fill that tiles use at the tensor's edges).
//
// The pending copies of a thread live in a queue hung off its Fiber (Fiber::async, freed at thread exit).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "emu_api.h"

namespace tl_emu {
struct AsyncCopy {
  void* dst;
  int group;   // the commit group this copy joins (AsyncQueue::committed when it was issued)
  int bytes;
  unsigned char data[16];
};
struct AsyncQueue {
  int n, cap, committed;
  AsyncCopy copies[1];   // n in issue order (allocated for cap)
};

inline AsyncQueue* async_queue(Fiber* f, bool create) {
  AsyncQueue* q = static_cast<AsyncQueue*>(f->async);
  if (q || !create) return q;
  q = static_cast<AsyncQueue*>(malloc(sizeof(AsyncQueue) + 7 * sizeof(AsyncCopy)));
  q->n = 0, q->cap = 8, q->committed = 0;
  f->async = q;
  return q;
}

template <int Bytes, class T>
inline void cp_async(void* dst, const T* p, long long i, bool valid) {
  Worker* w = tl_w;
  AsyncCopy c{dst, 0, Bytes, {}};
  if (reinterpret_cast<uintptr_t>(dst) % Bytes) bad_access(w, "misaligned cp.async destination", dst, Bytes);
  if (valid) {
    const char* src = reinterpret_cast<const char*>(p + i);
    if (reinterpret_cast<uintptr_t>(src) % Bytes) bad_access(w, "misaligned cp.async source", src, Bytes);
    if (Bytes == 16) {
      float4 v = ld4(reinterpret_cast<const float*>(src), 0);
      std::memcpy(c.data, &v, 16);
    } else if (Bytes == 8) {
      uint64_t v = ld(reinterpret_cast<const uint64_t*>(src), 0);
      std::memcpy(c.data, &v, 8);
    } else {
      uint32_t v = ld(reinterpret_cast<const uint32_t*>(src), 0);
      std::memcpy(c.data, &v, 4);
    }
  }
  AsyncQueue* q = async_queue(w->cur, true);
  if (q->n == q->cap) {
    q->cap *= 2;
    q = static_cast<AsyncQueue*>(realloc(q, sizeof(AsyncQueue) + (q->cap - 1) * sizeof(AsyncCopy)));
    w->cur->async = q;
  }
  c.group = q->committed;
  q->copies[q->n++] = c;
  std::memset(dst, 0xff, Bytes);
}

// cp.async.wait_group N: land every copy of the groups committed before the newest N.
inline void cp_async_wait(int newest_pending) {
  Fiber* f = tl_w->cur;
  AsyncQueue* q = async_queue(f, false);
  if (!q) return;
  int keep = 0;
  for (int k = 0; k < q->n; ++k) {
    AsyncCopy& c = q->copies[k];
    if (c.group < q->committed - newest_pending)
      std::memcpy(c.dst, c.data, size_t(c.bytes));
    else
      q->copies[keep++] = c;
  }
  q->n = keep;
}
}  // namespace tl_emu

template <class T>
inline void tl_cp_async_16(void* dst, const T* p, long long i, bool valid = true) {
  tl_emu::cp_async<16>(dst, p, i, valid);
}
template <class T>
inline void tl_cp_async_8(void* dst, const T* p, long long i, bool valid = true) {
  tl_emu::cp_async<8>(dst, p, i, valid);
}
template <class T>
inline void tl_cp_async_4(void* dst, const T* p, long long i, bool valid = true) {
  tl_emu::cp_async<4>(dst, p, i, valid);
}
inline void tl_cp_async_commit() {
  tl_emu::AsyncQueue* q = tl_emu::async_queue(tl_emu::tl_w->cur, true);
  q->committed++;
}
template <int N>
inline void tl_cp_async_wait() { tl_emu::cp_async_wait(N); }
inline void tl_cp_async_wait_all() {
  tl_cp_async_commit();
  tl_emu::cp_async_wait(0);
}
