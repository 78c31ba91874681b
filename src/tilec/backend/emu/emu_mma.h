// tilec emulator: the sm_80 warp-level tensor-core primitives of the prelude (tl_mma_*, tl_ldmatrix_*,
// tl_cvt_tf32) with the PTX ISA's per-lane register layouts, so a kernel that puts an element in the wrong
// register computes the wrong numbers here exactly as on a GPU.
//
// Both instructions are warp-collective: every lane holds only its own registers (the ISA's fragment layout,
// "Matrix Fragments for mma.m16n8k16" / "mma.m16n8k8" and "ldmatrix" in the PTX ISA). The lanes meet at a warp
// rendezvous (warp_op W_SYNC, the mechanism behind __syncwarp/__shfl_sync); each brings a pointer to a small
// request on its own stack (its operand registers, where its results go). The last lane to arrive runs first
// after the rendezvous, so it reads every lane's request while all of them are still parked inside the call,
// computes the whole warp's results, writes each lane's result registers and marks the requests done; the other
// lanes then return without computing. A lane that has exited counts as absent: its registers read as NaN
// (sm_80 leaves a partial warp's mma undefined; NaN makes such a kernel fail instead of passing by luck).
//
// Arithmetic: f16 and bf16 products are exact in f32 (11 x 11 and 8 x 8 significand bits); tf32 operands are
// f32 bit patterns of which the tensor core uses the top 19 bits (sign, 8 exponent, 10 mantissa bits): the low
// 13 bits are ignored, so a kernel that wants round-to-nearest converts with tl_cvt_tf32 first (cvt.rna). The
// products of one output element are added to C in f32, k = 0..K-1 in order (a GPU's adder tree may round
// differently in the last bit).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "emu_api.h"

namespace tl_emu {
// One lane's part in a warp-collective operation.
struct WarpRequest {
  const void* in;   // this lane's operand registers (mma) or row address (ldmatrix)
  void* out;        // where this lane's result registers go
  bool done;        // set by the lane that computed the whole warp's results
};

// Meet the warp's other lanes with `req`; returns the 32 lanes' requests (null for an exited lane) to the lane
// that must compute them, or false when another lane already did.
inline bool warp_collect(WarpRequest* req, WarpRequest* (&lanes)[32]) {
  Worker* w = tl_w;
  // mma.sync / ldmatrix are NVIDIA instructions over 32-lane warps; an AMD target's 64-lane wavefronts have
  // none (its matrix cores are MFMA), so a kernel that reaches one there is refused, not emulated wrongly.
  if (kWarp != 32) fail_launch(w, "mma.sync / ldmatrix need 32-lane warps; this target's are 64 lanes");
  req->done = false;
  warp_op(w, 0xffffffffu, W_SYNC, reinterpret_cast<uint64_t>(req), 0);
  if (req->done) return false;
  Fiber* f = w->cur;
  Block* b = f->blk;
  Fiber* fib = b->fib + f->warp * 32;
  unsigned live = b->warps[f->warp].live;
  for (int l = 0; l < 32; ++l) {
    bool here = (live >> l) & 1u && l + f->warp * 32 < b->n;
    lanes[l] = here ? reinterpret_cast<WarpRequest*>(fib[l].wval) : nullptr;
  }
  for (int l = 0; l < 32; ++l)
    if (lanes[l]) lanes[l]->done = true;
  return true;
}

inline float b16_to_float(uint16_t v, bool bf16) { return bf16 ? bf2f(v) : h2f(v); }
inline float tf32_bits_to_float(uint32_t v) { return __uint_as_float(v & 0xffffe000u); }

// Registers of an m16n8kK mma, per lane (the PTX ISA's layouts, g = lane / 4, t = lane % 4).
struct MmaRegs { const uint32_t* a; const uint32_t* b; const float* c; };

// D = A x B + C for every lane that joined: lane l owns D[g][2t..2t+1] and D[g+8][2t..2t+1] (g = l/4, t = l%4),
// summed in k order from its own c[] (the m16n8 accumulator layout of both shapes).
template <int K>
inline void mma_accumulate(WarpRequest* const (&lanes)[32], const float (&A)[16][K], const float (&B)[K][8]) {
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    const MmaRegs* r = static_cast<const MmaRegs*>(lanes[l]->in);
    float* o = static_cast<float*>(lanes[l]->out);
    int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i) {
      int row = g + 8 * (i / 2), col = 2 * t + i % 2;
      float s = r->c[i];
      for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
      o[i] = s;
    }
  }
}

// mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}: A 16x16 in a[4] (pairs along k), B 16x8 in b[2]
// (pairs along k), C/D 16x8 in c[4].
//   a[0] = A[g][2t..2t+1]  a[1] = A[g+8][2t..2t+1]  a[2] = A[g][2t+8..2t+9]  a[3] = A[g+8][2t+8..2t+9]
//   b[0] = B[2t..2t+1][g]  b[1] = B[2t+8..2t+9][g]
//   c[0..1] = C[g][2t..2t+1]  c[2..3] = C[g+8][2t..2t+1]
// The low 16 bits of a register hold the element with the smaller k.
inline void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4],
                         bool bf16) {
  MmaRegs mine{a, b, c};
  float out[4];
  WarpRequest req{&mine, out, false};
  WarpRequest* lanes[32];
  if (warp_collect(&req, lanes)) {
    float A[16][16], B[16][8];
    for (int l = 0; l < 32; ++l) {
      int g = l / 4, t = l % 4;
      const MmaRegs* r = lanes[l] ? static_cast<const MmaRegs*>(lanes[l]->in) : nullptr;
      for (int h = 0; h < 2; ++h) {
        auto el = [&](const uint32_t* v, int i) {
          return r ? b16_to_float(uint16_t(v[i] >> (16 * h)), bf16) : NAN;
        };
        A[g][2 * t + h] = el(r ? r->a : nullptr, 0);
        A[g + 8][2 * t + h] = el(r ? r->a : nullptr, 1);
        A[g][2 * t + 8 + h] = el(r ? r->a : nullptr, 2);
        A[g + 8][2 * t + 8 + h] = el(r ? r->a : nullptr, 3);
        B[2 * t + h][g] = el(r ? r->b : nullptr, 0);
        B[2 * t + 8 + h][g] = el(r ? r->b : nullptr, 1);
      }
    }
    mma_accumulate<16>(lanes, A, B);
  }
  for (int i = 0; i < 4; ++i) d[i] = out[i];   // d may alias c: written only after every lane has read
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32: A 16x8 in a[4], B 8x8 in b[2], C/D as above.
//   a[0] = A[g][t]  a[1] = A[g+8][t]  a[2] = A[g][t+4]  a[3] = A[g+8][t+4]
//   b[0] = B[t][g]  b[1] = B[t+4][g]
inline void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2], const float (&c)[4]) {
  MmaRegs mine{a, b, c};
  float out[4];
  WarpRequest req{&mine, out, false};
  WarpRequest* lanes[32];
  if (warp_collect(&req, lanes)) {
    float A[16][8], B[8][8];
    for (int l = 0; l < 32; ++l) {
      int g = l / 4, t = l % 4;
      const MmaRegs* r = lanes[l] ? static_cast<const MmaRegs*>(lanes[l]->in) : nullptr;
      A[g][t] = r ? tf32_bits_to_float(r->a[0]) : NAN;
      A[g + 8][t] = r ? tf32_bits_to_float(r->a[1]) : NAN;
      A[g][t + 4] = r ? tf32_bits_to_float(r->a[2]) : NAN;
      A[g + 8][t + 4] = r ? tf32_bits_to_float(r->a[3]) : NAN;
      B[t][g] = r ? tf32_bits_to_float(r->b[0]) : NAN;
      B[t + 4][g] = r ? tf32_bits_to_float(r->b[1]) : NAN;
    }
    mma_accumulate<8>(lanes, A, B);
  }
  for (int i = 0; i < 4; ++i) d[i] = out[i];
}

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16: lane 8j + r gives the address of row r of matrix j
// (16 bytes, 16-byte aligned); lane l receives in register j the pair of matrix j at row l / 4, columns
// 2(l % 4) and 2(l % 4) + 1 (with .trans: rows 2(l % 4) and 2(l % 4) + 1 of column l / 4), low half first.
inline void ldmatrix(uint32_t* out, const void* row, int count, bool trans) {
  WarpRequest req{row, out, false};
  WarpRequest* lanes[32];
  if (!warp_collect(&req, lanes)) return;
  uint16_t M[4][8][8];
  for (int j = 0; j < count; ++j)
    for (int r = 0; r < 8; ++r) {
      WarpRequest* q = lanes[8 * j + r];
      if (!q) {
        for (int c = 0; c < 8; ++c) M[j][r][c] = 0xffffu;   // NaN as f16 and bf16
        continue;
      }
      if (reinterpret_cast<uintptr_t>(q->in) & 15) bad_access(tl_w, "misaligned ldmatrix row", q->in, 16);
      std::memcpy(M[j][r], q->in, 16);
    }
  for (int l = 0; l < 32; ++l) {
    if (!lanes[l]) continue;
    uint32_t* o = static_cast<uint32_t*>(lanes[l]->out);
    int r = l / 4, c = 2 * (l % 4);
    for (int j = 0; j < count; ++j) {
      uint16_t lo = trans ? M[j][c][r] : M[j][r][c], hi = trans ? M[j][c + 1][r] : M[j][r][c + 1];
      o[j] = uint32_t(lo) | uint32_t(hi) << 16;
    }
  }
}
}  // namespace tl_emu

inline void tl_mma_m16n8k16_f16f32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
  tl_emu::mma_m16n8k16(d, a, b, c, false);
}
inline void tl_mma_m16n8k16_bf16f32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
  tl_emu::mma_m16n8k16(d, a, b, c, true);
}
inline void tl_mma_m16n8k8_tf32f32(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2], const float (&c)[4]) {
  tl_emu::mma_m16n8k8_tf32(d, a, b, c);
}
inline void tl_ldmatrix_x1(unsigned (&r)[1], const void* row) { tl_emu::ldmatrix(r, row, 1, false); }
inline void tl_ldmatrix_x2(unsigned (&r)[2], const void* row) { tl_emu::ldmatrix(r, row, 2, false); }
inline void tl_ldmatrix_x4(unsigned (&r)[4], const void* row) { tl_emu::ldmatrix(r, row, 4, false); }
inline void tl_ldmatrix_x1_trans(unsigned (&r)[1], const void* row) { tl_emu::ldmatrix(r, row, 1, true); }
inline void tl_ldmatrix_x2_trans(unsigned (&r)[2], const void* row) { tl_emu::ldmatrix(r, row, 2, true); }
inline void tl_ldmatrix_x4_trans(unsigned (&r)[4], const void* row) { tl_emu::ldmatrix(r, row, 4, true); }

// cvt.rna.tf32.f32: round to a 10-bit mantissa, to nearest, ties away from zero (NaN and Inf kept).
inline unsigned tl_cvt_tf32(float x) {
  unsigned u = __float_as_uint(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & 0xffffe000u;
}
