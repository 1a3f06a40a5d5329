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

// ---------------------------------------------------------------------------
// Tensor-core flash attention, the FP16 and BF16 modes' attention (see
// flash_tc.go): the same online softmax as above, with both products on the
// tensor cores (mma.sync m16n8k16, F16 or BF16 operands, FP32 accumulation).
//
// A block of 4 warps takes 64 query rows of one (batch, head), 16 rows a warp,
// and streams over the keys 64 at a time. q, k and v may each be F32, F16 or
// BF16 (qdt, kdt, vdt: 0, 1, 2) with any batch, head and row strides and unit
// element stride; tiles are rounded to the mode's dtype T as they are staged in
// shared memory, head dimensions padded with zeros to a multiple of 16 and the
// rows past the end with zero rows. Per tile a warp computes its 16×64 scores
// S = Q·Kᵀ (Q's fragments stay in registers, K's are read with ldmatrix), scales
// them by scale·log2(e), masks keys past Lk (and, if causal, past the query's
// index), updates the running maximum m and sum l of each row, and adds P·V to
// its FP32 output accumulator, P (rounded to T) being the score registers
// reused as the A operand and V's fragments read with ldmatrix.trans. The
// output, divided by l, is written as F32 with strides. DMAX (64 or 160) bounds
// both head dimensions; its shared memory is 2·64·(DMAX+8) elements of T
// (rows padded by 16 bytes: ldmatrix reads without bank conflicts), 18 KiB or
// 42 KiB, static.
//
// Without nvcc (the host emulation of testdata/emu) the ldmatrix and mma.sync
// wrappers below are replaced by scalar code with the same per-lane results.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define TC_BQ 64    // query rows per block, 16 per warp
#define TC_BK 64    // keys per tile
#define TC_WARPS 4  // warps per block

#ifdef __CUDACC__
#define TC_ALIGN __align__(16)
#else
#define TC_ALIGN
#endif

// tc_pack returns lo and hi rounded to T, lo in the low 16 bits.
template <typename T> __device__ __forceinline__ unsigned tc_pack(float lo, float hi);
template <> __device__ __forceinline__ unsigned tc_pack<__half>(float lo, float hi) {
#ifdef __CUDACC__
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<unsigned *>(&h);
#else
    return (unsigned)static_cast<__half_raw>(__float2half_rn(lo)).x |
           (unsigned)static_cast<__half_raw>(__float2half_rn(hi)).x << 16;
#endif
}
template <> __device__ __forceinline__ unsigned tc_pack<__nv_bfloat16>(float lo, float hi) {
#ifdef __CUDACC__
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<unsigned *>(&h);
#else
    return (unsigned)static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(lo)).x |
           (unsigned)static_cast<__nv_bfloat16_raw>(__float2bfloat16_rn(hi)).x << 16;
#endif
}

__device__ __forceinline__ float tc_ld(const float *p) { return *p; }
__device__ __forceinline__ float tc_ld(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float tc_ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }

// tc_load_tile stages rows r0 .. r0+63 of an operand (row i at p + i·sl, L
// rows, D columns) in s, PW 32-bit words (2 elements of T) a row: columns
// 0 .. dpad-1, zero past D, and zero rows past L.
template <typename T, typename S, int PW>
__device__ __forceinline__ void tc_load_tile(unsigned *s, const S *p, long long sl, int r0, int L, int D, int dpad) {
    const int hp = dpad >> 1;            // column pairs a row
    const int nt = TC_WARPS * 32;
    const int sj = nt / hp, sc = nt - sj * hp;
    int j = threadIdx.x / hp, c = threadIdx.x - j * hp;
#pragma unroll 4
    for (int e = threadIdx.x; e < TC_BK * hp; e += nt) {
        float lo = 0.0f, hi = 0.0f;
        int r = r0 + j, col = 2 * c;
        if (r < L) {
            const S *row = p + (long long)r * sl;
            if (col < D) lo = tc_ld(row + col);
            if (col + 1 < D) hi = tc_ld(row + col + 1);
        }
        s[j * PW + c] = tc_pack<T>(lo, hi);
        j += sj;
        c += sc;
        if (c >= hp) {
            c -= hp;
            j++;
        }
    }
}

// tc_load is tc_load_tile for an operand of dtype code dt (0 F32, 1 F16, 2
// BF16) at p.
template <typename T, int PW>
__device__ __forceinline__ void tc_load(unsigned *s, const void *p, int dt, long long sl, int r0, int L, int D, int dpad) {
    if (dt == 0)
        tc_load_tile<T, float, PW>(s, (const float *)p, sl, r0, L, D, dpad);
    else if (dt == 1)
        tc_load_tile<T, __half, PW>(s, (const __half *)p, sl, r0, L, D, dpad);
    else
        tc_load_tile<T, __nv_bfloat16, PW>(s, (const __nv_bfloat16 *)p, sl, r0, L, D, dpad);
}

// The fragments of mma.m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"),
// for lane = 4g + t: A (16×16, row-major) a0 = A[g][2t..2t+1], a1 = A[g+8][2t..],
// a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]; B (16×8) b0 = B[2t..2t+1][g], b1 =
// B[2t+8..2t+9][g]; C (16×8, FP32) c0, c1 = C[g][2t..2t+1], c2, c3 = C[g+8][2t..].
// The tiles below are in shared memory with PW words (2·PW elements) a row.

#ifdef __CUDACC__
__device__ __forceinline__ unsigned tc_smem(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

// tc_lda loads the A fragment of rows r0..r0+15, columns c0..c0+15 of s.
template <int PW> __device__ __forceinline__ void tc_lda(unsigned a[4], const unsigned *s, int r0, int c0) {
    int lane = threadIdx.x & 31;
    const unsigned *p = s + (r0 + (lane & 15)) * PW + ((c0 + (lane >> 4) * 8) >> 1);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(tc_smem(p))
                 : "memory");
}

// tc_ldbk loads the B fragments of B = Kᵀ for keys n0..n0+7 (b[0], b[1]) and
// n0+8..n0+15 (b[2], b[3]), head columns c0..c0+15, from K's rows in s.
template <int PW> __device__ __forceinline__ void tc_ldbk(unsigned b[4], const unsigned *s, int n0, int c0) {
    int lane = threadIdx.x & 31;
    const unsigned *p = s + (n0 + (lane & 7) + ((lane >> 4) & 1) * 8) * PW + ((c0 + ((lane >> 3) & 1) * 8) >> 1);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                 : "r"(tc_smem(p))
                 : "memory");
}

// tc_ldbv loads the B fragments of B = V for keys k0..k0+15, columns n0..n0+7
// (b[0], b[1]) and n0+8..n0+15 (b[2], b[3]), from V's rows in s.
template <int PW> __device__ __forceinline__ void tc_ldbv(unsigned b[4], const unsigned *s, int k0, int n0) {
    int lane = threadIdx.x & 31;
    const unsigned *p = s + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * PW + ((n0 + ((lane >> 4) & 1) * 8) >> 1);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                 : "r"(tc_smem(p))
                 : "memory");
}

// tc_mma: c += A·B (16×8×16, FP32 accumulation).
template <typename T> __device__ __forceinline__ void tc_mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1);
template <> __device__ __forceinline__ void tc_mma<__half>(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void tc_mma<__nv_bfloat16>(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#else
// Host emulation: the same fragments read with scalar loads, and mma through a
// per-warp exchange of the operands (emu.h runs a thread per lane).
template <int PW> inline void tc_lda(unsigned a[4], const unsigned *s, int r0, int c0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    a[0] = s[(r0 + g) * PW + (c0 >> 1) + t];
    a[1] = s[(r0 + g + 8) * PW + (c0 >> 1) + t];
    a[2] = s[(r0 + g) * PW + (c0 >> 1) + 4 + t];
    a[3] = s[(r0 + g + 8) * PW + (c0 >> 1) + 4 + t];
}
template <int PW> inline void tc_ldbk(unsigned b[4], const unsigned *s, int n0, int c0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    b[0] = s[(n0 + g) * PW + (c0 >> 1) + t];
    b[1] = s[(n0 + g) * PW + (c0 >> 1) + 4 + t];
    b[2] = s[(n0 + 8 + g) * PW + (c0 >> 1) + t];
    b[3] = s[(n0 + 8 + g) * PW + (c0 >> 1) + 4 + t];
}
template <int PW> inline unsigned tc_elem(const unsigned *s, int r, int c) { return s[r * PW + (c >> 1)] >> (16 * (c & 1)) & 0xffff; }
template <int PW> inline void tc_ldbv(unsigned b[4], const unsigned *s, int k0, int n0) {
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; i++) {
        int k = k0 + 2 * t + (i & 1) * 8, n = n0 + g + (i >> 1) * 8;
        b[i] = tc_elem<PW>(s, k, n) | tc_elem<PW>(s, k + 1, n) << 16;
    }
}
template <typename T> inline float tc_float(unsigned bits);
template <> inline float tc_float<__half>(unsigned bits) {
    __half_raw r;
    r.x = (unsigned short)bits;
    return __half2float(__half(r));
}
template <> inline float tc_float<__nv_bfloat16>(unsigned bits) {
    unsigned u = bits << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
struct TcEmuWarp {
    unsigned a[32][4], b[32][2];
};
inline TcEmuWarp tc_emu_warps[32];
template <typename T> inline void tc_mma(float c[4], const unsigned a[4], unsigned b0, unsigned b1) {
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    TcEmuWarp &x = tc_emu_warps[w];
    for (int i = 0; i < 4; i++) x.a[lane][i] = a[i];
    x.b[lane][0] = b0;
    x.b[lane][1] = b1;
    g_warps[w].bar->arrive_and_wait();
    for (int i = 0; i < 4; i++) {
        int row = g + (i >> 1) * 8, col = 2 * t + (i & 1);
        float sum = c[i];
        for (int k = 0; k < 16; k++) {
            unsigned aw = x.a[(row & 7) * 4 + ((k & 7) >> 1)][(row >> 3) + 2 * (k >> 3)];
            unsigned bw = x.b[col * 4 + ((k & 7) >> 1)][k >> 3];
            sum += tc_float<T>(aw >> (16 * (k & 1)) & 0xffff) * tc_float<T>(bw >> (16 * (k & 1)) & 0xffff);
        }
        c[i] = sum;
    }
    g_warps[w].bar->arrive_and_wait();
}
#endif

template <typename T, int DMAX>
__device__ __forceinline__ void flash_tc(float *o, const void *q, const void *k, const void *v, int qdt, int kdt, int vdt,
                                         int H, int Lq, int Lk, int D, int Dv,
                                         long long qsb, long long qsh, long long qsl,
                                         long long ksb, long long ksh, long long ksl,
                                         long long vsb, long long vsh, long long vsl,
                                         long long osb, long long osh, long long osl,
                                         float scale, int causal) {
    constexpr int PW = (DMAX + 8) / 2; // words a shared row: DMAX elements and 16 bytes of padding
    constexpr int KS = DMAX / 16;      // 16-wide column steps of a head
    __shared__ TC_ALIGN unsigned ks[TC_BK * PW];
    __shared__ TC_ALIGN unsigned vs[TC_BK * PW];

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b = blockIdx.y / H, h = blockIdx.y - b * H;
    const int q0 = blockIdx.x * TC_BQ;
    const int dpad = (D + 15) & ~15, dvpad = (Dv + 15) & ~15;
    const int nks = dpad >> 4, nvs = dvpad >> 4;
    const char *qb = (const char *)q + (b * qsb + h * qsh) * (qdt == 0 ? 4 : 2);
    const char *kb = (const char *)k + (b * ksb + h * ksh) * (kdt == 0 ? 4 : 2);
    const char *vb = (const char *)v + (b * vsb + h * vsh) * (vdt == 0 ? 4 : 2);

    // Q's rows of this block, through ks, into registers.
    tc_load<T, PW>(ks, qb, qdt, qsl, q0, Lq, D, dpad);
    __syncthreads();
    unsigned qf[KS][4];
#pragma unroll
    for (int s = 0; s < KS; s++) {
        if (s < nks) tc_lda<PW>(qf[s], ks, warp * 16, s * 16);
    }

    float acc[2 * KS][4];
#pragma unroll
    for (int n = 0; n < 2 * KS; n++) acc[n][0] = acc[n][1] = acc[n][2] = acc[n][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const float sl2 = scale * 1.4426950408889634f; // exp(x·scale) = 2^(x·sl2)
    const int row0 = q0 + warp * 16 + g, row1 = row0 + 8;
    // The keys any query of the block may see.
    int kend = Lk;
    if (causal) kend = min(Lk, min(Lq, q0 + TC_BQ));

    for (int k0 = 0; k0 < kend; k0 += TC_BK) {
        __syncthreads();
        tc_load<T, PW>(ks, kb, kdt, ksl, k0, Lk, D, dpad);
        tc_load<T, PW>(vs, vb, vdt, vsl, k0, Lk, Dv, dvpad);
        __syncthreads();
        const int nkk = min(TC_BK / 16, (kend - k0 + 15) >> 4); // 16-key steps holding keys below kend

        // S = Q·Kᵀ, 8 tiles of 8 keys.
        float s[8][4];
#pragma unroll
        for (int n = 0; n < 8; n++) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int c = 0; c < KS; c++) {
            if (c < nks) {
#pragma unroll
                for (int kk = 0; kk < TC_BK / 16; kk++) {
                    if (kk < nkk) {
                        unsigned bf[4];
                        tc_ldbk<PW>(bf, ks, kk * 16, c * 16);
                        tc_mma<T>(s[2 * kk], qf[c], bf[0], bf[1]);
                        tc_mma<T>(s[2 * kk + 1], qf[c], bf[2], bf[3]);
                    }
                }
            }
        }

        // Scale, mask, and the online softmax of rows row0 (s[.][0..1]) and row1 (s[.][2..3]).
        float mx[2] = {m[0], m[1]};
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                int key = k0 + n * 8 + 2 * t + (i & 1);
                int row = i < 2 ? row0 : row1;
                bool ok = key < Lk && (!causal || key <= row);
                s[n][i] = ok ? s[n][i] * sl2 : -INFINITY;
                mx[i >> 1] = fmaxf(mx[i >> 1], s[n][i]);
            }
        }
        float base[2];
#pragma unroll
        for (int r = 0; r < 2; r++) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
            base[r] = mx[r] == -INFINITY ? 0.0f : mx[r]; // a row with no key yet
            float corr = exp2f(m[r] - base[r]);
            m[r] = mx[r];
            l[r] *= corr;
#pragma unroll
            for (int n = 0; n < 2 * KS; n++) {
                if (n < 2 * nvs) {
                    acc[n][2 * r] *= corr;
                    acc[n][2 * r + 1] *= corr;
                }
            }
        }
#pragma unroll
        for (int n = 0; n < 8; n++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                s[n][i] = exp2f(s[n][i] - base[i >> 1]);
                l[i >> 1] += s[n][i];
            }
        }

        // O += P·V, 16 keys a step; P's A fragment is the score tiles 2kk and 2kk+1.
#pragma unroll
        for (int kk = 0; kk < TC_BK / 16; kk++) {
            if (kk < nkk) {
                unsigned pa[4] = {tc_pack<T>(s[2 * kk][0], s[2 * kk][1]), tc_pack<T>(s[2 * kk][2], s[2 * kk][3]),
                                  tc_pack<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]), tc_pack<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
                for (int c = 0; c < KS; c++) {
                    if (c < nvs) {
                        unsigned bf[4];
                        tc_ldbv<PW>(bf, vs, kk * 16, c * 16);
                        tc_mma<T>(acc[2 * c], pa, bf[0], bf[1]);
                        tc_mma<T>(acc[2 * c + 1], pa, bf[2], bf[3]);
                    }
                }
            }
        }
    }

    // Each row's sum is spread over the 4 lanes of its group.
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
        l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
        inv[r] = 1.0f / l[r];
    }
    float *ob = o + b * osb + h * osh;
#pragma unroll
    for (int n = 0; n < 2 * KS; n++) {
        if (n < 2 * nvs) {
            int col = n * 8 + 2 * t;
#pragma unroll
            for (int r = 0; r < 2; r++) {
                int row = r == 0 ? row0 : row1;
                if (row < Lq) {
                    float *orow = ob + (long long)row * osl;
                    if (col < Dv) orow[col] = acc[n][2 * r] * inv[r];
                    if (col + 1 < Dv) orow[col + 1] = acc[n][2 * r + 1] * inv[r];
                }
            }
        }
    }
}

// flash_attn_tc_{f16,bf16}_d{64,160}: q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv]
// of dtype codes qdt, kdt, vdt (0 F32, 1 F16, 2 BF16), o [B,H,Lq,Dv] F32, each
// with batch, head and row strides in elements and unit element stride; D and
// Dv at most 64 or 160. causal: query i sees keys 0..i. Grid: (ceil(Lq/64),
// B*H); block: 128 threads; no dynamic shared memory.
extern "C" __global__ void flash_attn_tc_f16_d64(float *o, const void *q, const void *k, const void *v, int qdt, int kdt, int vdt,
                                                 int H, int Lq, int Lk, int D, int Dv,
                                                 long long qsb, long long qsh, long long qsl,
                                                 long long ksb, long long ksh, long long ksl,
                                                 long long vsb, long long vsh, long long vsl,
                                                 long long osb, long long osh, long long osl,
                                                 float scale, int causal) {
    flash_tc<__half, 64>(o, q, k, v, qdt, kdt, vdt, H, Lq, Lk, D, Dv, qsb, qsh, qsl, ksb, ksh, ksl, vsb, vsh, vsl, osb, osh, osl, scale, causal);
}
extern "C" __global__ void flash_attn_tc_f16_d160(float *o, const void *q, const void *k, const void *v, int qdt, int kdt, int vdt,
                                                  int H, int Lq, int Lk, int D, int Dv,
                                                  long long qsb, long long qsh, long long qsl,
                                                  long long ksb, long long ksh, long long ksl,
                                                  long long vsb, long long vsh, long long vsl,
                                                  long long osb, long long osh, long long osl,
                                                  float scale, int causal) {
    flash_tc<__half, 160>(o, q, k, v, qdt, kdt, vdt, H, Lq, Lk, D, Dv, qsb, qsh, qsl, ksb, ksh, ksl, vsb, vsh, vsl, osb, osh, osl, scale, causal);
}
extern "C" __global__ void flash_attn_tc_bf16_d64(float *o, const void *q, const void *k, const void *v, int qdt, int kdt, int vdt,
                                                  int H, int Lq, int Lk, int D, int Dv,
                                                  long long qsb, long long qsh, long long qsl,
                                                  long long ksb, long long ksh, long long ksl,
                                                  long long vsb, long long vsh, long long vsl,
                                                  long long osb, long long osh, long long osl,
                                                  float scale, int causal) {
    flash_tc<__nv_bfloat16, 64>(o, q, k, v, qdt, kdt, vdt, H, Lq, Lk, D, Dv, qsb, qsh, qsl, ksb, ksh, ksl, vsb, vsh, vsl, osb, osh, osl, scale, causal);
}
extern "C" __global__ void flash_attn_tc_bf16_d160(float *o, const void *q, const void *k, const void *v, int qdt, int kdt, int vdt,
                                                   int H, int Lq, int Lk, int D, int Dv,
                                                   long long qsb, long long qsh, long long qsl,
                                                   long long ksb, long long ksh, long long ksl,
                                                   long long vsb, long long vsh, long long vsl,
                                                   long long osb, long long osh, long long osl,
                                                   float scale, int causal) {
    flash_tc<__nv_bfloat16, 160>(o, q, k, v, qdt, kdt, vdt, H, Lq, Lk, D, Dv, qsb, qsh, qsl, ksb, ksh, ksl, vsb, vsh, vsl, osb, osh, osl, scale, causal);
}
