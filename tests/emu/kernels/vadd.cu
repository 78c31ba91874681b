// Vector add with tail predication, and a float4 copy (vector global access).
extern "C" __global__ void __launch_bounds__(128) vadd(float* __restrict__ Y, const float* __restrict__ A,
                                                      const float* __restrict__ B, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) TL_ST(Y, i, TL_LD(A, i) + TL_LD(B, i));
}

extern "C" __global__ void __launch_bounds__(64) copy4(float* __restrict__ Y, const float* __restrict__ X, int n) {
  int i = (blockIdx.x * blockDim.x + threadIdx.x) * 4;
  if (i + 3 < n) TL_ST4(Y, i, TL_LD4(X, i));
}
