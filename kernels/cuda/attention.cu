// Flash attention of the sdgo CUDA backend, FP32: o = softmax(q·kᵀ·scale)·v per
// (batch, head), streaming over blocks of keys with an online softmax, so the
// Lq×Lk scores never exist. One warp per query row: lane l holds elements
// l, l+32, ... of the query and of the output accumulator (head dimensions up to
// MAXD); a block's warps share each block of keys and values staged in shared
// memory. Each key's score is a warp-wide dot product; the running maximum m and
// sum l rescale the accumulator as in FlashAttention. Accumulation is FP32.

#define MAXD 256
#define PER (MAXD / 32)
#define WARPS 8

// flash_attn_f32: q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv], o [B,H,Lq,Dv], each
// with batch, head and row strides (in elements) and unit element stride. bk
// keys per block; dynamic shared memory bk*(D+Dv) floats. causal: query i sees
// keys 0..i. Grid: (ceil(Lq/WARPS), B*H); block: 32*WARPS.
extern "C" __global__ void flash_attn_f32(float *o, const float *q, const float *k, const float *v,
                                          int H, int Lq, int Lk, int D, int Dv, int bk,
                                          long long qsb, long long qsh, long long qsl,
                                          long long ksb, long long ksh, long long ksl,
                                          long long vsb, long long vsh, long long vsl,
                                          long long osb, long long osh, long long osl,
                                          float scale, int causal) {
    extern __shared__ float smem[];
    float *ks = smem;          // bk × D
    float *vs = smem + bk * D; // bk × Dv
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int b = blockIdx.y / H, h = blockIdx.y % H;
    int qi = blockIdx.x * WARPS + warp;
    bool active = qi < Lq;
    const float *kb = k + b * ksb + h * ksh;
    const float *vb = v + b * vsb + h * vsh;

    float qr[PER], acc[PER];
#pragma unroll
    for (int t = 0; t < PER; t++) {
        int d = lane + 32 * t;
        qr[t] = (active && d < D) ? q[b * qsb + h * qsh + qi * qsl + d] * scale : 0.0f;
        acc[t] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;

    // The keys any query of this block may see.
    int kend = Lk;
    if (causal) {
        int last = min(Lq - 1, (int)blockIdx.x * WARPS + WARPS - 1);
        kend = min(Lk, last + 1);
    }
    int mine = causal ? min(Lk, qi + 1) : Lk;
    for (int k0 = 0; k0 < kend; k0 += bk) {
        int n = min(bk, kend - k0);
        __syncthreads();
        for (int e = threadIdx.x; e < n * D; e += blockDim.x) {
            int j = e / D, d = e - j * D;
            ks[e] = kb[(long long)(k0 + j) * ksl + d];
        }
        for (int e = threadIdx.x; e < n * Dv; e += blockDim.x) {
            int j = e / Dv, d = e - j * Dv;
            vs[e] = vb[(long long)(k0 + j) * vsl + d];
        }
        __syncthreads();
        if (!active) continue;
        int nj = min(n, mine - k0);
        for (int j = 0; j < nj; j++) {
            const float *kr = ks + j * D;
            float s = 0.0f;
#pragma unroll
            for (int t = 0; t < PER; t++) {
                int d = lane + 32 * t;
                if (d < D) s = fmaf(qr[t], kr[d], s);
            }
#pragma unroll
            for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
            float mn = fmaxf(m, s);
            float corr = expf(m - mn);
            float p = expf(s - mn);
            l = l * corr + p;
            const float *vr = vs + j * Dv;
#pragma unroll
            for (int t = 0; t < PER; t++) {
                int d = lane + 32 * t;
                acc[t] = acc[t] * corr + (d < Dv ? p * vr[d] : 0.0f);
            }
            m = mn;
        }
    }
    if (!active) return;
    float inv = 1.0f / l;
    float *orow = o + b * osb + h * osh + qi * osl;
#pragma unroll
    for (int t = 0; t < PER; t++) {
        int d = lane + 32 * t;
        if (d < Dv) orow[d] = acc[t] * inv;
    }
}
