// Block reductions: warp shuffles, then one partial per warp through shared memory.
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// out[b] = sum and max of X[b*n .. b*n+n), blockDim.x a multiple of 32, at most 1024.
extern "C" __global__ void __launch_bounds__(256) block_reduce(float* __restrict__ S, float* __restrict__ Mx,
                                                              const float* __restrict__ X, int n) {
  __shared__ float ps[32];
  __shared__ float pm[32];
  int t = threadIdx.x, lane = t & 31, warp = t >> 5, nwarps = blockDim.x >> 5;
  const float* row = X + (long long)blockIdx.x * n;
  float s = 0.0f, m = -INFINITY;
  for (int i = t; i < n; i += blockDim.x) {
    float v = TL_LD(row, i);
    s += v;
    m = fmaxf(m, v);
  }
  s = warp_sum(s);
  m = warp_max(m);
  if (lane == 0) {
    ps[warp] = s;
    pm[warp] = m;
  }
  __syncthreads();
  if (warp == 0) {
    s = lane < nwarps ? ps[lane] : 0.0f;
    m = lane < nwarps ? pm[lane] : -INFINITY;
    s = warp_sum(s);
    m = warp_max(m);
    if (lane == 0) {
      TL_ST(S, blockIdx.x, s);
      TL_ST(Mx, blockIdx.x, m);
    }
  }
}

// Per warp: an inclusive scan with __shfl_up_sync, and ballot/any/all of (x > 0).
extern "C" __global__ void __launch_bounds__(64) warp_votes(float* __restrict__ Scan, unsigned* __restrict__ Votes,
                                                           const float* __restrict__ X) {
  int t = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x & 31;
  float v = TL_LD(X, t);
  for (int o = 1; o < 32; o <<= 1) {
    float u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  TL_ST(Scan, t, v);
  unsigned ballot = __ballot_sync(0xffffffffu, TL_LD(X, t) > 0.0f);
  int any = __any_sync(0xffffffffu, TL_LD(X, t) > 0.0f);
  int all = __all_sync(0xffffffffu, TL_LD(X, t) > 0.0f);
  int bcast = __shfl_sync(0xffffffffu, lane * 10, 3);   // every lane gets lane 3's value
  __syncwarp();
  if (lane == 0) {
    int w = t >> 5;
    TL_ST(Votes, w * 4 + 0, ballot);
    TL_ST(Votes, w * 4 + 1, (unsigned)any);
    TL_ST(Votes, w * 4 + 2, (unsigned)all);
    TL_ST(Votes, w * 4 + 3, (unsigned)bcast);
  }
}
