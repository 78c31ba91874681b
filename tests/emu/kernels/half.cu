// Half precision: 16-bit storage, float compute.
extern "C" __global__ void __launch_bounds__(128) half_axpy(__half* __restrict__ Y, const __half* __restrict__ X,
                                                           const __half* __restrict__ B, float a, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float x = __half2float(TL_LD(X, i));
    TL_ST(Y, i, __float2half(fmaxf(a * x, 0.0f) + __half2float(TL_LD(B, i))));
  }
}

// Rounding of float -> half / bf16 (must match the GPU's round-to-nearest-even bit for bit).
extern "C" __global__ void __launch_bounds__(128) to_half(__half* __restrict__ H, __nv_bfloat16* __restrict__ Bf,
                                                         float* __restrict__ Back, const float* __restrict__ X,
                                                         int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    float x = TL_LD(X, i);
    __half h = __float2half(x);
    TL_ST(H, i, h);
    TL_ST(Bf, i, __float2bfloat16(x));
    TL_ST(Back, i, __half2float(h) + __bfloat162float(__float2bfloat16(x)));
  }
}
