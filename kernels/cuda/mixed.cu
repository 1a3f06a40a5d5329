// Kernels of the sdgo CUDA backend's mixed-precision paths (see precision.go):
// contiguous dtype conversions and im2col, which lays a convolution's input out
// as the columns of a GEMM in the dtype the tensor cores read (F16, BF16, or F32
// for TF32).

#include <cuda_fp16.h>
#include <cuda_bf16.h>

__device__ __forceinline__ float load(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float load(const __half *p, long long i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16 *p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float *p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half *p, long long i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

// cast_S_D: y[i] = x[i] for n contiguous elements, converted from S to D
// (rounding to nearest even when narrowing; as elementwise.cu's convert_*).
template <typename D, typename S> __device__ void cast(D *y, const S *x, long long n) {
    GRID_STRIDE(i, n) { store(y, i, load(x, i)); }
}
extern "C" __global__ void cast_f32_f16(__half *y, const float *x, long long n) { cast(y, x, n); }
extern "C" __global__ void cast_f32_bf16(__nv_bfloat16 *y, const float *x, long long n) { cast(y, x, n); }
extern "C" __global__ void cast_f16_f32(float *y, const __half *x, long long n) { cast(y, x, n); }
extern "C" __global__ void cast_bf16_f32(float *y, const __nv_bfloat16 *x, long long n) { cast(y, x, n); }
extern "C" __global__ void cast_f16_bf16(__nv_bfloat16 *y, const __half *x, long long n) { cast(y, x, n); }
extern "C" __global__ void cast_bf16_f16(__half *y, const __nv_bfloat16 *x, long long n) { cast(y, x, n); }

// im2col: col [nimg][K][pc] (K = C*KH*KW) from x [nimg][C][H][W] (F32,
// contiguous, starting at the first image of the chunk): col[i][k][j] is the
// input element that kernel tap k = (c, ky, kx) reads for output pixel p0 + j
// (p = oy*Wo + ox) of image i, 0 outside the input (zero padding; PadEnd
// likewise reads past the end as zeros). Then y_i[O][p0:p0+pc] = w[O][K] ·
// col[i] is the convolution. Any 1-D grid.
template <typename T>
__device__ void im2col(T *col, const float *x, int C, int H, int W, int KH, int KW, int Wo,
                       int stride, int pad, int p0, int pc, int nimg) {
    int khw = KH * KW;
    long long K = (long long)C * khw;
    long long total = (long long)nimg * K * pc;
    GRID_STRIDE(e, total) {
        long long t = e / pc;
        int j = (int)(e - t * pc);
        long long i = t / K;
        int k = (int)(t - i * K);
        int c = k / khw, r = k - c * khw;
        int ky = r / KW, kx = r - ky * KW;
        int p = p0 + j;
        int oy = p / Wo, ox = p - oy * Wo;
        int iy = oy * stride - pad + ky, ix = ox * stride - pad + kx;
        float v = 0.0f;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[((i * C + c) * H + iy) * W + ix];
        store(col, e, v);
    }
}
extern "C" __global__ void im2col_f32(float *col, const float *x, int C, int H, int W, int KH, int KW, int Wo,
                                 int stride, int pad, int p0, int pc, int nimg) {
    im2col(col, x, C, H, W, KH, KW, Wo, stride, pad, p0, pc, nimg);
}
extern "C" __global__ void im2col_f16(__half *col, const float *x, int C, int H, int W, int KH, int KW, int Wo,
                                 int stride, int pad, int p0, int pc, int nimg) {
    im2col(col, x, C, H, W, KH, KW, Wo, stride, pad, p0, pc, nimg);
}
extern "C" __global__ void im2col_bf16(__nv_bfloat16 *col, const float *x, int C, int H, int W, int KH, int KW, int Wo,
                                 int stride, int pad, int p0, int pc, int nimg) {
    im2col(col, x, C, H, W, KH, KW, Wo, stride, pad, p0, pc, nimg);
}
