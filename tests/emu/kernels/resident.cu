// Grids whose blocks wait on each other, for the emulator's resident-limit mode (issue #15).
// backward: block b waits for block b+1, so it needs every block resident at once (blocks start in grid
// order: with fewer resident slots than blocks, the waiting ones hold every slot). forward: block b waits
// for block b-1, which started before it, so it completes with any number of slots, one at a time.
extern "C" __global__ void __launch_bounds__(64) backward(int* __restrict__ Flags, int* __restrict__ Order,
                                                         int* __restrict__ Count) {
  int b = blockIdx.x;
  if (threadIdx.x == 0 && b + 1 < (int)gridDim.x) tl_wait_geq(Flags + b + 1, 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    TL_ST(Order, b, atomicAdd(Count, 1));
    tl_signal(Flags + b, 1);
  }
}

extern "C" __global__ void __launch_bounds__(64) forward(int* __restrict__ Flags, int* __restrict__ Order,
                                                        int* __restrict__ Count) {
  int b = blockIdx.x;
  if (threadIdx.x == 0 && b > 0) tl_wait_geq(Flags + b - 1, 1);
  __syncthreads();
  if (threadIdx.x == 0) {
    TL_ST(Order, b, atomicAdd(Count, 1));
    tl_signal(Flags + b, 1);
  }
}

// Counts how many blocks are live at once: each block enters, waits until a flag (raised by the last
// block to enter, or by nobody) and leaves. Peak[0] is the most blocks seen inside together.
extern "C" __global__ void __launch_bounds__(32) occupancy(int* __restrict__ Live, int* __restrict__ Peak) {
  if (threadIdx.x == 0) {
    int now = atomicAdd(Live, 1) + 1;
    atomicMax(Peak, now);
  }
  __syncthreads();
  if (threadIdx.x == 0) atomicSub(Live, 1);
}
