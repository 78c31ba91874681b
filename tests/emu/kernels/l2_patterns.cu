// Access patterns for the L2 model's tests (tests/emu/test_l2_model.py): each block's sectors are known.

// y[i] = x[i]: every element loaded once and stored once (streaming).
extern "C" __global__ void l2_copy(const float* __restrict__ x, float* __restrict__ y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) TL_ST(y, i, TL_LD(x, i));
}

// Every block reads all of v[0, n) (its threads stride over it) and writes one partial sum: v is reused
// by every block of the grid.
extern "C" __global__ void l2_broadcast(const float* __restrict__ v, float* __restrict__ out, int n) {
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += TL_LD(v, i);
  if (threadIdx.x == 0) TL_ST(out, blockIdx.x * 8, s);   // one sector per block
}

// Block b stores y[b * chunk, (b + 1) * chunk) and nothing else.
extern "C" __global__ void l2_fill(float* __restrict__ y, int chunk) {
  for (int i = threadIdx.x; i < chunk; i += blockDim.x) TL_ST(y, blockIdx.x * chunk + i, 1.0f);
}
