// attention.metal: scaled-dot-product attention, flash style. One simdgroup
// owns one query row: its 32 lanes split the head dimension, the score q·k of
// each key is a simd_sum, and the row's output is accumulated with an online
// softmax (running maximum m and sum l; the accumulator is rescaled by
// exp(m − m') when the maximum grows), so no score is ever stored. Four query
// rows per threadgroup of 128 threads; grid (⌈Lq/4⌉, H, B). Head sizes up to
// 32·ATTN_D_REGS (queries and keys) and 32·ATTN_DV_REGS (values).

#include <metal_stdlib>
using namespace metal;

#define ATTN_ROWS 4
#define ATTN_D_REGS 8
#define ATTN_DV_REGS 16

// AttentionParams: q [b, h, lq, d], k [b, h, lk, d], v [b, h, lk, dv], dst
// [b, h, lq, dv]; each with its dtype (dst F32), offset and batch, head and row
// strides (the last stride is 1).
struct AttentionParams {
    int lq;
    int lk;
    int d;
    int dv;
    float scale;
    int causal;
    int qdt;
    int qoff;
    int qbs;
    int qhs;
    int qrs;
    int kdt;
    int koff;
    int kbs;
    int khs;
    int krs;
    int vdt;
    int voff;
    int vbs;
    int vhs;
    int vrs;
    int doff;
    int dbs;
    int dhs;
    int drs;
};

kernel void attention(device float* dst [[buffer(0)]],
                      device const char* q [[buffer(1)]],
                      device const char* k [[buffer(2)]],
                      device const char* v [[buffer(3)]],
                      constant AttentionParams& p [[buffer(4)]],
                      uint3 tg [[threadgroup_position_in_grid]],
                      uint lane [[thread_index_in_simdgroup]],
                      uint sg [[simdgroup_index_in_threadgroup]]) {
    int qi = int(tg.x) * ATTN_ROWS + int(sg);
    if (qi >= p.lq) {
        return;
    }
    long hh = long(tg.y);
    long bb = long(tg.z);
    long qrow = long(p.qoff) + bb * p.qbs + hh * p.qhs + long(qi) * p.qrs;
    long kbase = long(p.koff) + bb * p.kbs + hh * p.khs;
    long vbase = long(p.voff) + bb * p.vbs + hh * p.vhs;
    long drow = long(p.doff) + bb * p.dbs + hh * p.dhs + long(qi) * p.drs;

    float qv[ATTN_D_REGS];
    for (int j = 0; j < ATTN_D_REGS; j++) {
        int c = int(lane) + 32 * j;
        qv[j] = c < p.d ? ld(q, p.qdt, qrow + c) : 0.0f;
    }
    float acc[ATTN_DV_REGS];
    for (int j = 0; j < ATTN_DV_REGS; j++) {
        acc[j] = 0.0f;
    }
    float m = -INFINITY;
    float l = 0.0f;
    int kend = p.causal != 0 ? min(qi + 1, p.lk) : p.lk;
    for (int key = 0; key < kend; key++) {
        long krow = kbase + long(key) * p.krs;
        float s = 0.0f;
        for (int j = 0; j < ATTN_D_REGS; j++) {
            int c = int(lane) + 32 * j;
            if (c < p.d) {
                s += qv[j] * ld(k, p.kdt, krow + c);
            }
        }
        s = simd_sum(s) * p.scale;
        float mn = max(m, s);
        float corr = exp(m - mn);
        float e = exp(s - mn);
        l = l * corr + e;
        long vrow = vbase + long(key) * p.vrs;
        for (int j = 0; j < ATTN_DV_REGS; j++) {
            int c = int(lane) + 32 * j;
            if (c < p.dv) {
                acc[j] = acc[j] * corr + e * ld(v, p.vdt, vrow + c);
            }
        }
        m = mn;
    }
    float inv = 1.0f / l;
    for (int j = 0; j < ATTN_DV_REGS; j++) {
        int c = int(lane) + 32 * j;
        if (c < p.dv) {
            dst[drow + c] = acc[j] * inv;
        }
    }
}
