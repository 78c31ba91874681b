// Atomics: integer histogram, float sum, integer and float max/min, exchange and CAS.
extern "C" __global__ void __launch_bounds__(128) atomics(int* __restrict__ Hist, float* __restrict__ Acc,
                                                         int* __restrict__ IMax, unsigned* __restrict__ UMin,
                                                         float* __restrict__ FMax, int* __restrict__ Cnt,
                                                         const int* __restrict__ X, int n, int bins) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= n) return;
  int x = TL_LD(X, i);
  atomicAdd(&Hist[x % bins], 1);
  atomicAdd(Acc, (float)x);
  atomicMax(IMax, x);
  atomicMin(UMin, (unsigned)x);
  atomicMax(FMax, (float)x * 0.5f);
  // A CAS loop that counts, as user code often builds its own atomics.
  int old = Cnt[0], seen;
  while ((seen = atomicCAS(Cnt, old, old + 1)) != old) old = seen;
  atomicExch(Cnt + 1, 7);
}
