// sm_80 tensor-core primitives, one instruction per kernel: every lane loads its own registers from global
// memory (row `lane` of a [32][n] array), runs the warp-collective instruction and stores its result
// registers, so a test can check each lane's registers against a numpy model of the PTX ISA's layouts.
template <void (*Mma)(float (&)[4], const unsigned (&)[4], const unsigned (&)[2], const float (&)[4])>
__device__ void mma_lane(float* D, const unsigned* A, const unsigned* B, const float* C) {
  int l = threadIdx.x;
  unsigned a[4], b[2];
  float c[4], d[4];
  for (int i = 0; i < 4; ++i) a[i] = TL_LD(A, l * 4 + i), c[i] = TL_LD(C, l * 4 + i);
  for (int i = 0; i < 2; ++i) b[i] = TL_LD(B, l * 2 + i);
  Mma(d, a, b, c);
  for (int i = 0; i < 4; ++i) TL_ST(D, l * 4 + i, d[i]);
}
extern "C" __global__ void __launch_bounds__(32) mma_f16(float* D, const unsigned* A, const unsigned* B, const float* C) {
  mma_lane<tl_mma_m16n8k16_f16f32>(D, A, B, C);
}
extern "C" __global__ void __launch_bounds__(32) mma_bf16(float* D, const unsigned* A, const unsigned* B, const float* C) {
  mma_lane<tl_mma_m16n8k16_bf16f32>(D, A, B, C);
}
extern "C" __global__ void __launch_bounds__(32) mma_tf32(float* D, const unsigned* A, const unsigned* B, const float* C) {
  mma_lane<tl_mma_m16n8k8_tf32f32>(D, A, B, C);
}

extern "C" __global__ void __launch_bounds__(128) cvt_tf32(unsigned* __restrict__ Y, const float* __restrict__ X, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) TL_ST(Y, i, tl_cvt_tf32(TL_LD(X, i)));
}

// ldmatrix: 32 rows of 8 b16 values staged in shared memory; lane l points at row Rows[l]. `mode` picks
// x1, x2, x4 (0..2) or their .trans forms (3..5); R[lane][0..3] gets the registers (unused ones zero).
extern "C" __global__ void __launch_bounds__(32) ldsm(unsigned* __restrict__ R, const unsigned short* __restrict__ M,
                                                      const int* __restrict__ Rows, int mode) {
  __shared__ __align__(16) unsigned short s[32 * 8];
  int l = threadIdx.x;
  for (int i = 0; i < 8; ++i) s[l * 8 + i] = TL_LD(M, l * 8 + i);
  __syncthreads();
  const void* row = &s[TL_LD(Rows, l) * 8];
  unsigned r[4] = {0, 0, 0, 0};
  unsigned (&r1)[1] = *reinterpret_cast<unsigned(*)[1]>(r);
  unsigned (&r2)[2] = *reinterpret_cast<unsigned(*)[2]>(r);
  if (mode == 0) tl_ldmatrix_x1(r1, row);
  if (mode == 1) tl_ldmatrix_x2(r2, row);
  if (mode == 2) tl_ldmatrix_x4(r, row);
  if (mode == 3) tl_ldmatrix_x1_trans(r1, row);
  if (mode == 4) tl_ldmatrix_x2_trans(r2, row);
  if (mode == 5) tl_ldmatrix_x4_trans(r, row);
  for (int i = 0; i < 4; ++i) TL_ST(R, l * 4 + i, r[i]);
}

// A 16x8 tile D = A (16x16, row-major f16) * B (16x8, row-major f16) by one warp, registers packed by hand
// from global memory. `wrong` != 0 swaps a[1] and a[2] (rows g+8 and columns 2t+8 mixed up), a layout slip
// that only an emulator with the ISA's layout catches.
extern "C" __global__ void __launch_bounds__(32) mma_tile(float* __restrict__ D, const half* __restrict__ A,
                                                          const half* __restrict__ B, int wrong) {
  int l = threadIdx.x, g = l / 4, t = l % 4;
  auto pack = [](half lo, half hi) {
    return unsigned(*reinterpret_cast<unsigned short*>(&lo)) | unsigned(*reinterpret_cast<unsigned short*>(&hi)) << 16;
  };
  unsigned a[4], b[2];
  for (int i = 0; i < 4; ++i) {
    int r = g + 8 * (i % 2), c = 2 * t + 8 * (i / 2);
    a[i] = pack(TL_LD(A, r * 16 + c), TL_LD(A, r * 16 + c + 1));
  }
  if (wrong) {
    unsigned x = a[1];
    a[1] = a[2], a[2] = x;
  }
  for (int i = 0; i < 2; ++i) b[i] = pack(TL_LD(B, (2 * t + 8 * i) * 8 + g), TL_LD(B, (2 * t + 8 * i + 1) * 8 + g));
  float c[4] = {0.0f, 0.0f, 0.0f, 0.0f}, d[4];
  tl_mma_m16n8k16_f16f32(d, a, b, c);
  for (int i = 0; i < 4; ++i) TL_ST(D, (g + 8 * (i / 2)) * 8 + 2 * t + i % 2, d[i]);
}

// cp.async in two commit groups (stage 0: G[0..256), stage 1: G[256..512)), then `wait` = 0: wait_group 1
// (stage 0 landed, stage 1 in flight), 1: wait_group 0 (both), 2: no wait at all (a bug). Out gets both
// stages as the block reads them after __syncthreads.
extern "C" __global__ void __launch_bounds__(64) cp_async_stages(float* __restrict__ Out, const float* __restrict__ G,
                                                                 int wait) {
  __shared__ __align__(16) float s[2][256];
  int t = threadIdx.x;
  tl_cp_async_16(&s[0][t * 4], G, t * 4);
  tl_cp_async_commit();
  tl_cp_async_16(&s[1][t * 4], G, 256 + t * 4);
  tl_cp_async_commit();
  if (wait == 0) tl_cp_async_wait<1>();
  if (wait == 1) tl_cp_async_wait<0>();
  __syncthreads();
  for (int i = t; i < 512; i += 64) TL_ST(Out, i, s[i / 256][i % 256]);
}

// The 8- and 4-byte forms and the zero-fill: thread t copies 16 bytes at G[4t] (zero-filled where 4t >= n),
// then 8 bytes at G[256 + 2t] and 4 bytes at G[384 + t].
extern "C" __global__ void __launch_bounds__(64) cp_async_sizes(float* __restrict__ Out, const float* __restrict__ G,
                                                                int n) {
  __shared__ __align__(16) float s[256 + 128 + 64];
  int t = threadIdx.x;
  tl_cp_async_16(&s[t * 4], G, t * 4 < n ? t * 4 : 0, t * 4 < n);
  tl_cp_async_8(&s[256 + t * 2], G, 256 + t * 2);
  tl_cp_async_4(&s[384 + t], G, 384 + t);
  tl_cp_async_wait_all();
  __syncthreads();
  for (int i = t; i < 448; i += 64) TL_ST(Out, i, s[i]);
}

// tl_swizzle_b16<C>: the offset of every (row, col) of an 8-row band of a [rows][C] tile (the swizzle's
// period), for C = 16 << which.
template <int C>
__device__ void swizzle_band(int* out) {
  for (int e = threadIdx.x; e < 8 * C; e += blockDim.x) TL_ST(out, e, tl_swizzle_b16<C>(e / C, e % C));
}
extern "C" __global__ void __launch_bounds__(128) swizzle(int* __restrict__ Out, int which) {
  if (which == 0) swizzle_band<16>(Out);
  if (which == 1) swizzle_band<32>(Out);
  if (which == 2) swizzle_band<64>(Out);
  if (which == 3) swizzle_band<128>(Out);
  if (which == 4) swizzle_band<256>(Out);
}
