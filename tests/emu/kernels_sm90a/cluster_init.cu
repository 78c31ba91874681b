// The cluster visibility of mbarrier inits (issue #21), for tests/emu/test_emu_cluster_init.py and ptxas
// -arch=sm_90a: a peer's multicast complete_tx or remote arrive may reach a barrier only after its block's
// initialising thread issued fence.mbarrier_init.release.cluster and a cluster barrier opened after that fence
// (CUTLASS: fence_barrier_init, then cluster_sync). The emulator runs both blocks' inits in one phase, so these
// mistakes give the right bytes there; its init records fail them instead.
extern __shared__ __align__(1024) unsigned char ci_dyn[];

__device__ __forceinline__ unsigned char* ci_base() {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(ci_dyn) + 1023ull) & ~1023ull);
}

// A cluster of 2 signals each block's barrier from the peer: with tma, rank 0 multicasts one 2048-byte box to
// both blocks (each announces its bytes); without, each block arrives on its own barrier and its peer's.
// bug 0: init, fence, cluster barrier (the emitters' order); 1: no fence; 2: the init (and its fence) after the
// cluster barrier, ordered only by a __syncthreads; 3: the fence issued by another thread than the init's.
// bug 4 (no tma): nobody waits for the barrier and no cluster barrier follows the arrives, so a block may exit
// before its peer's remote arrive reaches it; 5: no wait either, but the final cluster barrier orders the
// arrives before either block exits (correct).
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(64)
    ci_signal(unsigned char* Out, const unsigned char* T, const __grid_constant__ TlTensorMap m, int bug, int tma) {
  constexpr int BOX = 2048;
  unsigned char* box = ci_base();
  unsigned long long* bar = reinterpret_cast<unsigned long long*>(box + BOX);
  const unsigned rank = tl_cluster_rank();
  if (bug != 2) {
    if (threadIdx.x == 0) tl_mbarrier_init(bar, tma ? 1 : 2);
    if (bug == 3) __syncthreads();
    if (threadIdx.x == (bug == 3 ? 32 : 0) && bug != 1) tl_mbarrier_init_fence();
  }
  tl_cluster_sync();
  if (bug == 2) {
    if (threadIdx.x == 0) {
      tl_mbarrier_init(bar, tma ? 1 : 2);
      tl_mbarrier_init_fence();
    }
    __syncthreads();   // orders the init for this block's threads only
  }
  if (threadIdx.x == 0) {
    if (tma) {
      tl_mbarrier_arrive_expect_tx(bar, BOX);
      if (rank == 0) tl_tma_load_multicast_2d(box, m, bar, (unsigned short)0x3, 0, 0);
    } else {
      tl_mbarrier_arrive(bar);
      tl_mbarrier_arrive_cluster(bar, rank ^ 1u);
    }
  }
  if (bug < 4) tl_mbarrier_wait_parity(bar, 0);
  for (int i = threadIdx.x; i < BOX; i += blockDim.x) TL_ST(Out, blockIdx.x * BOX + i, tma ? box[i] : (unsigned char)1);
  if (bug != 4) tl_cluster_sync();   // a block's shared memory lives until its peer is done with it
}
