// HIP kernels for the 64-lane wavefront emulation (tests/emu/test_emu_wave64.py), written as HIP code is:
// maskless shuffles and votes, warpSize, 64-bit ballots.

// One sum per wavefront of X, the width taken from warpSize: right on 32- and 64-lane targets alike.
extern "C" __global__ void __launch_bounds__(256) wave_sum(float* __restrict__ Out, const float* __restrict__ X) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  float v = TL_LD(X, t);
  for (int o = warpSize / 2; o > 0; o >>= 1) v += __shfl_xor(v, o);
  if (__lane_id() == 0) TL_ST(Out, t / warpSize, v);
}

// The same, written for 32-lane warps: the butterfly stops at offset 16, so on a 64-lane wavefront lane 0
// holds the sum of lanes 0..31 only. Silent on a GPU; the test checks the emulator shows the wrong result.
extern "C" __global__ void __launch_bounds__(256) wave_sum_assumes_32(float* __restrict__ Out,
                                                                     const float* __restrict__ X) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  float v = TL_LD(X, t);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor(v, o);
  if (__lane_id() == 0) TL_ST(Out, t / warpSize, v);
}

// A block reduction over wavefronts: shuffles down, one partial per wavefront in shared memory, then the first
// wavefront reduces the partials. blockDim.x a multiple of warpSize.
extern "C" __global__ void __launch_bounds__(1024) block_sum(float* __restrict__ Out, const float* __restrict__ X,
                                                             int n) {
  __shared__ float part[32];
  int t = threadIdx.x, lane = t % warpSize, wave = t / warpSize, waves = blockDim.x / warpSize;
  float s = 0.0f;
  for (int i = t; i < n; i += blockDim.x) s += TL_LD(X, (long long)blockIdx.x * n + i);
  for (int o = warpSize / 2; o > 0; o >>= 1) s += __shfl_down(s, o);
  if (lane == 0) part[wave] = s;
  __syncthreads();
  if (wave == 0) {
    s = lane < waves ? part[lane] : 0.0f;
    for (int o = warpSize / 2; o > 0; o >>= 1) s += __shfl_down(s, o);
    if (lane == 0) TL_ST(Out, blockIdx.x, s);
  }
}

// Per wavefront: an inclusive scan (__shfl_up), the 64-bit ballot of (x > 0) as two words, __any, __all, a
// broadcast of lane 37's value, readfirstlane and ds_bpermute (lane (lane + 1) % warpSize).
extern "C" __global__ void __launch_bounds__(128) wave_votes(float* __restrict__ Scan, unsigned* __restrict__ Votes,
                                                            int* __restrict__ Perm, const float* __restrict__ X) {
  int t = blockIdx.x * blockDim.x + threadIdx.x, lane = __lane_id();
  float v = TL_LD(X, t);
  for (int o = 1; o < warpSize; o <<= 1) {
    float u = __shfl_up(v, o);
    if (lane >= o) v += u;
  }
  TL_ST(Scan, t, v);
  float x = TL_LD(X, t);
  unsigned long long ballot = __ballot(x > 0.0f);
  int any = __any(x > 0.0f), all = __all(x > 0.0f);
  int bcast = __shfl(lane * 10, 37);
  int first = __builtin_amdgcn_readfirstlane(lane + 100);
  TL_ST(Perm, t, __builtin_amdgcn_ds_bpermute(((lane + 1) % warpSize) * 4, lane));
  if (lane == 0) {
    int w = t / warpSize;
    TL_ST(Votes, w * 6 + 0, (unsigned)ballot);
    TL_ST(Votes, w * 6 + 1, (unsigned)(ballot >> 32));
    TL_ST(Votes, w * 6 + 2, (unsigned)any);
    TL_ST(Votes, w * 6 + 3, (unsigned)all);
    TL_ST(Votes, w * 6 + 4, (unsigned)bcast);
    TL_ST(Votes, w * 6 + 5, (unsigned)first);
  }
}

// HIP's types and atomics: bf16 and half round trips, a float atomicAdd (and HIP's unsafeAtomicAdd) per block.
extern "C" __global__ void __launch_bounds__(64) hip_types(float* __restrict__ Total, float* __restrict__ Round,
                                                          const float* __restrict__ X) {
  int t = blockIdx.x * blockDim.x + threadIdx.x;
  float x = TL_LD(X, t);
  __hip_bfloat16 b = __float2bfloat16(x);
  __half h = __float2half(x);
  TL_ST(Round, 2 * t, __bfloat162float(b));
  TL_ST(Round, 2 * t + 1, __half2float(h));
  hip_bfloat16 hb = hip_bfloat16(x);   // the older struct type: a type of its own in HIP
  TL_ST(Round, 512 + t, static_cast<float>(hb + hb));
  atomicAdd(Total, x);
  unsafeAtomicAdd(Total + 1, 1.0f);
}

// Half a wavefront reduces with width-32 shuffles while the other half goes on to the barrier: a shuffle of
// width 32 reads only its own 32-lane group, so it meets that group alone. With `full`, the shuffles span the
// 64-lane wavefront and wait for lanes that never come: a deadlock.
extern "C" __global__ void __launch_bounds__(64) half_wave(float* __restrict__ Out, const float* __restrict__ X,
                                                          int full) {
  int t = threadIdx.x;
  float v = TL_LD(X, t);
  if (t < 32) {
    for (int o = 16; o > 0; o >>= 1) v += full ? __shfl_xor(v, o) : __shfl_xor(v, o, 32);
    if (t == 0) TL_ST(Out, 0, v);
  }
  __syncthreads();
}
