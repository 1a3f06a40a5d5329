// Normalisations and reductions of the sdgo CUDA backend: group norm (with an
// optional fused SiLU), layer norm, softmax over the last axis (with an optional
// causal mask for sliced attention) and moments. One thread block per row or
// group; statistics are two-pass (mean, then the mean of squared deviations),
// with per-thread float partial sums combined in double.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define THREADS 512

__device__ __forceinline__ void store(float *p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half *p, long long i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

// block_sum returns the sum of v over the block to every thread. sh holds 32
// doubles; the block is a multiple of 32 threads.
__device__ double block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? sh[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ float block_max(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    int nw = blockDim.x >> 5;
    v = lane < nw ? sh[lane] : -INFINITY;
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// stats sets *mean and *var (population) of x[0, n), n > 0, for every thread.
__device__ void stats(const float *x, long long n, double *sh, double *mean, double *var) {
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += x[i];
    double m = block_sum((double)s, sh) / (double)n;
    float mf = (float)m;
    float q = 0.0f, c = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        float d = x[i] - mf;
        q += d * d;
        c += d;
    }
    double qs = block_sum((double)q, sh) / (double)n;
    double cs = block_sum((double)c, sh) / (double)n;
    // mf is the rounded mean; correct for its rounding (cs is the mean of x - mf).
    *mean = (double)mf + cs;
    double v = qs - cs * cs;
    *var = v > 0.0 ? v : 0.0;
}

// group_norm_f32: x, y [N, C, spatial]; statistics per (sample, group of C/groups
// channels); y = x*sc + (beta - sc*mean) with sc = gamma*rstd (torch's formula),
// then SiLU if silu. gamma and beta are F32 [C] or null (1 and 0). Grid: N*groups.
extern "C" __global__ void group_norm_f32(float *y, const float *x, const float *gamma, const float *beta,
                                          int C, int groups, long long spatial, float eps, int silu) {
    __shared__ double sh[32];
    int blk = blockIdx.x;
    int g = blk % groups;
    int cg = C / groups;
    long long len = (long long)cg * spatial;
    long long base = (long long)blk * len;
    const float *xs = x + base;
    float *ys = y + base;
    double mean, var;
    stats(xs, len, sh, &mean, &var);
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float m = (float)mean;
    for (long long i = threadIdx.x; i < len; i += blockDim.x) {
        int c = g * cg + (int)(i / spatial);
        float sc = inv;
        if (gamma) sc *= gamma[c];
        float b = beta ? beta[c] : 0.0f;
        float shift = (float)((double)b - (double)sc * (double)m);
        float v = xs[i] * sc + shift;
        if (silu) v = v / (1.0f + expf(-v));
        ys[i] = v;
    }
}

// layer_norm_f32: normalise each row of n elements and apply gamma and beta
// (F32 [n] or null). Grid: rows.
extern "C" __global__ void layer_norm_f32(float *y, const float *x, const float *gamma, const float *beta, long long n, float eps) {
    __shared__ double sh[32];
    const float *xs = x + (long long)blockIdx.x * n;
    float *ys = y + (long long)blockIdx.x * n;
    double mean, var;
    stats(xs, n, sh, &mean, &var);
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float m = (float)mean;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) {
        float v = (xs[i] - m) * inv;
        if (gamma) v *= gamma[i];
        if (beta) v += beta[i];
        ys[i] = v;
    }
}

// softmax_f32: softmax of each row of n elements. When q0 >= 0, row r keeps only
// its first min(n, q0 + r%qrows + 1) elements (a causal mask for a block of
// qrows queries starting at query q0) and the rest are set to 0. Grid: rows.
// softmax_f32_f16 and softmax_f32_bf16 write the probabilities rounded to F16
// or BF16 (the P operand of mixed-precision attention's second GEMM).
template <typename T>
__device__ void softmax_rows(T *y, const float *x, long long n, int q0, int qrows) {
    __shared__ double sh[32];
    __shared__ float shf[32];
    const float *xs = x + (long long)blockIdx.x * n;
    T *ys = y + (long long)blockIdx.x * n;
    long long valid = n;
    if (q0 >= 0) {
        long long v = (long long)q0 + blockIdx.x % qrows + 1;
        valid = v < n ? v : n;
    }
    float mx = -INFINITY;
    for (long long i = threadIdx.x; i < valid; i += blockDim.x) mx = fmaxf(mx, xs[i]);
    mx = block_max(mx, shf);
    float s = 0.0f;
    for (long long i = threadIdx.x; i < valid; i += blockDim.x) s += expf(xs[i] - mx);
    float inv = (float)(1.0 / block_sum((double)s, sh));
    for (long long i = threadIdx.x; i < n; i += blockDim.x) store(ys, i, i < valid ? expf(xs[i] - mx) * inv : 0.0f);
}
extern "C" __global__ void softmax_f32(float *y, const float *x, long long n, int q0, int qrows) { softmax_rows(y, x, n, q0, qrows); }
extern "C" __global__ void softmax_f32_f16(__half *y, const float *x, long long n, int q0, int qrows) { softmax_rows(y, x, n, q0, qrows); }
extern "C" __global__ void softmax_f32_bf16(__nv_bfloat16 *y, const float *x, long long n, int q0, int qrows) { softmax_rows(y, x, n, q0, qrows); }

// moments_f32: mean and population variance of each row of n > 0 elements. Grid: rows.
extern "C" __global__ void moments_f32(float *mean, float *var, const float *x, long long n) {
    __shared__ double sh[32];
    double m, v;
    stats(x + (long long)blockIdx.x * n, n, sh, &m, &v);
    if (threadIdx.x == 0) {
        mean[blockIdx.x] = (float)m;
        var[blockIdx.x] = (float)v;
    }
}
