// The source of cuobjdump.sass and nvdisasm.sass beside it (captured with nvcc 13.0 and the 13.5.37 wheels):
//   nvcc -arch=sm_90a -cubin -o k.cubin kernels.cu; cuobjdump -sass k.cubin; nvdisasm -c k.cubin
#include <cuda_fp16.h>
#include <mma.h>
#include <cuda_pipeline.h>
using namespace nvcuda;

// A k loop of cp.async (16-byte) stages, wmma (HMMA.16816) on them, and an FFMA epilogue.
extern "C" __global__ void mma_loop(const half* __restrict__ a, const half* __restrict__ b, float* c, int K) {
    __shared__ __align__(128) half sa[16 * 32], sb[32 * 16];
    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int k = 0; k < K; k += 32) {
        int t = threadIdx.x;
        __pipeline_memcpy_async(&sa[t * 8], &a[k * 16 + t * 8], 16);
        __pipeline_memcpy_async(&sb[t * 8], &b[k * 16 + t * 8], 16);
        __pipeline_commit();
        __pipeline_wait_prior(0);
        __syncthreads();
        for (int kk = 0; kk < 32; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, half, wmma::row_major> fa;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, half, wmma::row_major> fb;
            wmma::load_matrix_sync(fa, sa + kk, 32);
            wmma::load_matrix_sync(fb, sb + kk * 16, 16);
            wmma::mma_sync(acc, fa, fb, acc);
        }
        __syncthreads();
    }
    wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

// A scalar FFMA loop with an SFU call and 128-bit loads: the CUDA-core kind of main loop.
extern "C" __global__ void ffma_loop(const float4* __restrict__ x, float* y, int n) {
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float4 v = x[i];
        s = fmaf(v.x, v.y, s); s = fmaf(v.z, v.w, s);
        s = fmaf(v.x, v.w, s); s = fmaf(v.z, v.y, s);
    }
    y[threadIdx.x] = __expf(s);
}

// One wgmma (HGMMA.64x64x16) per k step, operands from shared memory descriptors.
extern "C" __global__ void wgmma_loop(float* out, int K) {
    __shared__ __align__(1024) half sa[64 * 16], sb[64 * 16];
    float d[32];
    for (int i = 0; i < 32; ++i) d[i] = 0.f;
    unsigned long long da = (unsigned long long)(__cvta_generic_to_shared(sa) >> 4);
    unsigned long long db = (unsigned long long)(__cvta_generic_to_shared(sb) >> 4);
    for (int k = 0; k < K; ++k) {
        asm volatile("wgmma.fence.sync.aligned;\n");
        asm volatile("{\n"
            "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
            "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
            "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, %32, %33, 1, 1, 1, 0, 0;\n}\n"
            : "+f"(d[0]),"+f"(d[1]),"+f"(d[2]),"+f"(d[3]),"+f"(d[4]),"+f"(d[5]),"+f"(d[6]),"+f"(d[7]),
              "+f"(d[8]),"+f"(d[9]),"+f"(d[10]),"+f"(d[11]),"+f"(d[12]),"+f"(d[13]),"+f"(d[14]),"+f"(d[15]),
              "+f"(d[16]),"+f"(d[17]),"+f"(d[18]),"+f"(d[19]),"+f"(d[20]),"+f"(d[21]),"+f"(d[22]),"+f"(d[23]),
              "+f"(d[24]),"+f"(d[25]),"+f"(d[26]),"+f"(d[27]),"+f"(d[28]),"+f"(d[29]),"+f"(d[30]),"+f"(d[31])
            : "l"(da + k), "l"(db + k));
        asm volatile("wgmma.commit_group.sync.aligned;\n");
        asm volatile("wgmma.wait_group.sync.aligned 0;\n");
    }
    for (int i = 0; i < 32; ++i) out[threadIdx.x * 32 + i] = d[i];
}
