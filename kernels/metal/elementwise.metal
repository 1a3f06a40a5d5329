// elementwise.metal: fills, strided copies with dtype conversion, the
// element-wise functions, GEGLU, nearest resizing, embedding lookups and the
// sinusoidal timestep embedding. The
// one-dimensional kernels run one thread per element in threadgroups of 256.

#include <metal_stdlib>
using namespace metal;

#define MAX_RANK 8

struct FillParams {
    int n;
    int dt;
    int off;
    float v;
};

kernel void fill(device char* dst [[buffer(0)]],
                 constant FillParams& p [[buffer(1)]],
                 uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    st_bits(dst, p.dt, long(p.off) + long(gid), as_type<uint>(p.v));
}

// CopyParams describes a copy of a tensor of shape[0..rank) from src (strides
// sstride, from element soff) to dst (strides dstride, from element doff).
struct CopyParams {
    int n;
    int rank;
    int ddt;
    int sdt;
    int doff;
    int soff;
    int shape[MAX_RANK];
    int dstride[MAX_RANK];
    int sstride[MAX_RANK];
};

kernel void copy_strided(device char* dst [[buffer(0)]],
                         device const char* src [[buffer(1)]],
                         constant CopyParams& p [[buffer(2)]],
                         uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    long rest = long(gid);
    long di = p.doff;
    long si = p.soff;
    for (int d = p.rank - 1; d >= 0; d--) {
        long len = p.shape[d];
        long idx = rest % len;
        rest /= len;
        di += idx * p.dstride[d];
        si += idx * p.sstride[d];
    }
    if (p.ddt == p.sdt) {
        // Same type: move the bits (NaN payloads included).
        if (p.ddt == DT_F32) {
            ((device uint*)dst)[di] = ((device const uint*)src)[si];
        } else {
            ((device ushort*)dst)[di] = ((device const ushort*)src)[si];
        }
        return;
    }
    st_bits(dst, p.ddt, di, ld_bits(src, p.sdt, si));
}

#define OP_SILU 1
#define OP_GELU 2
#define OP_GELU_TANH 3
#define OP_QUICK_GELU 4
#define OP_EXP 5

struct UnaryParams {
    int n;
    int op;
    int doff;
    int soff;
};

kernel void unary(device float* dst [[buffer(0)]],
                  device const float* src [[buffer(1)]],
                  constant UnaryParams& p [[buffer(2)]],
                  uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    float x = src[long(p.soff) + long(gid)];
    float y;
    switch (p.op) {
    case OP_SILU:
        y = x * sigmoid_f(x);
        break;
    case OP_GELU:
        y = gelu_f(x);
        break;
    case OP_GELU_TANH:
        y = 0.5f * x * (1.0f + tanh(0.7978845608028654f * (x + 0.044715f * x * x * x)));
        break;
    case OP_QUICK_GELU:
        y = x * sigmoid_f(1.702f * x);
        break;
    default:
        y = exp(x);
        break;
    }
    dst[long(p.doff) + long(gid)] = y;
}

#define OP_ADD 1
#define OP_SUB 2
#define OP_MUL 3
#define OP_DIV 4

// BinaryParams: dst is contiguous (from doff); a and b have dst's shape with
// their own strides (0 where broadcast) and dtypes.
struct BinaryParams {
    int n;
    int op;
    int rank;
    int doff;
    int adt;
    int aoff;
    int bdt;
    int boff;
    int shape[MAX_RANK];
    int astride[MAX_RANK];
    int bstride[MAX_RANK];
};

kernel void binary(device float* dst [[buffer(0)]],
                   device const char* a [[buffer(1)]],
                   device const char* b [[buffer(2)]],
                   constant BinaryParams& p [[buffer(3)]],
                   uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    long rest = long(gid);
    long ai = p.aoff;
    long bi = p.boff;
    for (int d = p.rank - 1; d >= 0; d--) {
        long len = p.shape[d];
        long idx = rest % len;
        rest /= len;
        ai += idx * p.astride[d];
        bi += idx * p.bstride[d];
    }
    float x = ld(a, p.adt, ai);
    float y = ld(b, p.bdt, bi);
    float r;
    switch (p.op) {
    case OP_ADD:
        r = x + y;
        break;
    case OP_SUB:
        r = x - y;
        break;
    case OP_MUL:
        r = x * y;
        break;
    default:
        r = x / y;
        break;
    }
    dst[long(p.doff) + long(gid)] = r;
}

struct AffineParams {
    int n;
    int doff;
    int soff;
    float scale;
    float shift;
};

kernel void affine(device float* dst [[buffer(0)]],
                   device const float* src [[buffer(1)]],
                   constant AffineParams& p [[buffer(2)]],
                   uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    dst[long(p.doff) + long(gid)] = fma(src[long(p.soff) + long(gid)], p.scale, p.shift);
}

struct ClampParams {
    int n;
    int doff;
    int soff;
    float lo;
    float hi;
};

// clamp keeps NaN: both comparisons are false for it.
kernel void clamp_f32(device float* dst [[buffer(0)]],
                      device const float* src [[buffer(1)]],
                      constant ClampParams& p [[buffer(2)]],
                      uint gid [[thread_position_in_grid]]) {
    if (int(gid) >= p.n) {
        return;
    }
    float v = src[long(p.soff) + long(gid)];
    if (v < p.lo) {
        v = p.lo;
    } else if (v > p.hi) {
        v = p.hi;
    }
    dst[long(p.doff) + long(gid)] = v;
}

// GegluParams: src is [rows, 2n], dst [rows, n].
struct GegluParams {
    int rows;
    int n;
    int doff;
    int soff;
};

kernel void geglu(device float* dst [[buffer(0)]],
                  device const float* src [[buffer(1)]],
                  constant GegluParams& p [[buffer(2)]],
                  uint gid [[thread_position_in_grid]]) {
    long i = long(gid);
    long n = p.n;
    if (i >= long(p.rows) * n) {
        return;
    }
    long r = i / n;
    long c = i - r * n;
    long s = long(p.soff) + 2 * r * n + c;
    dst[long(p.doff) + i] = src[s] * gelu_f(src[s + n]);
}

// ResizeParams: src [planes, h, w] to dst [planes, oh, ow]; the source index is
// min(int(float(i) * scale), size - 1) as torch computes it.
struct ResizeParams {
    int planes;
    int h;
    int w;
    int oh;
    int ow;
    float sh;
    float sw;
    int doff;
    int soff;
};

kernel void resize_nearest(device float* dst [[buffer(0)]],
                           device const float* src [[buffer(1)]],
                           constant ResizeParams& p [[buffer(2)]],
                           uint gid [[thread_position_in_grid]]) {
    long i = long(gid);
    long plane = long(p.oh) * long(p.ow);
    if (i >= long(p.planes) * plane) {
        return;
    }
    long pl = i / plane;
    int rem = int(i - pl * plane);
    int y = rem / p.ow;
    int x = rem - y * p.ow;
    int sy = min(int(float(y) * p.sh), p.h - 1);
    int sx = min(int(float(x) * p.sw), p.w - 1);
    dst[long(p.doff) + i] = src[long(p.soff) + (pl * p.h + sy) * long(p.w) + sx];
}

// EmbeddingParams: dst [rows, dim] gets row ids[r] of the table (dtype tdt,
// strides rs and cs, from element toff).
struct EmbeddingParams {
    int rows;
    int dim;
    int tdt;
    int toff;
    int rs;
    int cs;
    int doff;
};

kernel void embedding(device float* dst [[buffer(0)]],
                      device const char* table [[buffer(1)]],
                      device const int* ids [[buffer(2)]],
                      constant EmbeddingParams& p [[buffer(3)]],
                      uint gid [[thread_position_in_grid]]) {
    long i = long(gid);
    if (i >= long(p.rows) * long(p.dim)) {
        return;
    }
    long r = i / p.dim;
    long c = i - r * p.dim;
    long t = long(p.toff) + long(ids[r]) * p.rs + c * p.cs;
    ((device uint*)dst)[long(p.doff) + i] = ld_bits(table, p.tdt, t);
}

// TimestepParams: dst [n, dim] is the sinusoidal embedding of the timesteps t
// [n] (tensor.Backend.TimestepEmbedding) with the dim/2 frequencies freqs,
// which the host computes as the CPU backend does (exp in double, which Metal
// lacks). Row r is [sin(t[r]*f), cos(t[r]*f)], [cos, sin] when flip, then a
// zero column when dim is odd. The argument t[r]*f is the CPU's float product
// bit for bit; precise::sin and precise::cos of it are within a few ulp of the
// CPU's correctly rounded double results (a few 1e-7 on values of at most 1).
struct TimestepParams {
    int n;
    int dim;
    int flip;
    int toff;
    int doff;
};

kernel void timestep_embedding(device float* dst [[buffer(0)]],
                               device const float* t [[buffer(1)]],
                               device const float* freqs [[buffer(2)]],
                               constant TimestepParams& p [[buffer(3)]],
                               uint gid [[thread_position_in_grid]]) {
    long i = long(gid);
    if (i >= long(p.n) * long(p.dim)) {
        return;
    }
    long r = i / p.dim;
    int c = int(i - r * p.dim);
    int nf = p.dim / 2;
    float v = 0.0f;
    if (c < 2 * nf) {
        bool first = c < nf;
        float arg = t[long(p.toff) + r] * freqs[first ? c : c - nf];
        v = (first != (p.flip != 0)) ? precise::sin(arg) : precise::cos(arg);
    }
    dst[long(p.doff) + i] = v;
}
