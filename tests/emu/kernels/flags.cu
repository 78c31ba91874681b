// Blocks that wait on each other through tl_wait_geq / tl_signal (persistent-kernel style).
// Block 0 consumes what block 1 produces, so block 0 must yield while it waits.
extern "C" __global__ void __launch_bounds__(64) produce_consume(float* __restrict__ Y, float* __restrict__ Buf,
                                                                int* __restrict__ Flag, int n) {
  int t = threadIdx.x;
  if (blockIdx.x == 1) {
    for (int i = t; i < n; i += blockDim.x) TL_ST(Buf, i, (float)(i * 2));
    __syncthreads();
    if (t == 0) tl_signal(Flag, 1);
  } else {
    if (t == 0) tl_wait_geq(Flag, 1);
    __syncthreads();
    for (int i = t; i < n; i += blockDim.x) TL_ST(Y, i, TL_LD(Buf, i) + 1.0f);
  }
}

// BUG ON PURPOSE: waits for a flag nobody raises.
extern "C" __global__ void __launch_bounds__(32) wait_forever(int* __restrict__ Flag) {
  tl_wait_geq(Flag, 1);
}

// BUG ON PURPOSE: lane 0 waits at __syncthreads while the other lanes wait for it in __syncwarp.
extern "C" __global__ void __launch_bounds__(32) divergent_barrier(int* __restrict__ Out) {
  if ((threadIdx.x & 31) == 0) __syncthreads();
  else __syncwarp();
  TL_ST(Out, threadIdx.x, 1);
}
