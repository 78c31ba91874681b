// sm_90 primitives (issue #21): wgmma, TMA and mbarriers, one instruction family per kernel group, for the
// emulator tests (tests/emu/test_emu_hopper.py) and for ptxas with -arch=sm_90a (wgmma needs the arch-specific
// target, so these fixtures live apart from kernels/, which test_emu_nvcc compiles for plain sm_90).
extern __shared__ __align__(1024) unsigned char tl_dyn[];

// Dynamic shared memory from its first 1024-byte boundary: the swizzle patterns repeat every 1024 bytes of
// address, so tiles start there (the launch asks for 1024 bytes of slack).
__device__ __forceinline__ unsigned char* smem_base() {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(tl_dyn) + 1023ull) & ~1023ull);
}

// ---- wgmma, one instruction: the block (one warpgroup) copies a byte image of shared memory from Img, builds
// the descriptors from P = {a_off, b_off, lbo_a, sbo_a, swizzle_a, lbo_b, sbo_b, swizzle_b, scale_d}, loads
// its accumulators from C and its A registers (the _rs forms) from Areg, runs one wgmma and stores every
// thread's accumulators to D[thread][register].
enum { F16, BF16, TF32, F16_MN, F16_RS, TF32_RS, BF16_RS_MN };
template <int N, int Mode>
__device__ void wg_unit(float* D, const unsigned char* Img, int nbytes, const int* P, const float* C,
                        const unsigned* Areg) {
  unsigned char* s = smem_base();
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) s[i] = TL_LD(Img, i);
  tl_fence_proxy_async();   // generic-proxy writes, read by wgmma through the async proxy
  __syncthreads();
  int t = threadIdx.x;
  float d[N / 2];
  for (int j = 0; j < N / 2; ++j) d[j] = TL_LD(C, t * (N / 2) + j);
  unsigned a[4];
  for (int i = 0; i < 4; ++i) a[i] = TL_LD(Areg, t * 4 + i);
  unsigned long long da = tl_wgmma_desc(s + TL_LD(P, 0), TL_LD(P, 2), TL_LD(P, 3), TL_LD(P, 4));
  unsigned long long db = tl_wgmma_desc(s + TL_LD(P, 1), TL_LD(P, 5), TL_LD(P, 6), TL_LD(P, 7));
  int scale_d = TL_LD(P, 8);
  tl_wgmma_fence_operand(d);
  tl_wgmma_fence();
  if constexpr (Mode == F16) tl_wgmma_f16<N>(d, da, db, scale_d);
  if constexpr (Mode == BF16) tl_wgmma_bf16<N>(d, da, db, scale_d);
  if constexpr (Mode == TF32) tl_wgmma_tf32<N>(d, da, db, scale_d);
  if constexpr (Mode == F16_MN) tl_wgmma_f16<N, 1, 1>(d, da, db, scale_d);
  if constexpr (Mode == F16_RS) tl_wgmma_f16_rs<N>(d, a, db, scale_d);
  if constexpr (Mode == TF32_RS) tl_wgmma_tf32_rs<N>(d, a, db, scale_d);
  if constexpr (Mode == BF16_RS_MN) tl_wgmma_bf16_rs<N, 1>(d, a, db, scale_d);
  tl_wgmma_commit();
  tl_wgmma_wait<0>();
  tl_wgmma_fence_operand(d);
  for (int j = 0; j < N / 2; ++j) TL_ST(D, t * (N / 2) + j, d[j]);
}
extern "C" __global__ void __launch_bounds__(128) wg_f16_n8(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<8, F16>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_f16_n64(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<64, F16>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_f16_n256(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<256, F16>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_bf16_n32(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<32, BF16>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_tf32_n16(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<16, TF32>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_f16_mn_n16(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<16, F16_MN>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_f16_rs_n16(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<16, F16_RS>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_tf32_rs_n8(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<8, TF32_RS>(D, Img, nbytes, P, C, Areg);
}
extern "C" __global__ void __launch_bounds__(128) wg_bf16_rs_mn_n24(float* D, const unsigned char* Img, int nbytes, const int* P,
    const float* C, const unsigned* Areg) {
  wg_unit<24, BF16_RS_MN>(D, Img, nbytes, P, C, Areg);
}

// ---- a 64 x N tile of D = A (64 x K, row-major f16) * B^T (B: N x K, row-major f16), K a multiple of 64,
// through TMA (128-byte swizzled boxes of 64 K-elements) -> mbarrier -> 4 wgmma m64nNk16 per K block -> store.
// gemm_misuse's `bug` makes one mistake on purpose: 1 announces 1024 bytes too many (expect_tx), 2 stores the
// accumulators without waiting for the wgmma, 3 issues the first wgmma without a fence, 4 reads the tiles
// without waiting on the barrier. The gemm_nN kernels cannot (Misuse false), so ptxas sees the correct chain
// alone: no wait injected (C7517), no wgmma serialised.
template <int N, bool Misuse>
__device__ void gemm_tile(float* D, const TlTensorMap& ma, const TlTensorMap& mb, int K, int bug) {
  if (!Misuse) bug = 0;
  unsigned char* s = smem_base();
  unsigned char* sa = s;                  // 64 rows x 128 bytes, swizzled
  unsigned char* sb = s + 64 * 128;       // N rows x 128 bytes
  unsigned long long* bar = reinterpret_cast<unsigned long long*>(s + 64 * 128 + N * 128);
  int t = threadIdx.x;
  if (t == 0) {
    tl_mbarrier_init(bar, 1);
    tl_mbarrier_init_fence();
  }
  __syncthreads();
  float d[N / 2];
  for (int j = 0; j < N / 2; ++j) d[j] = 0.0f;
  unsigned phase = 0;
  for (int kb = 0; kb < K / 64; ++kb) {
    if (t == 0) {
      tl_mbarrier_arrive_expect_tx(bar, (64 + N) * 128 + (bug == 1 ? 1024 : 0));
      tl_tma_load_2d(sa, ma, bar, kb * 64, blockIdx.y * 64);
      tl_tma_load_2d(sb, mb, bar, kb * 64, blockIdx.x * N);
    }
    if (bug != 4) tl_mbarrier_wait_parity(bar, phase);
    phase ^= 1u;
    tl_wgmma_fence_operand(d);
    if (bug != 3) tl_wgmma_fence();
    unsigned long long da = tl_wgmma_desc(sa, 16, 1024, 128), db = tl_wgmma_desc(sb, 16, 1024, 128);
#pragma unroll
    for (int k = 0; k < 4; ++k) tl_wgmma_f16<N>(d, da + 2 * k, db + 2 * k, 1);   // +32 bytes: the next 16 of K
    tl_wgmma_commit();
    if (bug != 2) tl_wgmma_wait<0>();
    tl_wgmma_fence_operand(d);
    __syncthreads();   // every warp is done with the tiles before thread 0 refills them
  }
  int w = t / 32, g = (t % 32) / 4, q = t % 4;
  for (int j = 0; j < N / 2; ++j) {
    int row = blockIdx.y * 64 + 16 * w + g + 8 * ((j % 4) / 2), col = blockIdx.x * N + 8 * (j / 4) + 2 * q + j % 2;
    TL_ST(D, row * (gridDim.x * N) + col, d[j]);
  }
}
// A and B are passed as pointers too: the emulator checks TMA reads against the array arguments. (Kernels
// are written out, not made by a macro: the emulator reads their signatures from the source.)
extern "C" __global__ void __launch_bounds__(128) gemm_n64(float* D, const half* A, const half* B,
    const __grid_constant__ TlTensorMap ma, const __grid_constant__ TlTensorMap mb, int K, int bug) {
  gemm_tile<64, false>(D, ma, mb, K, bug);
}
extern "C" __global__ void __launch_bounds__(128) gemm_n128(float* D, const half* A, const half* B,
    const __grid_constant__ TlTensorMap ma, const __grid_constant__ TlTensorMap mb, int K, int bug) {
  gemm_tile<128, false>(D, ma, mb, K, bug);
}
extern "C" __global__ void __launch_bounds__(128) gemm_n256(float* D, const half* A, const half* B,
    const __grid_constant__ TlTensorMap ma, const __grid_constant__ TlTensorMap mb, int K, int bug) {
  gemm_tile<256, false>(D, ma, mb, K, bug);
}
extern "C" __global__ void __launch_bounds__(128) gemm_misuse(float* D, const half* A, const half* B,
    const __grid_constant__ TlTensorMap ma, const __grid_constant__ TlTensorMap mb, int K, int bug) {
  gemm_tile<64, true>(D, ma, mb, K, bug);
}

// ---- TMA alone: thread 0 loads one box into shared memory; after the barrier every thread copies the raw
// bytes out, so a test sees the box's placement (swizzle) and fill byte for byte. The tensor is an argument
// for the emulator's bounds checks only.
__device__ void tma_out(unsigned char* Out, int nbytes, unsigned long long* bar) {
  tl_mbarrier_wait_parity(bar, 0);
  unsigned char* s = smem_base();
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) TL_ST(Out, i, s[i]);
}
__device__ unsigned long long* tma_setup(int nbytes) {
  unsigned long long* bar = reinterpret_cast<unsigned long long*>(smem_base() + ((nbytes + 127) & ~127));
  if (threadIdx.x == 0) {
    tl_mbarrier_init(bar, 1);
    tl_mbarrier_init_fence();
    tl_mbarrier_arrive_expect_tx(bar, nbytes);
  }
  __syncthreads();
  return bar;
}
extern "C" __global__ void __launch_bounds__(64) tma_1d(unsigned char* Out, const unsigned char* T,
                                                      const __grid_constant__ TlTensorMap m, int nbytes, int c0) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_1d(smem_base(), m, bar, c0);
  tma_out(Out, nbytes, bar);
}
extern "C" __global__ void __launch_bounds__(64) tma_2d(unsigned char* Out, const unsigned char* T,
                                                      const __grid_constant__ TlTensorMap m, int nbytes, int c0,
                                                      int c1) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_2d(smem_base(), m, bar, c0, c1);
  tma_out(Out, nbytes, bar);
}
extern "C" __global__ void __launch_bounds__(64) tma_3d(unsigned char* Out, const unsigned char* T,
                                                      const __grid_constant__ TlTensorMap m, int nbytes, int c0,
                                                      int c1, int c2) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_3d(smem_base(), m, bar, c0, c1, c2);
  tma_out(Out, nbytes, bar);
}
extern "C" __global__ void __launch_bounds__(64) tma_4d(unsigned char* Out, const unsigned char* T,
                                                      const __grid_constant__ TlTensorMap m, int nbytes, int c0,
                                                      int c1, int c2, int c3) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_4d(smem_base(), m, bar, c0, c1, c2, c3);
  tma_out(Out, nbytes, bar);
}
extern "C" __global__ void __launch_bounds__(64) tma_5d(unsigned char* Out, const unsigned char* T,
                                                      const __grid_constant__ TlTensorMap m, int nbytes, int c0,
                                                      int c1, int c2, int c3, int c4) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_5d(smem_base(), m, bar, c0, c1, c2, c3, c4);
  tma_out(Out, nbytes, bar);
}
// Reads the box without waiting on its barrier: a missing wait.
extern "C" __global__ void __launch_bounds__(64) tma_no_wait(unsigned char* Out, const unsigned char* T,
                                                           const __grid_constant__ TlTensorMap m, int nbytes, int c0,
                                                           int c1) {
  unsigned long long* bar = tma_setup(nbytes);
  if (threadIdx.x == 0) tl_tma_load_2d(smem_base(), m, bar, c0, c1);
  __syncthreads();
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) TL_ST(Out, i, smem_base()[i]);
}

// Multicast over a cluster of 2: block 0 loads one box for both; each block waits on its own barrier (at the
// same TL_SHARED offset) and writes what it received to Out[block].
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(64)
    tma_multicast(unsigned char* Out, const unsigned char* T, const __grid_constant__ TlTensorMap m, int nbytes,
                  int c0, int c1) {
  TL_SHARED(unsigned char, raw, [4096 + 128]);
  TL_SHARED(unsigned long long, bar, [1]);
  // TMA destinations are 128-byte aligned; the same offset in every block of the cluster.
  unsigned char* box = reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(&raw[0]) + 127ull) & ~127ull);
  if (threadIdx.x == 0) {
    tl_mbarrier_init(bar, 1);
    tl_mbarrier_init_fence();
    tl_mbarrier_arrive_expect_tx(bar, nbytes);
  }
  tl_cluster_sync();   // both barriers exist before block 0's copy signals them
  if (tl_cluster_rank() == 0 && threadIdx.x == 0) tl_tma_load_multicast_2d(box, m, bar, 0x3, c0, c1);
  tl_mbarrier_wait_parity(bar, 0);
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) TL_ST(Out, blockIdx.x * nbytes + i, box[i]);
  tl_cluster_sync();   // a block's shared memory lives until its peers are done with it
}

// ---- mbarrier phases: a count-2 barrier; R records try_wait's answers as the phases advance through
// arrivals and transaction bytes (arrive's state token is opaque on a GPU, so it is not recorded).
extern "C" __global__ void __launch_bounds__(32) mbar_phases(int* R) {
  __shared__ __align__(8) unsigned long long bar;
  if (threadIdx.x == 0) {
    tl_mbarrier_init(&bar, 2);
    TL_ST(R, 0, int(tl_mbarrier_try_wait_parity(&bar, 0)));            // 0: phase 0 not complete
    TL_ST(R, 1, int(tl_mbarrier_try_wait_parity(&bar, 1)));            // 1: the phase before phase 0 counts as complete
    tl_mbarrier_arrive(&bar);
    TL_ST(R, 2, int(tl_mbarrier_try_wait_parity(&bar, 0)));            // 0: one arrival of two
    tl_mbarrier_arrive_expect_tx(&bar, 256);                           // second arrival, 256 bytes owed
    TL_ST(R, 3, int(tl_mbarrier_try_wait_parity(&bar, 0)));            // 0: tx-count 256
    tl_mbarrier_complete_tx(&bar, 256);
    TL_ST(R, 4, int(tl_mbarrier_try_wait_parity(&bar, 0)));            // 1: phase 0 complete
    TL_ST(R, 5, int(tl_mbarrier_try_wait_parity(&bar, 1)));            // 0: phase 1 open
    tl_mbarrier_complete_tx(&bar, 64);                                 // bytes before their expect_tx: -64
    tl_mbarrier_arrive(&bar);
    tl_mbarrier_expect_tx(&bar, 64);                                   // back to 0, one arrival pending
    TL_ST(R, 6, int(tl_mbarrier_try_wait_parity(&bar, 1)));            // 0
    tl_mbarrier_arrive(&bar);
    TL_ST(R, 7, int(tl_mbarrier_try_wait_parity(&bar, 0)));            // 0: phase 2 (parity 0) just opened
    TL_ST(R, 8, int(tl_mbarrier_try_wait_parity(&bar, 1)));            // 1
  }
}

// A consumer warp waits for a producer warp's two arrivals per phase, for `rounds` phases; `bug` = 1 makes
// the producer announce 16 bytes that never come.
extern "C" __global__ void __launch_bounds__(64) mbar_pipeline(int* Out, int rounds, int bug) {
  __shared__ __align__(8) unsigned long long full;
  __shared__ int data;
  if (threadIdx.x == 0) tl_mbarrier_init(&full, 2);
  __syncthreads();
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) {
      data = r + 1;
      tl_mbarrier_arrive(&full);
      if (bug) tl_mbarrier_arrive_expect_tx(&full, 16); else tl_mbarrier_arrive(&full);
    }
    if (threadIdx.x == 32) {
      tl_mbarrier_wait_parity(&full, unsigned(r) & 1u);
      TL_ST(Out, r, data);
    }
    __syncthreads();
  }
}

extern "C" __global__ void __launch_bounds__(32) mbar_uninitialised(int* Out) {
  __shared__ __align__(8) unsigned long long bar;
  TL_ST(Out, 0, int(tl_mbarrier_try_wait_parity(&bar, 0)));
}

// A warp that reaches __syncthreads while the other three wait for it at a wgmma: a deadlock. With 96 threads
// the block is not a whole warpgroup.
extern "C" __global__ void __launch_bounds__(128) wg_divergent(float* D) {
  TL_SHARED(unsigned char, raw, [2048 + 1024]);
  unsigned char* s = reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(&raw[0]) + 1023ull) & ~1023ull);
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (threadIdx.x < 96) {
    tl_wgmma_fence();
    tl_wgmma_f16<8>(d, tl_wgmma_desc(s, 16, 128, 0), tl_wgmma_desc(s + 1024, 16, 128, 0), 0);
    tl_wgmma_commit();
    tl_wgmma_wait<0>();
  }
  __syncthreads();
  TL_ST(D, threadIdx.x, d[0]);
}

// Every block of a 4-block cluster arrives on block 0's barrier (count 4); block 0 waits for them, `rounds`
// times, and counts the phases it saw.
extern "C" __global__ void __cluster_dims__(4, 1, 1) __launch_bounds__(32) mbar_cluster(int* Out, int rounds) {
  TL_SHARED(unsigned long long, bar, [1]);
  if (threadIdx.x == 0) {
    tl_mbarrier_init(bar, 4);
    tl_mbarrier_init_fence();
  }
  tl_cluster_sync();
  for (int r = 0; r < rounds; ++r) {
    if (threadIdx.x == 0) tl_mbarrier_arrive_cluster(bar, 0);
    if (tl_cluster_rank() == 0 && threadIdx.x == 0) {
      tl_mbarrier_wait_parity(bar, unsigned(r) & 1u);
      TL_ST(Out, blockIdx.x / 4, TL_LD(Out, blockIdx.x / 4) + 1);
    }
    tl_cluster_sync();   // the next round's arrivals belong to the next phase
  }
}

// One wgmma whose B tile is refilled (`when` = 0: before the wait, a race; 1: after it) by thread 0.
extern "C" __global__ void __launch_bounds__(128) wg_refill(float* D, int when) {
  TL_SHARED(unsigned char, raw, [4096 + 1024]);
  unsigned char* s = reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(&raw[0]) + 1023ull) & ~1023ull);
  for (int i = threadIdx.x; i < 4096; i += blockDim.x) s[i] = (unsigned char)(i % 7 == 0 ? 0x3c : 0);
  tl_fence_proxy_async();
  __syncthreads();
  float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  tl_wgmma_fence();
  tl_wgmma_f16<8>(d, tl_wgmma_desc(s, 128, 256, 0), tl_wgmma_desc(s + 2048, 128, 256, 0), 0);
  tl_wgmma_commit();
  if (when == 1) tl_wgmma_wait<0>();
  __syncthreads();
  if (threadIdx.x == 0) s[2048 + 2] = 0x3c;   // the next stage's data arrives in B's buffer
  __syncthreads();
  tl_wgmma_wait<0>();
  TL_ST(D, threadIdx.x, d[0]);
}

// The warp-specialised pipeline the sm_90 engine will build (CUTLASS's sm90 TMA + GMMA mainloop, reduced):
// the warpgroups rebalance registers (setmaxnreg); warpgroup 0's first thread produces, filling stage kb % 2 by TMA once the consumers have released it (empty
// barrier, 128 arrivals) and announcing it on the full barrier; warpgroup 1 consumes, keeping one wgmma group
// in flight (wait<1>) and releasing a stage only once the group that read it has completed. 64 x 128 tile,
// K a multiple of 64.
extern "C" __global__ void __launch_bounds__(256) gemm_ws(float* D, const half* A, const half* B,
    const __grid_constant__ TlTensorMap ma, const __grid_constant__ TlTensorMap mb, int K) {
  constexpr int N = 128, S = 2, STAGE = 64 * 128 + N * 128;
  unsigned char* s = smem_base();
  unsigned long long* full = reinterpret_cast<unsigned long long*>(s + S * STAGE);
  unsigned long long* empty = full + S;
  int t = threadIdx.x, kblocks = K / 64;
  if (t == 0) {
    for (int i = 0; i < S; ++i) {
      tl_mbarrier_init(&full[i], 1);
      tl_mbarrier_init(&empty[i], 128);
    }
    tl_mbarrier_init_fence();
  }
  __syncthreads();
  if (t < 128) {   // producer warpgroup: gives registers back; one thread issues, the others are done
    tl_setmaxnreg_dec<40>();
    if (t == 0)
      for (int kb = 0; kb < kblocks; ++kb) {
        int st = kb % S;
        if (kb >= S) tl_mbarrier_wait_parity(&empty[st], unsigned(kb / S - 1) & 1u);
        tl_mbarrier_arrive_expect_tx(&full[st], STAGE);
        tl_tma_load_2d(s + st * STAGE, ma, &full[st], kb * 64, blockIdx.y * 64);
        tl_tma_load_2d(s + st * STAGE + 64 * 128, mb, &full[st], kb * 64, blockIdx.x * N);
      }
    return;
  }
  tl_setmaxnreg_inc<232>();   // the consumer warpgroup takes them
  float d[N / 2];
  for (int j = 0; j < N / 2; ++j) d[j] = 0.0f;
  for (int kb = 0; kb < kblocks; ++kb) {
    int st = kb % S;
    tl_mbarrier_wait_parity(&full[st], unsigned(kb / S) & 1u);
    unsigned long long da = tl_wgmma_desc(s + st * STAGE, 16, 1024, 128);
    unsigned long long db = tl_wgmma_desc(s + st * STAGE + 64 * 128, 16, 1024, 128);
    tl_wgmma_fence_operand(d);
    tl_wgmma_fence();
#pragma unroll
    for (int k = 0; k < 4; ++k) tl_wgmma_f16<N>(d, da + 2 * k, db + 2 * k, 1);
    tl_wgmma_commit();
    tl_wgmma_wait<1>();   // the previous K block's group is done: its stage can be refilled
    tl_wgmma_fence_operand(d);
    if (kb > 0) tl_mbarrier_arrive(&empty[(kb - 1) % S]);
  }
  tl_wgmma_wait<0>();
  tl_wgmma_fence_operand(d);
  int c = t - 128, w = c / 32, g = (c % 32) / 4, q = c % 4;
  for (int j = 0; j < N / 2; ++j) {
    int row = blockIdx.y * 64 + 16 * w + g + 8 * ((j % 4) / 2), col = blockIdx.x * N + 8 * (j / 4) + 2 * q + j % 2;
    TL_ST(D, row * (gridDim.x * N) + col, d[j]);
  }
}

// setmaxnreg with one warp of the warpgroup asking for another count (`bad`).
extern "C" __global__ void __launch_bounds__(128) wg_setmaxnreg(int* Out, int bad) {
  if (bad && threadIdx.x >= 96)
    tl_setmaxnreg_dec<48>();
  else
    tl_setmaxnreg_dec<40>();
  TL_ST(Out, threadIdx.x, 1);
}

// TMA store: the block writes a pattern into a staging box (as a load would lay it out: the caller passes the
// byte image), then thread 0 stores it at (c0, c1) and waits for the read; `bug` = 1 refills the staging
// buffer before that wait.
extern "C" __global__ void __launch_bounds__(64) tma_store_2d(unsigned char* T, const unsigned char* Img,
    const __grid_constant__ TlTensorMap m, int nbytes, int c0, int c1, int bug) {
  unsigned char* s = smem_base();
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) s[i] = TL_LD(Img, i);
  tl_fence_proxy_async();   // the generic writes, before the async proxy reads them
  __syncthreads();
  if (threadIdx.x == 0) {
    tl_tma_store_2d(m, s, c0, c1);
    tl_tma_store_commit();
    if (bug) s[0] ^= 1;
    tl_tma_store_wait_read<0>();
    tl_tma_store_wait<0>();
  }
}
