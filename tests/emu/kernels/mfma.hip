// HIP kernels for the MFMA emulation (tests/emu/test_emu_mfma.py): one wavefront multiplies A (M x K) by B (K x N),
// both row-major b16 bit patterns, into D (M x N, f32), K in steps of the instruction's k, with the ISA's lane
// layouts (docs/amd.md): lane l holds A[l % M][4 (l / M) + j] and B[4 (l / N) + j][l % N], j = 0..3, and
// accumulator register r is D[r / 4 * (256 / N) + 4 (l / N) + r % 4][l % N].
template <int M, int N, int KI, class ACC, void (*FN)(ACC&, tl_b16x4, tl_b16x4)>
__device__ void mfma_test(float* __restrict__ D, const unsigned short* __restrict__ A,
                          const unsigned short* __restrict__ B, int K) {
  const int l = threadIdx.x;
  ACC acc = {};
  for (int k0 = 0; k0 < K; k0 += KI) {
    tl_b16x4 a, b;
    for (int j = 0; j < 4; ++j) {
      a[j] = (short)TL_LD(A, (l % M) * K + k0 + 4 * (l / M) + j);
      b[j] = (short)TL_LD(B, (k0 + 4 * (l / N) + j) * N + l % N);
    }
    FN(acc, a, b);
  }
  for (int r = 0; r < M * N / 64; ++r) TL_ST(D, (r / 4 * (256 / N) + 4 * (l / N) + r % 4) * N + l % N, acc[r]);
}
extern "C" __global__ void __launch_bounds__(64) mfma_32x32x8_f16(float* __restrict__ D,
                                                                  const unsigned short* __restrict__ A,
                                                                  const unsigned short* __restrict__ B, int K) {
  mfma_test<32, 32, 8, tl_f32x16, tl_mfma_32x32x8_f16>(D, A, B, K);
}
extern "C" __global__ void __launch_bounds__(64) mfma_16x16x16_f16(float* __restrict__ D,
                                                                   const unsigned short* __restrict__ A,
                                                                   const unsigned short* __restrict__ B, int K) {
  mfma_test<16, 16, 16, tl_f32x4, tl_mfma_16x16x16_f16>(D, A, B, K);
}
extern "C" __global__ void __launch_bounds__(64) mfma_32x32x8_bf16(float* __restrict__ D,
                                                                   const unsigned short* __restrict__ A,
                                                                   const unsigned short* __restrict__ B, int K) {
  mfma_test<32, 32, 8, tl_f32x16, tl_mfma_32x32x8_bf16>(D, A, B, K);
}
extern "C" __global__ void __launch_bounds__(64) mfma_16x16x16_bf16(float* __restrict__ D,
                                                                    const unsigned short* __restrict__ A,
                                                                    const unsigned short* __restrict__ B, int K) {
  mfma_test<16, 16, 16, tl_f32x4, tl_mfma_16x16x16_bf16>(D, A, B, K);
}

// Deliberately wrong layouts (the test shows the emulator gives wrong numbers, as a GPU would):
// A's k groups taken from the low lane bits (lane l holds A[l / 2][4 (l % 2) + j]) instead of the high ones.
extern "C" __global__ void __launch_bounds__(64) mfma_32x32x8_f16_wrong_a(float* __restrict__ D,
                                                                          const unsigned short* __restrict__ A,
                                                                          const unsigned short* __restrict__ B, int K) {
  const int l = threadIdx.x;
  tl_f32x16 acc = {};
  for (int k0 = 0; k0 < K; k0 += 8) {
    tl_b16x4 a, b;
    for (int j = 0; j < 4; ++j) {
      a[j] = (short)TL_LD(A, (l / 2) * K + k0 + 4 * (l % 2) + j);
      b[j] = (short)TL_LD(B, (k0 + 4 * (l / 32) + j) * 32 + l % 32);
    }
    tl_mfma_32x32x8_f16(acc, a, b);
  }
  for (int r = 0; r < 16; ++r) TL_ST(D, (r / 4 * 8 + 4 * (l / 32) + r % 4) * 32 + l % 32, acc[r]);
}

// The 16x16 accumulators read as if register r held row 4 r + l / 16 (rows interleaved the other way round).
extern "C" __global__ void __launch_bounds__(64) mfma_16x16x16_f16_wrong_d(float* __restrict__ D,
                                                                           const unsigned short* __restrict__ A,
                                                                           const unsigned short* __restrict__ B,
                                                                           int K) {
  const int l = threadIdx.x;
  tl_f32x4 acc = {};
  for (int k0 = 0; k0 < K; k0 += 16) {
    tl_b16x4 a, b;
    for (int j = 0; j < 4; ++j) {
      a[j] = (short)TL_LD(A, (l % 16) * K + k0 + 4 * (l / 16) + j);
      b[j] = (short)TL_LD(B, (k0 + 4 * (l / 16) + j) * 16 + l % 16);
    }
    tl_mfma_16x16x16_f16(acc, a, b);
  }
  for (int r = 0; r < 4; ++r) TL_ST(D, (4 * r + l / 16) * 16 + l % 16, acc[r]);
}
