// TMA multicast into dynamic shared memory across a thread-block cluster (issue #21), for
// tests/emu/test_emu_multicast.py and ptxas -arch=sm_90a: peer addressing of extern __shared__ memory (mapa),
// multicast boxes that land in every block of the mask and signal the barrier at the same offset in each, and a
// cluster-wide stage release through remote mbarrier arrives (CUTLASS's ClusterBarrier::arrive(cta_id)).
extern __shared__ __align__(1024) unsigned char mc_dyn[];

__device__ __forceinline__ unsigned char* mc_base() {
  return reinterpret_cast<unsigned char*>((reinterpret_cast<unsigned long long>(mc_dyn) + 1023ull) & ~1023ull);
}

// T: the tensor the map reads (passed so the emulator's bounds checks know it).
// A cluster of 4: rank 0 multicasts one box (nbytes; `extra` bytes more are announced by the blocks in `mask`:
// a wrong expect_tx) to the blocks of `mask`. Every block first fills its box with 0x10 + rank, so a block
// outside the mask must still hold that; Flags[block] = whether its barrier's phase 0 completed.
extern "C" __global__ void __cluster_dims__(4, 1, 1) __launch_bounds__(64)
    mc_mask(unsigned char* Out, int* Flags, const unsigned char* T, const __grid_constant__ TlTensorMap m, int nbytes, int mask, int extra,
            int c0, int c1) {
  unsigned char* box = mc_base();
  unsigned long long* bar = reinterpret_cast<unsigned long long*>(box + 4096);
  const unsigned rank = tl_cluster_rank();
  const bool mine = (mask >> rank) & 1;
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) box[i] = (unsigned char)(0x10 + rank);
  if (threadIdx.x == 0) {
    tl_mbarrier_init(bar, 1);
    tl_mbarrier_init_fence();
    if (mine) tl_mbarrier_arrive_expect_tx(bar, unsigned(nbytes + extra));
  }
  tl_fence_proxy_async();
  tl_cluster_sync();   // every barrier exists, and every fill is done, before rank 0's copy
  if (rank == 0 && threadIdx.x == 0) tl_tma_load_multicast_2d(box, m, bar, (unsigned short)mask, c0, c1);
  if (mine) tl_mbarrier_wait_parity(bar, 0);
  tl_cluster_sync();
  if (threadIdx.x == 0) TL_ST(Flags, blockIdx.x, int(tl_mbarrier_try_wait_parity(bar, 0)));
  for (int i = threadIdx.x; i < nbytes; i += blockDim.x) TL_ST(Out, blockIdx.x * nbytes + i, box[i]);
  tl_cluster_sync();   // a block's shared memory lives until its peers are done with it
}

// Peer addressing of dynamic shared memory: each block writes rank-tagged words into its own extern __shared__
// array, then (after a cluster barrier) reads its right neighbour's through tl_cluster_map and writes its own
// into the left neighbour's second half; Out[block] gets both halves.
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(32) mc_peer_words(int* Out) {
  int* w = reinterpret_cast<int*>(mc_base());
  const unsigned rank = tl_cluster_rank(), peer = rank ^ 1u;
  w[threadIdx.x] = int(100 * rank + threadIdx.x);
  tl_cluster_sync();
  int* pw = tl_cluster_map(w, peer);
  int got = pw[threadIdx.x];
  pw[32 + threadIdx.x] = int(1000 + 100 * rank + threadIdx.x);   // a remote store into the peer's array
  tl_cluster_sync();
  TL_ST(Out, blockIdx.x * 64 + threadIdx.x, got);
  TL_ST(Out, blockIdx.x * 64 + 32 + threadIdx.x, w[32 + threadIdx.x]);
  tl_cluster_sync();
}

// A 2-block cluster streams `rounds` boxes of 16 x 128 bytes (rows 16 i .. 16 i + 15 of the map) through
// `S` = 2 stages of dynamic shared memory, as the wgmma engine's multicast does: each block's producer
// (thread 0) loads its 8 rows of round i with multicast to both blocks, after its own `empty` barrier says that
// every consumer of both blocks released the stage; a consumer warp (threads 32..63) waits on its `full`
// barrier, copies round i - 1's stage out only after waiting for round i (holding a stage across the next
// wait, as wgmma's asynchronous reads do) and releases it: lane r arrives on block r's `empty` barrier.
// bug 1: the release is local only (one arrive, on the block's own barrier, count 1): a producer may refill a
// stage its peer still reads.
extern "C" __global__ void __cluster_dims__(2, 1, 1) __launch_bounds__(64)
    mc_pipeline(unsigned char* Out, const unsigned char* T, const __grid_constant__ TlTensorMap m, int rounds, int bug) {
  constexpr int S = 2, BOX = 2048, HALF = 1024;
  unsigned char* st = mc_base();
  unsigned long long* full = reinterpret_cast<unsigned long long*>(st + S * BOX);
  unsigned long long* empty = full + S;
  const unsigned rank = tl_cluster_rank();
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) {
      tl_mbarrier_init(&full[s], 1);
      tl_mbarrier_init(&empty[s], bug ? 1 : 2);   // one consumer warp per block of the multicast group
    }
    tl_mbarrier_init_fence();
  }
  tl_cluster_sync();   // a peer's barriers exist before the first multicast or remote arrive reaches them
  if (threadIdx.x == 0) {
    for (int i = 0; i < rounds + S; ++i) {   // the last S rounds only wait: the producer tail
      const int s = i % S;
      if (i >= S) tl_mbarrier_wait_parity(&empty[s], unsigned(i / S - 1) & 1u);
      if (i >= rounds) continue;
      tl_mbarrier_arrive_expect_tx(&full[s], BOX);   // both halves land here, one from each block
      tl_tma_load_multicast_2d(st + s * BOX + rank * HALF, m, &full[s], 0x3, 0, 16 * i + 8 * int(rank));
    }
  } else if (threadIdx.x >= 32) {
    const int lane = threadIdx.x - 32;
    for (int i = 0; i <= rounds; ++i) {
      if (i < rounds) tl_mbarrier_wait_parity(&full[i % S], unsigned(i / S) & 1u);
      if (i == 0) continue;
      const int j = i - 1;
      const unsigned char* src = st + (j % S) * BOX;
      for (int b = lane; b < BOX; b += 32) TL_ST(Out, (blockIdx.x * rounds + j) * BOX + b, src[b]);
      __syncwarp();
      if (bug ? lane == 0 : lane < 2) {
        if (bug)
          tl_mbarrier_arrive(&empty[j % S]);
        else
          tl_mbarrier_arrive_cluster(&empty[j % S], unsigned(lane));
      }
    }
  }
}
