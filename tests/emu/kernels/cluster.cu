// Thread-block clusters (__cluster_dims__, sm_90): distributed shared memory between the blocks of a cluster.
// Blocks are numbered row-major over a 2-D grid; a cluster is 4 consecutive blockIdx.x of one row.

// Each block fills its TL_SHARED buffer with rank-specific values; after the cluster barrier it reads the
// next rank's buffer (mirrored, so every thread reads a slot another thread wrote). Z checks that plain
// __shared__ arrays stay per block while the cluster's blocks interleave on one OS thread.
extern "C" __global__ void __launch_bounds__(64) __cluster_dims__(4, 1, 1)
    cluster_neighbour(float* __restrict__ Y, float* __restrict__ Z, const float* __restrict__ X) {
  TL_SHARED(float, buf, [64]);
  __shared__ float own[64];
  unsigned r = tl_cluster_rank();
  int t = threadIdx.x;
  long b = (long)blockIdx.y * gridDim.x + blockIdx.x;
  buf[t] = TL_LD(X, b * 64 + t) + 1000.0f * r;
  own[t] = (float)(b * 100 + t);
  tl_cluster_sync();
  const float* peer = tl_cluster_map(&buf[0], (r + 1) % 4);
  TL_ST(Y, b * 64 + t, peer[63 - t]);
  TL_ST(Z, b * 64 + t, own[63 - t]);
  tl_cluster_sync();   // no block leaves while a peer may still read its buffer
}

// "Multicast": the cluster needs one 256-float tile of W. Each of its 4 blocks loads a quarter from global
// memory, then gathers the other quarters from its peers' shared memory: the tile leaves global memory once
// per cluster instead of once per block.
extern "C" __global__ void __launch_bounds__(64) __cluster_dims__(4, 1, 1)
    cluster_multicast(float* __restrict__ Y, const float* __restrict__ W, const float* __restrict__ X) {
  TL_SHARED(float, part, [64]);
  TL_SHARED(float, tile, [256]);
  unsigned r = tl_cluster_rank();
  int t = threadIdx.x;
  long b = blockIdx.x, c = b / 4;
  part[t] = TL_LD(W, c * 256 + r * 64 + t);
  tl_cluster_sync();
  for (unsigned q = 0; q < 4; ++q) tile[q * 64 + t] = tl_cluster_map(&part[0], q)[t];
  tl_cluster_sync();   // the tile is complete in every block, and no peer's part is read any more
  float acc = 0.0f;
  for (int k = 0; k < 256; ++k) acc += tile[k] * (float)((k + t) % 7);
  TL_ST(Y, b * 64 + t, acc * TL_LD(X, b * 64 + t));
}

// BUG ON PURPOSE: cluster_neighbour without the first tl_cluster_sync.
extern "C" __global__ void __launch_bounds__(64) __cluster_dims__(4, 1, 1)
    cluster_racy(float* __restrict__ Y, const float* __restrict__ X) {
  TL_SHARED(float, buf, [64]);
  unsigned r = tl_cluster_rank();
  int t = threadIdx.x;
  buf[t] = TL_LD(X, blockIdx.x * 64 + t) + 1000.0f * r;
  const float* peer = tl_cluster_map(&buf[0], (r + 1) % 4);
  TL_ST(Y, blockIdx.x * 64 + t, peer[63 - t]);
  tl_cluster_sync();
}

// Only block 0 writes its __shared__ array: every other block (of this cluster or a later one) reads poison.
extern "C" __global__ void __launch_bounds__(64) __cluster_dims__(2, 1, 1) cluster_tls_poison(float* __restrict__ Y) {
  __shared__ float own[64];
  int t = threadIdx.x;
  if (blockIdx.x == 0) own[t] = 1.0f;
  tl_cluster_sync();
  TL_ST(Y, blockIdx.x * 64 + t, own[t]);
}

// BUG ON PURPOSE: maps a global pointer (which = 0) or a rank outside the cluster (2); which = 1 maps a plain
// __shared__ array, which is legal (mapa takes any shared address): every block reads 2.0 from its peer.
extern "C" __global__ void __launch_bounds__(32) __cluster_dims__(2, 1, 1) cluster_bad_map(float* __restrict__ Y, int which) {
  TL_SHARED(float, buf, [32]);
  __shared__ float plain[32];
  buf[threadIdx.x] = 1.0f;
  plain[threadIdx.x] = 2.0f;
  tl_cluster_sync();
  float v = which == 0 ? *tl_cluster_map(Y, 1) : which == 1 ? *tl_cluster_map(&plain[0], 1) : *tl_cluster_map(&buf[0], 2);
  tl_cluster_sync();
  TL_ST(Y, blockIdx.x * 32 + threadIdx.x, v);
}

// BUG ON PURPOSE: half of rank 1's threads wait at __syncthreads, everyone else at tl_cluster_sync.
extern "C" __global__ void __launch_bounds__(64) __cluster_dims__(4, 1, 1) cluster_deadlock(float* __restrict__ Y) {
  if (tl_cluster_rank() == 1 && threadIdx.x < 32) __syncthreads();
  tl_cluster_sync();
  TL_ST(Y, blockIdx.x * 64 + threadIdx.x, 1.0f);
}
