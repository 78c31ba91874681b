// Dynamic shared memory: reverse each block's slice through `extern __shared__`, sized by the launch.
extern "C" __global__ void __launch_bounds__(256) reverse_block(float* __restrict__ Y, const float* __restrict__ X) {
  extern __shared__ float buf[];
  int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
  buf[t] = TL_LD(X, base + t);
  __syncthreads();
  TL_ST(Y, base + t, buf[n - 1 - t]);
}
