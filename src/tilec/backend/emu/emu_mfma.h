// tilec emulator: AMD CDNA2/CDNA3 matrix-core instructions (MFMA) as the HIP prelude's tl_mfma_* wrappers call
// them, __builtin_amdgcn_mfma_f32_{32x32x8,16x16x16}{f16,bf16_1k}, with the ISA's per-lane operand and
// accumulator layouts, so a kernel that puts an element in the wrong lane or register computes the wrong
// numbers here exactly as on a GPU (docs/amd.md, "Matrix cores").
//
// Layouts (single-block instructions; AMD's matrix instruction calculator, CDNA2, and composable_kernel's
// xdlops_gemm.hpp: M = N = 32 or 16, each lane holds 4 consecutive k of A and of B, 64 bits):
//   A (M x K):  lane l, item j (bits 16j..16j+15)   = A[l % M][4 (l / M) + j]
//   B (K x N):  lane l, item j                      = B[4 (l / N) + j][l % N]
//   D (M x N):  lane l, register r                  = D[8 (r / 4) + 4 (l / 32) + r % 4][l % 32]   (32x32, 16 regs)
//                                                   = D[4 (l / 16) + r][l % 16]                     (16x16, 4 regs)
// i.e. row = (r / 4) * (4 * 64 / N) + 4 (l / N) + r % 4, column l % N.
//
// Wavefront-collective: the 64 lanes meet at the warp rendezvous (warp_op W_SYNC over the whole wavefront), each
// bringing its A, B and C registers; the first lane to resume computes the whole wavefront's D and marks every
// request done, the others return without computing (as emu_mma.h does for mma.sync). An exited lane counts as
// absent: its A/B elements read as NaN (the result would be garbage on a GPU). The instructions exist only on
// 64-lane targets; a 32-lane build that reaches one fails the launch. CBSZ/ABID/BLGP (broadcast modifiers) must
// be 0: tilec never sets them.
//
// Arithmetic: f16 x f16 and bf16 x bf16 products are exact in f32; the K products of one output element are
// added to C in f32 in k order (a GPU's adder may round differently in the last bit). Inputs are what the
// registers hold: a kernel rounds f32 to f16/bf16 when it converts (the conversions of emu_types.h).
#pragma once
#include <cmath>
#include <cstdint>

#include "emu_api.h"

// One lane's MFMA operands and accumulators: 4 b16 bit patterns (f16 as tl_f16x4, bf16 as tl_b16x4: short, the
// _1k builtins' type) and 4 or 16 f32. GCC vectors here; the prelude's hipcc branch declares clang's.
typedef short tl_b16x4 __attribute__((vector_size(8)));
typedef unsigned short tl_f16x4 __attribute__((vector_size(8)));
typedef float tl_f32x4 __attribute__((vector_size(16)));
typedef float tl_f32x16 __attribute__((vector_size(64)));

namespace tl_emu {
struct MfmaRequest {
  uint16_t a[4], b[4];
  const float* c;
  float* d;
  bool done;
};

// C + A x B for the whole wavefront (see the layouts above); `regs` = M * N / 64.
template <int M, int N, int K>
inline void mfma(const uint16_t (&a)[4], const uint16_t (&b)[4], const float* c, float* d, bool bf16, int cbsz,
                 int abid, int blgp) {
  static_assert(M * K == 4 * 64 && K * N == 4 * 64, "single-block MFMA: 4 b16 of A and of B per lane");
  constexpr int regs = M * N / 64;
  Worker* w = tl_w;
  if (kWarp != 64) fail_launch(w, "MFMA needs 64-lane wavefronts (an AMD CDNA target); this target's are 32 lanes");
  if (cbsz || abid || blgp) fail_launch(w, "MFMA broadcast modifiers (cbsz/abid/blgp) are not emulated");
  MfmaRequest req;
  for (int j = 0; j < 4; ++j) req.a[j] = a[j], req.b[j] = b[j];
  float out[regs];
  req.c = c, req.d = out, req.done = false;
  warp_op(w, kAllLanes, W_SYNC, reinterpret_cast<uint64_t>(&req), 0);
  if (!req.done) {
    Fiber* f = w->cur;
    Block* blk = f->blk;
    Fiber* fib = blk->fib + f->warp * 64;
    uint64_t live = blk->warps[f->warp].live;
    MfmaRequest* lanes[64];
    for (int l = 0; l < 64; ++l) {
      bool here = (live >> l) & 1u && l + f->warp * 64 < blk->n;
      lanes[l] = here ? reinterpret_cast<MfmaRequest*>(fib[l].wval) : nullptr;
    }
    float A[M][K], B[K][N];
    for (int l = 0; l < 64; ++l)
      for (int j = 0; j < 4; ++j) {
        const MfmaRequest* q = lanes[l];
        A[l % M][4 * (l / M) + j] = q ? (bf16 ? bf2f(q->a[j]) : h2f(q->a[j])) : NAN;
        B[4 * (l / N) + j][l % N] = q ? (bf16 ? bf2f(q->b[j]) : h2f(q->b[j])) : NAN;
      }
    for (int l = 0; l < 64; ++l) {
      if (!lanes[l]) continue;
      for (int r = 0; r < regs; ++r) {
        int row = r / 4 * (4 * 64 / N) + 4 * (l / N) + r % 4, col = l % N;
        float s = lanes[l]->c[r];
        for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
        lanes[l]->d[r] = s;
      }
    }
    for (int l = 0; l < 64; ++l)
      if (lanes[l]) lanes[l]->done = true;
  }
  for (int r = 0; r < regs; ++r) d[r] = out[r];   // d may alias c: written only after every lane has read
}

template <class V>
inline void mfma_unpack(const V& v, uint16_t (&x)[4]) {
  for (int j = 0; j < 4; ++j) x[j] = uint16_t(v[j]);
}
}  // namespace tl_emu

#define TL_EMU_MFMA(NAME, M, N, K, VT, BF16, CT)                                              \
  inline CT NAME(const VT& a, const VT& b, const CT& c, int cbsz, int abid, int blgp) {                        \
    uint16_t av[4], bv[4];                                                                   \
    tl_emu::mfma_unpack(a, av);                                                              \
    tl_emu::mfma_unpack(b, bv);                                                              \
    float cv[M * N / 64], dv[M * N / 64];                                                    \
    for (int r = 0; r < M * N / 64; ++r) cv[r] = c[r];                                       \
    tl_emu::mfma<M, N, K>(av, bv, cv, dv, BF16, cbsz, abid, blgp);                          \
    CT d;                                                                                    \
    for (int r = 0; r < M * N / 64; ++r) d[r] = dv[r];                                       \
    return d;                                                                                \
  }
TL_EMU_MFMA(__builtin_amdgcn_mfma_f32_32x32x8f16, 32, 32, 8, tl_f16x4, false, tl_f32x16)
TL_EMU_MFMA(__builtin_amdgcn_mfma_f32_16x16x16f16, 16, 16, 16, tl_f16x4, false, tl_f32x4)
TL_EMU_MFMA(__builtin_amdgcn_mfma_f32_32x32x8bf16_1k, 32, 32, 8, tl_b16x4, true, tl_f32x16)
TL_EMU_MFMA(__builtin_amdgcn_mfma_f32_16x16x16bf16_1k, 16, 16, 16, tl_b16x4, true, tl_f32x4)
#undef TL_EMU_MFMA
