// norm.metal: the row reductions — softmax, layer norm, group norm (with the
// fused SiLU), moments. One threadgroup (of up to 1024 threads, a multiple of
// the simdgroup width) handles one row or group; statistics are taken in two
// passes (the mean, then the sum of squared deviations from it), in float.

#include <metal_stdlib>
using namespace metal;

// RowParams: rows of n elements, src from soff, dst from doff, contiguous.
struct RowParams {
    int rows;
    int n;
    int doff;
    int soff;
};

kernel void softmax(device float* dst [[buffer(0)]],
                    device const float* src [[buffer(1)]],
                    constant RowParams& p [[buffer(2)]],
                    uint row [[threadgroup_position_in_grid]],
                    uint tid [[thread_position_in_threadgroup]],
                    uint tgsize [[threads_per_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]],
                    uint sg [[simdgroup_index_in_threadgroup]],
                    uint nsg [[simdgroups_per_threadgroup]]) {
    threadgroup float buf[32];
    long n = p.n;
    device const float* x = src + long(p.soff) + long(row) * n;
    device float* y = dst + long(p.doff) + long(row) * n;
    float m = -INFINITY;
    for (long i = tid; i < n; i += tgsize) {
        m = max(m, x[i]);
    }
    m = tg_max(m, buf, lane, sg, nsg);
    float s = 0.0f;
    for (long i = tid; i < n; i += tgsize) {
        float e = exp(x[i] - m);
        y[i] = e;
        s += e;
    }
    s = tg_sum(s, buf, lane, sg, nsg);
    float inv = 1.0f / s;
    for (long i = tid; i < n; i += tgsize) {
        y[i] *= inv;
    }
}

// NormParams: the per-channel parameters gamma and beta have dtypes gdt and bdt
// (0 when absent: 1 and 0), offsets and strides.
struct LayerNormParams {
    int rows;
    int n;
    int doff;
    int xoff;
    float eps;
    int gdt;
    int goff;
    int gst;
    int bdt;
    int boff;
    int bst;
};

kernel void layer_norm(device float* dst [[buffer(0)]],
                       device const float* src [[buffer(1)]],
                       device const char* gamma [[buffer(2)]],
                       device const char* beta [[buffer(3)]],
                       constant LayerNormParams& p [[buffer(4)]],
                       uint row [[threadgroup_position_in_grid]],
                       uint tid [[thread_position_in_threadgroup]],
                       uint tgsize [[threads_per_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint nsg [[simdgroups_per_threadgroup]]) {
    threadgroup float buf[32];
    long n = p.n;
    device const float* x = src + long(p.xoff) + long(row) * n;
    device float* y = dst + long(p.doff) + long(row) * n;
    float s = 0.0f;
    for (long i = tid; i < n; i += tgsize) {
        s += x[i];
    }
    float mean = tg_sum(s, buf, lane, sg, nsg) / float(n);
    float q = 0.0f;
    for (long i = tid; i < n; i += tgsize) {
        float d = x[i] - mean;
        q += d * d;
    }
    float var = tg_sum(q, buf, lane, sg, nsg) / float(n);
    float rstd = 1.0f / sqrt(var + p.eps);
    for (long i = tid; i < n; i += tgsize) {
        float g = p.gdt != 0 ? ld(gamma, p.gdt, long(p.goff) + i * p.gst) : 1.0f;
        float b = p.bdt != 0 ? ld(beta, p.bdt, long(p.boff) + i * p.bst) : 0.0f;
        y[i] = (x[i] - mean) * rstd * g + b;
    }
}

// GroupNormParams: x [batch, c, spatial] in groups of c/groups channels; one
// threadgroup per (sample, group), the group's index in the grid.
struct GroupNormParams {
    int c;
    int groups;
    int spatial;
    int doff;
    int xoff;
    float eps;
    int silu;
    int gdt;
    int goff;
    int gst;
    int bdt;
    int boff;
    int bst;
};

// group_norm applies torch's formula: y = x*sc + (beta - sc*mean) with
// sc = gamma*rstd, then SiLU when p.silu is set.
kernel void group_norm(device float* dst [[buffer(0)]],
                       device const float* src [[buffer(1)]],
                       device const char* gamma [[buffer(2)]],
                       device const char* beta [[buffer(3)]],
                       constant GroupNormParams& p [[buffer(4)]],
                       uint blk [[threadgroup_position_in_grid]],
                       uint tid [[thread_position_in_threadgroup]],
                       uint tgsize [[threads_per_threadgroup]],
                       uint lane [[thread_index_in_simdgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]],
                       uint nsg [[simdgroups_per_threadgroup]]) {
    threadgroup float buf[32];
    int cg = p.c / p.groups;
    long len = long(cg) * long(p.spatial);
    long base = long(blk) * len;
    device const float* x = src + long(p.xoff) + base;
    device float* y = dst + long(p.doff) + base;
    float s = 0.0f;
    for (long i = tid; i < len; i += tgsize) {
        s += x[i];
    }
    float mean = tg_sum(s, buf, lane, sg, nsg) / float(len);
    float q = 0.0f;
    for (long i = tid; i < len; i += tgsize) {
        float d = x[i] - mean;
        q += d * d;
    }
    float var = tg_sum(q, buf, lane, sg, nsg) / float(len);
    float rstd = 1.0f / sqrt(var + p.eps);
    int c0 = int(blk % uint(p.groups)) * cg;
    for (long i = tid; i < len; i += tgsize) {
        int ch = c0 + int(i / p.spatial);
        float g = p.gdt != 0 ? ld(gamma, p.gdt, long(p.goff) + long(ch) * p.gst) : 1.0f;
        float b = p.bdt != 0 ? ld(beta, p.bdt, long(p.boff) + long(ch) * p.bst) : 0.0f;
        float sc = g * rstd;
        float v = fma(x[i], sc, b - sc * mean);
        if (p.silu != 0) {
            v = v * sigmoid_f(v);
        }
        y[i] = v;
    }
}

// MomentsParams: x [rows, n] contiguous from xoff; mean and variance [rows].
struct MomentsParams {
    int rows;
    int n;
    int moff;
    int voff;
    int xoff;
};

kernel void moments(device float* mean [[buffer(0)]],
                    device float* variance [[buffer(1)]],
                    device const float* src [[buffer(2)]],
                    constant MomentsParams& p [[buffer(3)]],
                    uint row [[threadgroup_position_in_grid]],
                    uint tid [[thread_position_in_threadgroup]],
                    uint tgsize [[threads_per_threadgroup]],
                    uint lane [[thread_index_in_simdgroup]],
                    uint sg [[simdgroup_index_in_threadgroup]],
                    uint nsg [[simdgroups_per_threadgroup]]) {
    threadgroup float buf[32];
    long n = p.n;
    device const float* x = src + long(p.xoff) + long(row) * n;
    float s = 0.0f;
    for (long i = tid; i < n; i += tgsize) {
        s += x[i];
    }
    float m = tg_sum(s, buf, lane, sg, nsg) / float(n);
    float q = 0.0f;
    for (long i = tid; i < n; i += tgsize) {
        float d = x[i] - m;
        q += d * d;
    }
    float v = tg_sum(q, buf, lane, sg, nsg) / float(n);
    if (tid == 0) {
        mean[long(p.moff) + long(row)] = m;
        variance[long(p.voff) + long(row)] = v;
    }
}
