// Tiled shared-memory matmul C[M,N] = A[M,K] @ B[K,N], 16x16 tiles, one output per thread.
#define MM_T 16

extern "C" __global__ void __launch_bounds__(256) matmul_tiled(float* __restrict__ C, const float* __restrict__ A,
                                                              const float* __restrict__ B, int M, int N, int K) {
  __shared__ float As[MM_T][MM_T + 1];
  __shared__ float Bs[MM_T][MM_T + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * MM_T + ty, col = blockIdx.x * MM_T + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += MM_T) {
    As[ty][tx] = (row < M && k0 + tx < K) ? TL_LD(A, row * K + k0 + tx) : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? TL_LD(B, (k0 + ty) * N + col) : 0.0f;
    __syncthreads();
#pragma unroll
    for (int k = 0; k < MM_T; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) TL_ST(C, row * N + col, acc);
}

// The same with TL_SHARED (per-block arena) instead of plain __shared__.
extern "C" __global__ void __launch_bounds__(256) matmul_arena(float* __restrict__ C, const float* __restrict__ A,
                                                              const float* __restrict__ B, int M, int N, int K) {
  TL_SHARED(float, As, [MM_T][MM_T + 1]);
  TL_SHARED(float, Bs, [MM_T][MM_T + 1]);
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * MM_T + ty, col = blockIdx.x * MM_T + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += MM_T) {
    As[ty][tx] = (row < M && k0 + tx < K) ? TL_LD(A, row * K + k0 + tx) : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? TL_LD(B, (k0 + ty) * N + col) : 0.0f;
    __syncthreads();
    for (int k = 0; k < MM_T; ++k) acc += As[ty][k] * Bs[k][tx];
    __syncthreads();
  }
  if (row < M && col < N) TL_ST(C, row * N + col, acc);
}

// BUG ON PURPOSE: the __syncthreads after the inner product is missing, so a fast thread overwrites the
// tile while slower ones still read it.
extern "C" __global__ void __launch_bounds__(256) matmul_racy(float* __restrict__ C, const float* __restrict__ A,
                                                             const float* __restrict__ B, int M, int N, int K) {
  __shared__ float As[MM_T][MM_T + 1];
  __shared__ float Bs[MM_T][MM_T + 1];
  int tx = threadIdx.x, ty = threadIdx.y;
  int row = blockIdx.y * MM_T + ty, col = blockIdx.x * MM_T + tx;
  float acc = 0.0f;
  for (int k0 = 0; k0 < K; k0 += MM_T) {
    As[ty][tx] = (row < M && k0 + tx < K) ? TL_LD(A, row * K + k0 + tx) : 0.0f;
    Bs[ty][tx] = (k0 + ty < K && col < N) ? TL_LD(B, (k0 + ty) * N + col) : 0.0f;
    __syncthreads();
    for (int k = 0; k < MM_T; ++k) acc += As[ty][k] * Bs[k][tx];
  }
  if (row < M && col < N) TL_ST(C, row * N + col, acc);
}

// BUG ON PURPOSE: reads a neighbour's shared slot with no barrier. Right when threads happen to run in
// order (thread t-1 wrote before t reads), NaN under `reverse` (the slot is still poisoned).
extern "C" __global__ void __launch_bounds__(128) shift_racy(float* __restrict__ Y, const float* __restrict__ X) {
  __shared__ float s[128];
  int t = threadIdx.x, base = blockIdx.x * 128;
  s[t] = TL_LD(X, base + t);
  TL_ST(Y, base + t, t > 0 ? s[t - 1] : 0.0f);
}
