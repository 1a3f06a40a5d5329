// The tiled FP32 GEMM of the sdgo CUDA backend (the fallback when cuBLAS is
// absent, and the path for operands of different dtypes) and the implicit-GEMM
// convolution. Operands are read through general element strides, so any
// transposition needs no copy, and are widened from F16/BF16 to float as the
// tiles are loaded; accumulation is FP32.
//
// Tiling: a 256-thread block computes a 64x64 tile of C, 4x4 elements per
// thread, stepping over K in slices of 16 staged in shared memory.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define BM 64
#define BN 64
#define BK 16
#define NT 256

__device__ __forceinline__ float load(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float load(const __half *p, long long i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16 *p, long long i) { return __bfloat162float(p[i]); }

// tile accumulates the (blockIdx.y, bx) tile of A·B into acc: la(i, k) and
// lb(k, j) read the operands; rows >= M, columns >= N and k >= K read as 0.
template <typename LA, typename LB>
__device__ __forceinline__ void tile(LA la, LB lb, int M, int N, int K, int bx, float acc[4][4]) {
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
    int m0 = blockIdx.y * BM, n0 = bx * BN;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;
    for (int k0 = 0; k0 < K; k0 += BK) {
        for (int e = tid; e < BM * BK; e += NT) {
            int r = e / BK, c = e % BK;
            int gi = m0 + r, gk = k0 + c;
            As[c][r] = (gi < M && gk < K) ? la(gi, gk) : 0.0f;
        }
        for (int e = tid; e < BK * BN; e += NT) {
            int r = e / BN, c = e % BN;
            int gk = k0 + r, gj = n0 + c;
            Bs[r][c] = (gk < K && gj < N) ? lb(gk, gj) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }
}

// gemm: for each batch item b < nb, C[b] = alpha*A[b]*B[b] + beta*C[b] (C not
// read when beta is 0), with A(i, k) = A[b*sab + i*sar + k*sac], B(k, j) =
// B[b*sbb + k*sbr + j*sbc], C(i, j) = C[b*scb + i*ldc + j]. Grid: (ceil(N/64),
// ceil(M/64), any z); block: 256.
template <typename TA, typename TB>
__device__ void gemm(float *C, const TA *A, const TB *B, int M, int N, int K, int nb,
                     long long sar, long long sac, long long sab,
                     long long sbr, long long sbc, long long sbb,
                     long long ldc, long long scb, float alpha, float beta) {
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    for (int b = blockIdx.z; b < nb; b += gridDim.z) {
        const TA *a = A + b * sab;
        const TB *bm = B + b * sbb;
        float *c = C + b * scb;
        float acc[4][4];
        tile([&](int i, int k) { return load(a, i * sar + k * sac); },
             [&](int k, int j) { return load(bm, k * sbr + j * sbc); }, M, N, K, blockIdx.x, acc);
        for (int i = 0; i < 4; i++) {
            int gi = blockIdx.y * BM + ty + 16 * i;
            if (gi >= M) continue;
            for (int j = 0; j < 4; j++) {
                int gj = blockIdx.x * BN + tx + 16 * j;
                if (gj >= N) continue;
                float *p = c + gi * ldc + gj;
                float v = alpha * acc[i][j];
                if (beta != 0.0f) v += beta * *p;
                *p = v;
            }
        }
    }
}

#define GEMM(NAME, TA, TB)                                                                          \
    extern "C" __global__ void NAME(float *C, const TA *A, const TB *B, int M, int N, int K, int nb, \
                                    long long sar, long long sac, long long sab,                    \
                                    long long sbr, long long sbc, long long sbb,                    \
                                    long long ldc, long long scb, float alpha, float beta) {       \
        gemm(C, A, B, M, N, K, nb, sar, sac, sab, sbr, sbc, sbb, ldc, scb, alpha, beta);            \
    }

GEMM(gemm_f32_f32, float, float)
GEMM(gemm_f32_f16, float, __half)
GEMM(gemm_f32_bf16, float, __nv_bfloat16)
GEMM(gemm_f16_f32, __half, float)
GEMM(gemm_f16_f16, __half, __half)
GEMM(gemm_f16_bf16, __half, __nv_bfloat16)
GEMM(gemm_bf16_f32, __nv_bfloat16, float)
GEMM(gemm_bf16_f16, __nv_bfloat16, __half)
GEMM(gemm_bf16_bf16, __nv_bfloat16, __nv_bfloat16)

// conv2d: y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, KH, KW]) + bias [O]
// (F32, or null), cross-correlation with the given stride and zero padding of
// pad before the first row and column (rows and columns past the input's end
// read as zeros too, which is how PadEnd works). An implicit GEMM: M = O,
// N = N*Ho*Wo, K = C*KH*KW, the input's columns gathered as the tiles load.
// Grid: (ceil(N*Ho*Wo/64), ceil(O/64)); block: 256.
template <typename TW>
__device__ void conv2d(float *y, const float *x, const TW *w, const float *bias,
                       int C, int H, int W, int O, int KH, int KW, int Ho, int Wo,
                       int stride, int pad, long long ncols) {
    int K = C * KH * KW;
    int P = Ho * Wo;
    int khw = KH * KW;
    float acc[4][4];
    tile([&](int i, int k) { return load(w, (long long)i * K + k); },
         [&](int k, int j) {
             int c = k / khw, r = k - c * khw;
             int ky = r / KW, kx = r - ky * KW;
             int n = j / P, p = j - n * P;
             int oy = p / Wo, ox = p - oy * Wo;
             int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
             if (iy < 0 || iy >= H || ix < 0 || ix >= W) return 0.0f;
             return x[(((long long)n * C + c) * H + iy) * W + ix];
         },
         O, (int)ncols, K, blockIdx.x, acc);
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    for (int i = 0; i < 4; i++) {
        int o = blockIdx.y * BM + ty + 16 * i;
        if (o >= O) continue;
        float b = bias ? bias[o] : 0.0f;
        for (int j = 0; j < 4; j++) {
            int col = blockIdx.x * BN + tx + 16 * j;
            if (col >= ncols) continue;
            int n = col / P, p = col - n * P;
            y[((long long)n * O + o) * P + p] = acc[i][j] + b;
        }
    }
}

#define CONV(NAME, TW)                                                                                  \
    extern "C" __global__ void NAME(float *y, const float *x, const TW *w, const float *bias,          \
                                    int C, int H, int W, int O, int KH, int KW, int Ho, int Wo,        \
                                    int stride, int pad, long long ncols) {                            \
        conv2d(y, x, w, bias, C, H, W, O, KH, KW, Ho, Wo, stride, pad, ncols);                         \
    }

CONV(conv2d_f32, float)
CONV(conv2d_f16, __half)
CONV(conv2d_bf16, __nv_bfloat16)
