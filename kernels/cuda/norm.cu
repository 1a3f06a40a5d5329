// Normalisations and reductions of the sdgo CUDA backend: group norm (with an
// optional fused SiLU), layer norm, softmax over the last axis (with an optional
// causal mask for sliced attention) and moments. One thread block per row, or
// per chunk of a group; statistics are two-pass (mean, then the mean of squared deviations),
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

// Group norm in two kernels: with one block per group, a long group and few
// groups (the VAE at full resolution: 32 groups of a million elements) leave
// most of the GPU idle. group_stats_f32 runs `splits` blocks per group,
// each taking the two-pass statistics of one contiguous chunk; group_apply_f32
// combines a group's chunks (Chan et al.'s pairwise update, in double) once per
// block and normalises one channel's stretch of elements, four at a time.

// group_stats_f32: part[(grp*splits + s)*3 + {0,1,2}] = (count, mean, M2) of
// chunk s of group grp (grp = sample*groups + g, the group's len elements
// contiguous in x). Grid: (N*groups, splits).
extern "C" __global__ void group_stats_f32(double *part, const float *x, long long len, int splits) {
    __shared__ double sh[32];
    long long grp = blockIdx.x;
    int s = blockIdx.y;
    long long chunk = (len + splits - 1) / splits;
    long long lo = (long long)s * chunk;
    long long hi = lo + chunk < len ? lo + chunk : len;
    double *out = part + (grp * splits + s) * 3;
    if (lo >= hi) {
        if (threadIdx.x == 0) { out[0] = 0.0; out[1] = 0.0; out[2] = 0.0; }
        return;
    }
    long long n = hi - lo;
    double mean, var;
    stats(x + grp * len + lo, n, sh, &mean, &var);
    if (threadIdx.x == 0) {
        out[0] = (double)n;
        out[1] = mean;
        out[2] = var * (double)n;
    }
}

// group_apply_f32: y = x*sc + (beta - sc*mean), sc = gamma*rstd, then SiLU if
// silu, for the spatial elements of one (sample, channel) row per blockIdx.x;
// blockIdx.y strides over the row. part is group_stats_f32's output.
extern "C" __global__ void group_apply_f32(float *y, const float *x, const double *part, const float *gamma, const float *beta,
                                           int C, int groups, long long spatial, int splits, float eps, int silu) {
    __shared__ float coef[2];
    long long row = blockIdx.x;
    int c = (int)(row % C);
    long long grp = (row / C) * groups + c / (C / groups);
    if (threadIdx.x == 0) {
        const double *p = part + grp * splits * 3;
        double n = 0.0, mean = 0.0, m2 = 0.0;
        for (int s = 0; s < splits; s++) {
            double nb = p[3 * s], mb = p[3 * s + 1], qb = p[3 * s + 2];
            if (nb == 0.0) continue;
            double nn = n + nb, d = mb - mean;
            mean += d * nb / nn;
            m2 += qb + d * d * n * nb / nn;
            n = nn;
        }
        double var = m2 / n;
        if (var < 0.0) var = 0.0;
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        float sc = inv;
        if (gamma) sc *= gamma[c];
        float b = beta ? beta[c] : 0.0f;
        coef[0] = sc;
        coef[1] = (float)((double)b - (double)sc * (double)(float)mean);
    }
    __syncthreads();
    float sc = coef[0], shift = coef[1];
    const float *xs = x + row * spatial;
    float *ys = y + row * spatial;
    long long step = (long long)gridDim.y * blockDim.x * 4;
    // Four elements per thread where the row is 16-byte aligned, else one.
    bool vec = ((((unsigned long long)xs) | ((unsigned long long)ys)) & 15) == 0;
    for (long long i0 = ((long long)blockIdx.y * blockDim.x + threadIdx.x) * 4; i0 < spatial; i0 += step) {
        if (vec && i0 + 4 <= spatial) {
            float4 v = *(const float4 *)(xs + i0);
            float e[4] = {v.x, v.y, v.z, v.w};
            for (int k = 0; k < 4; k++) {
                float t = e[k] * sc + shift;
                e[k] = silu ? t / (1.0f + expf(-t)) : t;
            }
            *(float4 *)(ys + i0) = make_float4(e[0], e[1], e[2], e[3]);
        } else {
            for (long long i = i0; i < i0 + 4 && i < spatial; i++) {
                float t = xs[i] * sc + shift;
                ys[i] = silu ? t / (1.0f + expf(-t)) : t;
            }
        }
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

// warp_sum returns the sum of v over the warp to every lane.
__device__ __forceinline__ double warp_sum(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// layer_norm_warp: layer_norm_f32 with one warp per row for rows of at most
// 32*K elements, which each lane keeps in registers: x is read once instead of
// three times, and a block holds blockDim.x/32 rows instead of one (rows of 320
// to 1280 elements left most of a 512-thread block idle). The statistics are
// stats()'s, summed in another order.
template <int K>
__device__ void layer_norm_warp(float *y, const float *x, const float *gamma, const float *beta, long long rows, int n, float eps) {
    int lane = threadIdx.x & 31;
    long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;
    const float *xs = x + row * n;
    float *ys = y + row * n;
    float v[K];
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        v[k] = i < n ? xs[i] : 0.0f;
        s += v[k];
    }
    float mf = (float)(warp_sum((double)s) / (double)n);
    float q = 0.0f, c = 0.0f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        if (lane + 32 * k < n) {
            float d = v[k] - mf;
            q += d * d;
            c += d;
        }
    }
    double qs = warp_sum((double)q) / (double)n;
    double cs = warp_sum((double)c) / (double)n;
    double var = qs - cs * cs;
    float inv = (float)(1.0 / sqrt((var > 0.0 ? var : 0.0) + (double)eps));
    float m = (float)((double)mf + cs);
#pragma unroll
    for (int k = 0; k < K; k++) {
        int i = lane + 32 * k;
        if (i < n) {
            float t = (v[k] - m) * inv;
            if (gamma) t *= gamma[i];
            if (beta) t += beta[i];
            ys[i] = t;
        }
    }
}

// layer_norm_warp32_f32 (rows of at most 1024) and layer_norm_warp64_f32 (at
// most 2048). Grid: ceil(rows / (blockDim.x/32)).
extern "C" __global__ void layer_norm_warp32_f32(float *y, const float *x, const float *gamma, const float *beta, long long rows, int n, float eps) {
    layer_norm_warp<32>(y, x, gamma, beta, rows, n, eps);
}
extern "C" __global__ void layer_norm_warp64_f32(float *y, const float *x, const float *gamma, const float *beta, long long rows, int n, float eps) {
    layer_norm_warp<64>(y, x, gamma, beta, rows, n, eps);
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
