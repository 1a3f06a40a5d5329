// Element-wise kernels of the sdgo CUDA backend: unary functions, broadcasting
// binary operations, affine, clamp, fill, strided copies with dtype conversion
// (F32, F16, BF16), GEGLU, nearest resize, embedding lookup and the sinusoidal
// timestep embedding.
//
// Every kernel is a grid-stride loop over 64-bit element indices; launch with
// any 1-D grid. Strided operands are described by a Dims struct passed by value
// (the Go side packs it in kernelArgs.Dims): the shape, row-major, and the
// element strides of up to three operands.

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define MAXR 6

struct Dims {
    long long rank;
    long long shape[MAXR];
    long long strides[3][MAXR];
};

__device__ __forceinline__ float load(const float *p, long long i) { return p[i]; }
__device__ __forceinline__ float load(const __half *p, long long i) { return __half2float(p[i]); }
__device__ __forceinline__ float load(const __nv_bfloat16 *p, long long i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(float *p, long long i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half *p, long long i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, long long i, float v) { p[i] = __float2bfloat16_rn(v); }

// offsets sets o[k] to operand k's element offset for the row-major index i.
__device__ __forceinline__ void offsets(const Dims &d, long long i, long long o[3]) {
    o[0] = o[1] = o[2] = 0;
    for (int r = (int)d.rank - 1; r >= 0; r--) {
        long long n = d.shape[r];
        long long q = i / n;
        long long x = i - q * n;
        i = q;
        o[0] += x * d.strides[0][r];
        o[1] += x * d.strides[1][r];
        o[2] += x * d.strides[2][r];
    }
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ __forceinline__ float gelu_erf(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

__device__ __forceinline__ float unary_op(int op, float x) {
    switch (op) {
    case 1: return x / (1.0f + expf(-x));                                  // SiLU
    case 2: return gelu_erf(x);                                            // GELU
    case 3: {                                                              // GELU, tanh
        float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
        return 0.5f * x * (1.0f + tanhf(u));
    }
    case 4: return x / (1.0f + expf(-1.702f * x));                         // quick GELU
    case 5: return expf(x);                                                // exp
    }
    return x;
}

// unary_f32: y[i] = op(x[i]) with op a tensor.UnaryOp.
extern "C" __global__ void unary_f32(float *y, const float *x, long long n, int op) {
    GRID_STRIDE(i, n) { y[i] = unary_op(op, x[i]); }
}

__device__ __forceinline__ float binary_op(int op, float a, float b) {
    switch (op) {
    case 1: return a + b;
    case 2: return a - b;
    case 3: return a * b;
    case 4: return a / b;
    }
    return 0.0f;
}

// binary_f32: y[i] = op(a, b) for contiguous y; a and b are strided
// (strides[0], strides[1]; zero strides broadcast).
extern "C" __global__ void binary_f32(float *y, const float *a, const float *b, long long n, Dims d, int op) {
    GRID_STRIDE(i, n) {
        long long o[3];
        offsets(d, i, o);
        y[i] = binary_op(op, a[o[0]], b[o[1]]);
    }
}

// binary_contig_f32: binary_f32 for contiguous a and b.
extern "C" __global__ void binary_contig_f32(float *y, const float *a, const float *b, long long n, int op) {
    GRID_STRIDE(i, n) { y[i] = binary_op(op, a[i], b[i]); }
}

extern "C" __global__ void affine_f32(float *y, const float *x, long long n, float scale, float shift) {
    GRID_STRIDE(i, n) { y[i] = x[i] * scale + shift; }
}

// clamp_f32: min(max(x, lo), hi); NaN stays NaN.
extern "C" __global__ void clamp_f32(float *y, const float *x, long long n, float lo, float hi) {
    GRID_STRIDE(i, n) {
        float v = x[i];
        if (v < lo) v = lo;
        else if (v > hi) v = hi;
        y[i] = v;
    }
}

template <typename T> __device__ void fill(T *y, long long n, float v) {
    GRID_STRIDE(i, n) { store(y, i, v); }
}
extern "C" __global__ void fill_f32(float *y, long long n, float v) { fill(y, n, v); }
extern "C" __global__ void fill_f16(__half *y, long long n, float v) { fill(y, n, v); }
extern "C" __global__ void fill_bf16(__nv_bfloat16 *y, long long n, float v) { fill(y, n, v); }

// Strided copies: y at strides[0], x at strides[1]. Same-type copies move bits;
// conversions widen to float and round to nearest even when narrowing.
template <typename T> __device__ void copy_bits(T *y, const T *x, long long n, const Dims &d) {
    GRID_STRIDE(i, n) {
        long long o[3];
        offsets(d, i, o);
        y[o[0]] = x[o[1]];
    }
}
template <typename D, typename S> __device__ void convert(D *y, const S *x, long long n, const Dims &d) {
    GRID_STRIDE(i, n) {
        long long o[3];
        offsets(d, i, o);
        store(y, o[0], load(x, o[1]));
    }
}
extern "C" __global__ void copy_u32(unsigned int *y, const unsigned int *x, long long n, Dims d) { copy_bits(y, x, n, d); }
extern "C" __global__ void copy_u16(unsigned short *y, const unsigned short *x, long long n, Dims d) { copy_bits(y, x, n, d); }
extern "C" __global__ void convert_f16_f32(float *y, const __half *x, long long n, Dims d) { convert(y, x, n, d); }
extern "C" __global__ void convert_bf16_f32(float *y, const __nv_bfloat16 *x, long long n, Dims d) { convert(y, x, n, d); }
extern "C" __global__ void convert_f32_f16(__half *y, const float *x, long long n, Dims d) { convert(y, x, n, d); }
extern "C" __global__ void convert_f32_bf16(__nv_bfloat16 *y, const float *x, long long n, Dims d) { convert(y, x, n, d); }
extern "C" __global__ void convert_bf16_f16(__half *y, const __nv_bfloat16 *x, long long n, Dims d) { convert(y, x, n, d); }
extern "C" __global__ void convert_f16_bf16(__nv_bfloat16 *y, const __half *x, long long n, Dims d) { convert(y, x, n, d); }

// geglu_f32: y[r, i] = x[r, i] * gelu(x[r, n + i]) for x [rows, 2n], y [rows, n].
extern "C" __global__ void geglu_f32(float *y, const float *x, long long rows, long long n) {
    GRID_STRIDE(i, rows * n) {
        long long r = i / n, c = i - r * n;
        const float *row = x + 2 * r * n;
        y[i] = row[c] * gelu_erf(row[n + c]);
    }
}

// resize_nearest_f32: y [planes, oh, ow] from x [planes, h, w], reading source
// row floor(oy * sh) and column floor(ox * sw) (float32 products, as torch),
// clamped to the last row and column.
extern "C" __global__ void resize_nearest_f32(float *y, const float *x, long long planes, int h, int w, int oh, int ow, float sh, float sw) {
    GRID_STRIDE(i, planes * oh * ow) {
        long long p = i / ((long long)oh * ow);
        int r = (int)(i - p * oh * ow);
        int oy = r / ow, ox = r - oy * ow;
        int sy = min((int)__fmul_rn((float)oy, sh), h - 1);
        int sx = min((int)__fmul_rn((float)ox, sw), w - 1);
        y[i] = x[(p * h + sy) * w + sx];
    }
}

// embedding: y [nids, dim] F32, row i = table row ids[i] (row stride rs, column
// stride cs, any dtype).
template <typename T> __device__ void embedding(float *y, const T *table, const long long *ids, long long nids, long long dim, long long rs, long long cs) {
    GRID_STRIDE(i, nids * dim) {
        long long r = i / dim, c = i - r * dim;
        y[i] = load(table, ids[r] * rs + c * cs);
    }
}
extern "C" __global__ void embedding_f32(float *y, const float *t, const long long *ids, long long nids, long long dim, long long rs, long long cs) { embedding(y, t, ids, nids, dim, rs, cs); }
extern "C" __global__ void embedding_f16(float *y, const __half *t, const long long *ids, long long nids, long long dim, long long rs, long long cs) { embedding(y, t, ids, nids, dim, rs, cs); }
extern "C" __global__ void embedding_bf16(float *y, const __nv_bfloat16 *t, const long long *ids, long long nids, long long dim, long long rs, long long cs) { embedding(y, t, ids, nids, dim, rs, cs); }

// div_rn is a float quotient rounded to nearest even whatever the compiler's
// flags (__fdiv_rn on the device; the host emulation's division is IEEE).
__device__ __forceinline__ float div_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}

// timestep_embedding_f32: y [n, dim] is the sinusoidal embedding of the
// timesteps t [n] (tensor.Backend.TimestepEmbedding): with half = dim/2,
// frequency k is (float)exp((double)(c*k/d)) (a float product and quotient),
// row r is [sin(t[r]*f), cos(t[r]*f)], [cos, sin] when flip, then a zero column
// when dim is odd. The argument t[r]*f is a float product, and exp, sin and cos
// run in double and round to float, as the CPU backend does, so that the two
// agree bit for bit.
extern "C" __global__ void timestep_embedding_f32(float *y, const float *t, long long n, long long dim, float c, float d, int flip) {
    long long half = dim / 2;
    GRID_STRIDE(i, n * dim) {
        long long r = i / dim, col = i - r * dim;
        float v = 0.0f;
        if (col < 2 * half) {
            bool first = col < half;
            long long k = first ? col : col - half;
            float f = (float)exp((double)div_rn(__fmul_rn(c, (float)k), d));
            double arg = (double)__fmul_rn(t[r], f);
            v = (first != (flip != 0)) ? (float)sin(arg) : (float)cos(arg);
        }
        y[i] = v;
    }
}
