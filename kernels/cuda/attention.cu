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
// tensor cores (mma.sync m16n8k16, F16 or BF16 operands, FP32 accumulation),
// organised as FlashAttention-2.
//
// q, k and v are of the mode's dtype T (the Go side converts other dtypes into
// contiguous temporaries), each with batch, head and row strides and unit
// element stride. A block of 4 warps takes BQ = 64·WM query rows of one
// (batch, head), 16·WM rows a warp (WM 16-row m-tiles), and streams over the
// keys BK at a time. Tiles are copied to shared memory with cp.async, 16 bytes
// (8 elements) a copy when the operand's rows are 16-byte aligned (bit 0, 1, 2
// of `aligned` for q, k, v), zero-filled past the last row and past the head
// dimension (padded to DP, a multiple of 16); the 8-element chunk holding a
// head's end, and every chunk of an operand that is not aligned, is read with
// scalar loads. K and V tiles are double-buffered: tile j+1 is in flight while
// the warps compute on tile j, with one __syncthreads a tile. Q's rows are
// staged once (in the second stage's buffers) and kept in registers as A
// fragments.
//
// Per tile a warp computes its 16·WM×BK scores S = Q·Kᵀ (K's B fragments read
// with ldmatrix), scales them by scale·log2(e), masks keys past Lk (and, if
// causal, past the query's index; only on the tiles where that can happen),
// updates the running maximum m and sum l of each row, and adds P·V to its FP32
// output accumulator, P (rounded to T) being the score registers reused as the
// A operand and V's fragments read with ldmatrix.trans. The output, divided by
// l, is written as F32 with strides. Shared rows hold DP elements and 16 bytes
// of padding, so ldmatrix reads them without bank conflicts; the shared memory
// is static, 2 stages × (K, V) × BK rows, at most 45 KiB.
//
// Without nvcc (the host emulation of testdata/emu) the cp.async, ldmatrix and
// mma.sync wrappers below are replaced by scalar code with the same per-lane
// results.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#define TC_WARPS 4 // warps per block

#ifdef __CUDACC__
#define TC_ALIGN __align__(16)
#else
#define TC_ALIGN
#define __launch_bounds__(...)
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

// fa_cp16 copies n (16 or 0) bytes from global src to the 16-byte-aligned
// shared dst and zero-fills the rest of the 16; fa_st16 stores 4 words at dst.
#ifdef __CUDACC__
__device__ __forceinline__ void fa_cp16(unsigned *dst, const void *src, int n) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(tc_smem(dst)), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void fa_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }
__device__ __forceinline__ void fa_st16(unsigned *dst, const unsigned w[4]) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(tc_smem(dst)), "r"(w[0]), "r"(w[1]), "r"(w[2]), "r"(w[3])
                 : "memory");
}
// fa_exp2 is 2^x (ex2.approx: 2 ulp; 2^-inf = 0).
__device__ __forceinline__ float fa_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}
#else
inline void fa_cp16(unsigned *dst, const void *src, int n) {
    memset(dst, 0, 16);
    memcpy(dst, src, n);
}
inline void fa_commit() {}
inline void fa_wait_all() {}
inline void fa_st16(unsigned *dst, const unsigned w[4]) { memcpy(dst, w, 16); }
inline float fa_exp2(float x) { return exp2f(x); }
#endif

// fa_load stages rows r0 .. r0+R-1 of an operand (row i at p + i·sl, L rows, D
// columns) in s, PW words a row: CP 16-byte chunks (8 elements) a row, zero
// past D and past L. al: p and sl are 16-byte aligned (cp.async may copy whole
// chunks).
template <int R, int CP, int PW>
__device__ __forceinline__ void fa_load(unsigned *s, const unsigned short *p, long long sl, int r0, int L, int D, bool al) {
    constexpr int N = R * CP, NT = TC_WARPS * 32;
#pragma unroll
    for (int i = 0; i < (N + NT - 1) / NT; i++) {
        const int e = (int)threadIdx.x + i * NT;
        if (N % NT == 0 || e < N) {
            const int r = e / CP, c = (e - r * CP) * 8, gr = r0 + r;
            unsigned *dst = s + r * PW + (c >> 1);
            const unsigned short *src = p + (long long)gr * sl + c;
            if (gr >= L || c >= D) {
                fa_cp16(dst, p, 0);
            } else if (al && c + 8 <= D) {
                fa_cp16(dst, src, 16);
            } else {
                unsigned w[4];
#pragma unroll
                for (int x = 0; x < 4; x++) {
                    unsigned lo = c + 2 * x < D ? src[2 * x] : 0u;
                    unsigned hi = c + 2 * x + 1 < D ? src[2 * x + 1] : 0u;
                    w[x] = lo | hi << 16;
                }
                fa_st16(dst, w);
            }
        }
    }
}

// flash_tc: see above. DP: padded head dimension (a multiple of 16, at least
// both D and Dv rounded up to 16); BK keys a tile; WM 16-row m-tiles a warp.
template <typename T, int DP, int BK, int WM>
__device__ __forceinline__ void flash_tc(float *o, const unsigned short *q, const unsigned short *k, const unsigned short *v,
                                         int H, int Lq, int Lk, int D, int Dv, int aligned,
                                         long long qsb, long long qsh, long long qsl,
                                         long long ksb, long long ksh, long long ksl,
                                         long long vsb, long long vsh, long long vsl,
                                         long long osb, long long osh, long long osl,
                                         float scale, int causal) {
    constexpr int BQ = TC_WARPS * 16 * WM; // query rows a block
    constexpr int PW = (DP + 8) / 2;       // words a shared row: DP elements and 16 bytes of padding
    constexpr int KS = DP / 16;            // 16-wide column steps of a head
    constexpr int CP = DP / 8;             // 16-byte chunks a row
    constexpr int NB = BK / 8;             // 8-key score tiles
    constexpr int STAGE = 2 * BK * PW;     // words of a stage: K's rows, then V's
    constexpr bool QS = BQ <= 2 * BK;      // Q's rows fit in a stage (else they take both, before K and V)
    static_assert(BQ <= 4 * BK, "Q's rows must fit in the shared memory");
    static_assert(DP % 16 == 0 && BK % 16 == 0, "tile shapes");
    __shared__ TC_ALIGN unsigned sm[2 * STAGE];

    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const int b = blockIdx.y / H, h = blockIdx.y - b * H;
    const int q0 = blockIdx.x * BQ, wq0 = q0 + warp * 16 * WM;
    const int nks = (D + 15) >> 4, nvs = (Dv + 15) >> 4;
    const unsigned short *qb = q + b * qsb + h * qsh;
    const unsigned short *kb = k + b * ksb + h * ksh;
    const unsigned short *vb = v + b * vsb + h * vsh;
    const bool qal = aligned & 1, kal = aligned & 2, val = aligned & 4;

    // The keys any query of the block may see, and their tiles.
    int kend = Lk;
    if (causal) kend = min(Lk, min(Lq, q0 + BQ));
    const int ntiles = (kend + BK - 1) / BK;

    // Q's rows into the second stage and the first tile of K and V into the
    // first, or (!QS) Q's rows into both stages, then that tile.
    unsigned *qs = QS ? sm + STAGE : sm;
    fa_load<BQ, CP, PW>(qs, qb, qsl, q0, Lq, D, qal);
    if (QS) {
        fa_load<BK, CP, PW>(sm, kb, ksl, 0, Lk, D, kal);
        fa_load<BK, CP, PW>(sm + BK * PW, vb, vsl, 0, Lk, Dv, val);
    }
    fa_commit();
    fa_wait_all();
    __syncthreads();
    unsigned qf[WM][KS][4];
#pragma unroll
    for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int c = 0; c < KS; c++) {
            if (c < nks) tc_lda<PW>(qf[mi][c], qs, warp * 16 * WM + mi * 16, c * 16);
        }
    }
    if (!QS) {
        __syncthreads();
        fa_load<BK, CP, PW>(sm, kb, ksl, 0, Lk, D, kal);
        fa_load<BK, CP, PW>(sm + BK * PW, vb, vsl, 0, Lk, Dv, val);
        fa_commit();
    }

    float acc[WM][2 * KS][4];
#pragma unroll
    for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int n = 0; n < 2 * KS; n++) acc[mi][n][0] = acc[mi][n][1] = acc[mi][n][2] = acc[mi][n][3] = 0.0f;
    }
    float m[WM][2], l[WM][2];
#pragma unroll
    for (int mi = 0; mi < WM; mi++) m[mi][0] = m[mi][1] = -INFINITY, l[mi][0] = l[mi][1] = 0.0f;
    const float sl2 = scale * 1.4426950408889634f; // exp(x·scale) = 2^(x·sl2)

    for (int j = 0; j < ntiles; j++) {
        // Tile j is in shared memory, and every warp is done with tile j-1 (and
        // with Q's rows): its stage takes tile j+1.
        fa_wait_all();
        __syncthreads();
        const int k0 = j * BK;
        if (j + 1 < ntiles) {
            unsigned *nx = sm + ((j + 1) & 1) * STAGE;
            fa_load<BK, CP, PW>(nx, kb, ksl, k0 + BK, Lk, D, kal);
            fa_load<BK, CP, PW>(nx + BK * PW, vb, vsl, k0 + BK, Lk, Dv, val);
            fa_commit();
        }
        const unsigned *ks = sm + (j & 1) * STAGE, *vs = ks + BK * PW;
        const int nkk = min(BK / 16, (kend - k0 + 15) >> 4); // 16-key steps holding keys below kend

        // S = Q·Kᵀ, NB tiles of 8 keys a m-tile.
        float s[WM][NB][4];
#pragma unroll
        for (int mi = 0; mi < WM; mi++) {
#pragma unroll
            for (int n = 0; n < NB; n++) s[mi][n][0] = s[mi][n][1] = s[mi][n][2] = s[mi][n][3] = 0.0f;
        }
#pragma unroll
        for (int c = 0; c < KS; c++) {
            if (c < nks) {
#pragma unroll
                for (int kk = 0; kk < BK / 16; kk++) {
                    if (kk < nkk) {
                        unsigned bf[4];
                        tc_ldbk<PW>(bf, ks, kk * 16, c * 16);
#pragma unroll
                        for (int mi = 0; mi < WM; mi++) {
                            tc_mma<T>(s[mi][2 * kk], qf[mi][c], bf[0], bf[1]);
                            tc_mma<T>(s[mi][2 * kk + 1], qf[mi][c], bf[2], bf[3]);
                        }
                    }
                }
            }
        }

        // Scale, mask (keys past kend, and past the row if causal), and the
        // online softmax of rows wq0 + 16mi + g (s[mi][.][0..1]) and +8 (s[mi][.][2..3]).
        const bool mask = k0 + BK > kend || (causal && k0 + BK - 1 > wq0);
#pragma unroll
        for (int mi = 0; mi < WM; mi++) {
            float mx[2] = {m[mi][0], m[mi][1]};
#pragma unroll
            for (int n = 0; n < NB; n++) {
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float x = s[mi][n][i] * sl2;
                    if (mask) {
                        int key = k0 + n * 8 + 2 * t + (i & 1);
                        int row = wq0 + mi * 16 + g + (i >> 1) * 8;
                        if (key >= kend || (causal && key > row)) x = -INFINITY;
                    }
                    s[mi][n][i] = x;
                    mx[i >> 1] = fmaxf(mx[i >> 1], x);
                }
            }
            float base[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                base[r] = mx[r] == -INFINITY ? 0.0f : mx[r]; // a row with no key yet
                float corr = fa_exp2(m[mi][r] - base[r]);
                m[mi][r] = mx[r];
                l[mi][r] *= corr;
#pragma unroll
                for (int n = 0; n < 2 * KS; n++) {
                    if (n < 2 * nvs) {
                        acc[mi][n][2 * r] *= corr;
                        acc[mi][n][2 * r + 1] *= corr;
                    }
                }
            }
#pragma unroll
            for (int n = 0; n < NB; n++) {
                if (n < 2 * nkk) {
#pragma unroll
                    for (int i = 0; i < 4; i++) {
                        s[mi][n][i] = fa_exp2(s[mi][n][i] - base[i >> 1]);
                        l[mi][i >> 1] += s[mi][n][i];
                    }
                }
            }
        }

        // O += P·V, 16 keys a step; P's A fragment is the score tiles 2kk and 2kk+1.
#pragma unroll
        for (int kk = 0; kk < BK / 16; kk++) {
            if (kk < nkk) {
                unsigned pa[WM][4];
#pragma unroll
                for (int mi = 0; mi < WM; mi++) {
                    pa[mi][0] = tc_pack<T>(s[mi][2 * kk][0], s[mi][2 * kk][1]);
                    pa[mi][1] = tc_pack<T>(s[mi][2 * kk][2], s[mi][2 * kk][3]);
                    pa[mi][2] = tc_pack<T>(s[mi][2 * kk + 1][0], s[mi][2 * kk + 1][1]);
                    pa[mi][3] = tc_pack<T>(s[mi][2 * kk + 1][2], s[mi][2 * kk + 1][3]);
                }
#pragma unroll
                for (int c = 0; c < KS; c++) {
                    if (c < nvs) {
                        unsigned bf[4];
                        tc_ldbv<PW>(bf, vs, kk * 16, c * 16);
#pragma unroll
                        for (int mi = 0; mi < WM; mi++) {
                            tc_mma<T>(acc[mi][2 * c], pa[mi], bf[0], bf[1]);
                            tc_mma<T>(acc[mi][2 * c + 1], pa[mi], bf[2], bf[3]);
                        }
                    }
                }
            }
        }
    }

    // Each row's sum is spread over the 4 lanes of its group.
    float *ob = o + b * osb + h * osh;
#pragma unroll
    for (int mi = 0; mi < WM; mi++) {
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[mi][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = 1.0f / sum;
            const int row = wq0 + mi * 16 + g + 8 * r;
            if (row < Lq) {
                float *orow = ob + (long long)row * osl;
#pragma unroll
                for (int n = 0; n < 2 * KS; n++) {
                    if (n < 2 * nvs) {
                        int col = n * 8 + 2 * t;
                        if (col < Dv) orow[col] = acc[mi][n][2 * r] * inv;
                        if (col + 1 < Dv) orow[col + 1] = acc[mi][n][2 * r + 1] * inv;
                    }
                }
            }
        }
    }
}

// flash_attn_tc_<dtype>_d<DP>: q [B,H,Lq,D], k [B,H,Lk,D], v [B,H,Lk,Dv] of
// the dtype (F16 or BF16), o [B,H,Lq,Dv] F32, each with batch, head and row
// strides in elements and unit element stride; D and Dv at most DP. aligned:
// bits 0, 1, 2 set when q, k, v (base and strides) are 16-byte aligned. causal:
// query i sees keys 0..i. Grid: (ceil(Lq/BQ), B*H), BQ = 64·WM; block: 128
// threads; no dynamic shared memory.
#define FLASH_TC(NAME, T, DP, BK, WM)                                                                                   \
    extern "C" __global__ __launch_bounds__(TC_WARPS * 32) void NAME(                                                  \
        float *o, const unsigned short *q, const unsigned short *k, const unsigned short *v, int H, int Lq, int Lk,    \
        int D, int Dv, int aligned, long long qsb, long long qsh, long long qsl, long long ksb, long long ksh,          \
        long long ksl, long long vsb, long long vsh, long long vsl, long long osb, long long osh, long long osl,       \
        float scale, int causal) {                                                                                     \
        flash_tc<T, DP, BK, WM>(o, q, k, v, H, Lq, Lk, D, Dv, aligned, qsb, qsh, qsl, ksb, ksh, ksl, vsb, vsh, vsl,    \
                                osb, osh, osl, scale, causal);                                                          \
    }

FLASH_TC(flash_attn_tc_f16_d48, __half, 48, 64, 2)
FLASH_TC(flash_attn_tc_f16_d64, __half, 64, 64, 2)
FLASH_TC(flash_attn_tc_f16_d80, __half, 80, 32, 2)
FLASH_TC(flash_attn_tc_f16_d160, __half, 160, 32, 1)
FLASH_TC(flash_attn_tc_bf16_d48, __nv_bfloat16, 48, 64, 2)
FLASH_TC(flash_attn_tc_bf16_d64, __nv_bfloat16, 64, 64, 2)
FLASH_TC(flash_attn_tc_bf16_d80, __nv_bfloat16, 80, 32, 2)
FLASH_TC(flash_attn_tc_bf16_d160, __nv_bfloat16, 160, 32, 1)
