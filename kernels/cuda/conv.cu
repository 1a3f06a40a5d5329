// The tensor-core convolution of the sdgo CUDA backend's FP16 and BF16 modes
// (see conv.go): an implicit GEMM on mma.sync.m16n8k16 with F16 (or BF16)
// operands and FP32 accumulation, which gathers the input's columns while it
// loads its tiles, so that no im2col buffer exists.
//
// GEMM view: M = O output channels (A = the weight [O][K], K = C*KH*KW, in
// F16/BF16, contiguous), N = N_img*Ho*Wo output pixels (B = the virtual
// im2col matrix [K][N] of the F32 NCHW input x, rounded to F16/BF16 on its way
// into shared memory), y [N_img][O][Ho][Wo] (F32, contiguous) = A*B + bias [O].
//
// Tiling: a 256-thread block (8 warps, 2 along M x 4 along N, 64x32 each)
// computes a 128x128 tile of y, stepping over K in slices of 32 in two
// shared-memory stages: while the tensor cores work on one stage, the next
// weight slice is copied into the other with cp.async (or, when a weight row is
// not 16-byte aligned, K % 8 != 0, with plain loads) and the next input slice is
// gathered into registers (one output pixel and 16 consecutive k per thread;
// 32 threads of a warp read 32 consecutive pixels), then rounded and stored
// after the tensor-core work. Shared rows hold 32 k plus 8 halves of padding
// (80 bytes), so ldmatrix and the 16-byte stores are free of bank conflicts.
// Each stage's k -> (input offset, ky, kx) table is computed once per block
// (tbl); each thread keeps its pixel's image base and top-left input corner in
// registers. K tails, pixel tails, O tails and the zero padding read as zeros.
//
// When compiled by g++ for the host emulator (testdata/emu), the inline PTX
// (cp.async, ldmatrix, mma.sync, st.shared) is replaced by host code with the
// same per-lane semantics (see the #else branches).

#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define TC_BM 128      // tile rows (output channels)
#define TC_BN 128      // tile columns (output pixels)
#define TC_BK 32       // K per stage
#define TC_PITCH 40    // halves per shared row: TC_BK + 8 of padding
#define TC_THREADS 256 // 8 warps

typedef unsigned int u32;
typedef unsigned short u16;

#ifndef __CUDACC__
#include <cstring>
#define __align__(n) __attribute__((aligned(n)))
#endif

// ---- the PTX pieces, and their host emulation ----

#ifdef __CUDACC__

__device__ __forceinline__ u32 smem_addr(const void *p) { return (u32)__cvta_generic_to_shared(p); }

// cp16 copies 16 bytes from global src to shared dst, or writes 16 zero bytes
// when !valid (src is then not read).
__device__ __forceinline__ void cp16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(valid ? 16 : 0)
                 : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_wait_all() { asm volatile("cp.async.wait_all;\n" ::: "memory"); }

// st128 stores four 32-bit words at the 16-byte-aligned shared address p.
__device__ __forceinline__ void st128(void *p, u32 a, u32 b, u32 c, u32 d) {
    asm volatile("st.shared.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"r"(smem_addr(p)), "r"(a), "r"(b), "r"(c), "r"(d)
                 : "memory");
}

// ldsm4: ldmatrix .x4: lanes 8q..8q+7 give the row addresses of 8x8 matrix q;
// lane l receives row l/4, halves 2(l%4) and 2(l%4)+1, of matrix q in r[q].
__device__ __forceinline__ void ldsm4(u32 r[4], const void *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(p))
                 : "memory");
}

__device__ __forceinline__ void mma(float c[4], const u32 a[4], const u32 b[2], const __half *) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
__device__ __forceinline__ void mma(float c[4], const u32 a[4], const u32 b[2], const __nv_bfloat16 *) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// pack2 rounds (lo, hi) to the half type: lo in the low 16 bits.
__device__ __forceinline__ u32 pack2(float lo, float hi, const __half *) {
    __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<u32 *>(&h);
}
__device__ __forceinline__ u32 pack2(float lo, float hi, const __nv_bfloat16 *) {
    __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<u32 *>(&h);
}

#else // host emulation (testdata/emu/emu.h): one std::thread per CUDA thread

static void cp16(void *dst, const void *src, bool valid) {
    if (valid)
        memcpy(dst, src, 16);
    else
        memset(dst, 0, 16);
}
static void cp_commit() {}
static void cp_wait_all() {}
static void st128(void *p, u32 a, u32 b, u32 c, u32 d) {
    u32 v[4] = {a, b, c, d};
    memcpy(p, v, 16);
}

// Per-warp exchange slots, between two warp barriers (as emu.h's shuffles).
struct EmuLanes {
    const void *addr[32];
    u32 a[32][4], b[32][2];
};
static EmuLanes emu_lanes[TC_THREADS / 32];

static void ldsm4(u32 r[4], const void *p) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    EmuLanes &s = emu_lanes[w];
    s.addr[l] = p;
    g_warps[w].bar->arrive_and_wait();
    for (int q = 0; q < 4; q++) memcpy(&r[q], (const char *)s.addr[8 * q + l / 4] + 4 * (l % 4), 4);
    g_warps[w].bar->arrive_and_wait();
}

static float emu_half(u32 bits, const __half *) {
    __half_raw r;
    r.x = (unsigned short)bits;
    return __half2float(__half(r));
}
static float emu_half(u32 bits, const __nv_bfloat16 *) {
    __nv_bfloat16_raw r;
    r.x = (unsigned short)bits;
    return __bfloat162float(__nv_bfloat16(r));
}

// mma: the fragments of m16n8k16 (PTX ISA, "Matrix Fragments for mma.m16n8k16"):
// with g = lane/4, t = lane%4, A (row-major 16x16) a[0] = (g, 2t..2t+1),
// a[1] = (g+8, 2t..), a[2] = (g, 2t+8..), a[3] = (g+8, 2t+8..); B (16x8) b[0] =
// (k 2t..2t+1, n g), b[1] = (k 2t+8.., n g); C c[0..1] = (g, 2t..2t+1),
// c[2..3] = (g+8, 2t..).
template <typename T> static void mma(float c[4], const u32 a[4], const u32 b[2], const T *tag) {
    int w = threadIdx.x >> 5, l = threadIdx.x & 31;
    EmuLanes &s = emu_lanes[w];
    for (int i = 0; i < 4; i++) s.a[l][i] = a[i];
    s.b[l][0] = b[0];
    s.b[l][1] = b[1];
    g_warps[w].bar->arrive_and_wait();
    int g = l / 4, t = l % 4;
    for (int e = 0; e < 4; e++) {
        int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
        float sum = 0;
        for (int k = 0; k < 16; k++) {
            u32 av = s.a[(row % 8) * 4 + (k % 8) / 2][(row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)] >> (16 * (k % 2));
            u32 bv = s.b[col * 4 + (k % 8) / 2][k >= 8 ? 1 : 0] >> (16 * (k % 2));
            sum += emu_half(av & 0xffff, tag) * emu_half(bv & 0xffff, tag);
        }
        c[e] += sum;
    }
    g_warps[w].bar->arrive_and_wait();
}

static u32 pack2(float lo, float hi, const __half *) {
    __half_raw a = __float2half_rn(lo), b = __float2half_rn(hi);
    return (u32)a.x | (u32)b.x << 16;
}
static u32 pack2(float lo, float hi, const __nv_bfloat16 *) {
    __nv_bfloat16_raw a = __float2bfloat16_rn(lo), b = __float2bfloat16_rn(hi);
    return (u32)a.x | (u32)b.x << 16;
}

#endif

// ---- the kernel ----

struct __align__(8) TcEntry {
    int off, kyx;
};

// The k -> input table entry of a K slice: .off = c*H*W + ky*W + kx (the offset
// from a pixel's top-left input corner), .kyx = ky << 16 | kx; k >= K gets
// ky = -32768, which no pixel reads (H < 16384, checked by the caller).
// conv_tc_table writes entry i (k = k0 + i) of a slice's table tb.
__device__ __forceinline__ void conv_tc_table(TcEntry *tb, int i, int k0, int K, int khw, int KW, int HW, int W) {
    int k = k0 + i;
    TcEntry e = {0, (int)0x80000000};
    if (k < K) {
        int c = k / khw, r = k - c * khw;
        int ky = r / KW, kx = r - ky * KW;
        e.off = c * HW + ky * W + kx;
        e.kyx = ky << 16 | kx;
    }
    tb[i] = e;
}

template <typename T>
__device__ void conv_tc(float *__restrict__ y, const float *__restrict__ x, const T *__restrict__ w,
                        const float *__restrict__ bias, int C, int H, int W, int O, int KH, int KW, int Ho, int Wo,
                        int stride, int pad, int ncols, int vec) {
    __shared__ __align__(16) u16 As[2][TC_BM * TC_PITCH];
    __shared__ __align__(16) u16 Bs[2][TC_BN * TC_PITCH];
    __shared__ TcEntry tbl[2][TC_BK];

    const T *tag = nullptr;
    const u16 *wb = reinterpret_cast<const u16 *>(w);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int m0 = blockIdx.y * TC_BM, n0 = blockIdx.x * TC_BN;
    const int khw = KH * KW, K = C * khw, HW = H * W, HoWo = Ho * Wo;
    const int nk = (K + TC_BK - 1) / TC_BK;

    // The gather: this thread's pixel (column bn of the tile) and k range
    // [kg*16, kg*16+16) of each slice.
    const int bn = tid & (TC_BN - 1), kg = tid >> 7;
    long long cbase = 0; // x offset of the pixel's top-left input corner
    int ih0 = -(1 << 20), iw0 = 0;
    {
        int col = n0 + bn;
        if (col < ncols) {
            int img = col / HoWo, pix = col - img * HoWo;
            int oh = pix / Wo, ow = pix - oh * Wo;
            ih0 = oh * stride - pad;
            iw0 = ow * stride - pad;
            cbase = (long long)img * C * HW + (long long)ih0 * W + iw0;
        }
    }
    // The weight: rows ar and ar+64 of the tile, halves [ac, ac+8) of each slice.
    const int ar = tid >> 2, ac = (tid & 3) * 8;

    auto loadA = [&](int s, int k0) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            int row = m0 + ar + 64 * j, gk = k0 + ac;
            u16 *dst = &As[s][(ar + 64 * j) * TC_PITCH + ac];
            if (vec) {
                bool ok = row < O && gk < K; // K % 8 == 0: all 8 or none
                cp16(dst, ok ? (const void *)(wb + (long long)row * K + gk) : (const void *)wb, ok);
            } else {
                u32 v[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    u32 lo = 0, hi = 0;
                    if (row < O && gk + 2 * i < K) lo = wb[(long long)row * K + gk + 2 * i];
                    if (row < O && gk + 2 * i + 1 < K) hi = wb[(long long)row * K + gk + 2 * i + 1];
                    v[i] = lo | hi << 16;
                }
                st128(dst, v[0], v[1], v[2], v[3]);
            }
        }
    };
    auto gather = [&](float v[16], const TcEntry *tb) {
#pragma unroll
        for (int i = 0; i < 16; i++) {
            TcEntry e = tb[kg * 16 + i];
            int ih = ih0 + (e.kyx >> 16), iw = iw0 + (e.kyx & 0xffff);
            v[i] = ((unsigned)ih < (unsigned)H && (unsigned)iw < (unsigned)W) ? x[cbase + e.off] : 0.0f;
        }
    };
    auto storeB = [&](int s, const float v[16]) {
        u16 *dst = &Bs[s][bn * TC_PITCH + kg * 16];
        st128(dst, pack2(v[0], v[1], tag), pack2(v[2], v[3], tag), pack2(v[4], v[5], tag), pack2(v[6], v[7], tag));
        st128(dst + 8, pack2(v[8], v[9], tag), pack2(v[10], v[11], tag), pack2(v[12], v[13], tag),
              pack2(v[14], v[15], tag));
    };

    // The warp's 64x32 part of the tile: 4x4 mma tiles of 16x8.
    const int wm = warp & 1, wn = warp >> 1;
    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    // Prologue: the tables of slices 0 and 1, stage 0.
    if (tid < 2 * TC_BK) conv_tc_table(tbl[tid / TC_BK], tid % TC_BK, tid / TC_BK * TC_BK, K, khw, KW, HW, W);
    __syncthreads();
    {
        float v[16];
        loadA(0, 0);
        cp_commit();
        gather(v, tbl[0]);
        storeB(0, v);
        cp_wait_all();
        __syncthreads();
    }

    for (int kt = 0; kt < nk; kt++) {
        const int s = kt & 1;
        const bool more = kt + 1 < nk;
        float v[16];
        if (more) {
            loadA(s ^ 1, (kt + 1) * TC_BK);
            cp_commit();
            gather(v, tbl[s ^ 1]);
        }
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            u32 af[4][4], bf[4][2];
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
                ldsm4(af[mi], &As[s][(wm * 64 + mi * 16 + (lane & 15)) * TC_PITCH + kk + (lane >> 4) * 8]);
#pragma unroll
            for (int nj = 0; nj < 2; nj++) {
                u32 t[4];
                ldsm4(t, &Bs[s][(wn * 32 + nj * 16 + (lane & 7) + ((lane >> 4) << 3)) * TC_PITCH + kk +
                                ((lane >> 3) & 1) * 8]);
                bf[2 * nj][0] = t[0];
                bf[2 * nj][1] = t[1];
                bf[2 * nj + 1][0] = t[2];
                bf[2 * nj + 1][1] = t[3];
            }
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int ni = 0; ni < 4; ni++) mma(acc[mi][ni], af[mi], bf[ni], tag);
        }
        if (more) storeB(s ^ 1, v);
        // tbl[s] (slice kt's, read before the last barrier) takes slice kt+2's.
        if (tid < TC_BK && kt + 2 < nk) conv_tc_table(tbl[s], tid, (kt + 2) * TC_BK, K, khw, KW, HW, W);
        cp_wait_all();
        __syncthreads();
    }

    // Epilogue: y[img][o][pix] = acc + bias[o], F32.
    const int g = lane >> 2, t4 = lane & 3;
    long long ob[4][2]; // output offset of each of this lane's columns, -1 past the end
#pragma unroll
    for (int ni = 0; ni < 4; ni++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            int col = n0 + wn * 32 + ni * 8 + 2 * t4 + e;
            ob[ni][e] = -1;
            if (col < ncols) {
                int img = col / HoWo;
                ob[ni][e] = (long long)img * O * HoWo + (col - img * HoWo);
            }
        }
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int row = m0 + wm * 64 + mi * 16 + g + 8 * h;
            if (row >= O) continue;
            float b = bias ? bias[row] : 0.0f;
            long long ro = (long long)row * HoWo;
#pragma unroll
            for (int ni = 0; ni < 4; ni++)
#pragma unroll
                for (int e = 0; e < 2; e++)
                    if (ob[ni][e] >= 0) y[ob[ni][e] + ro] = acc[mi][ni][2 * h + e] + b;
        }
}

// conv2d_tc_<dtype>: y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C, KH, KW]) +
// bias [O] (F32, or null); x and y F32 and contiguous, w F16/BF16 and
// contiguous; vec != 0 when K % 8 == 0 and w is 16-byte aligned (cp.async).
// Grid (ceil(ncols/128), ceil(O/128)), ncols = N*Ho*Wo; 256 threads.
#ifdef __CUDACC__
extern "C" __global__ __launch_bounds__(TC_THREADS, 2) void conv2d_tc_f16(
    float *y, const float *x, const __half *w, const float *bias, int C, int H, int W, int O, int KH, int KW, int Ho,
    int Wo, int stride, int pad, int ncols, int vec);
extern "C" __global__ __launch_bounds__(TC_THREADS, 2) void conv2d_tc_bf16(
    float *y, const float *x, const __nv_bfloat16 *w, const float *bias, int C, int H, int W, int O, int KH, int KW,
    int Ho, int Wo, int stride, int pad, int ncols, int vec);
#endif
extern "C" __global__ void conv2d_tc_f16(float *y, const float *x, const __half *w, const float *bias, int C, int H, int W, int O, int KH, int KW, int Ho, int Wo, int stride, int pad, int ncols, int vec) {
    conv_tc(y, x, w, bias, C, H, W, O, KH, KW, Ho, Wo, stride, pad, ncols, vec);
}
extern "C" __global__ void conv2d_tc_bf16(float *y, const float *x, const __nv_bfloat16 *w, const float *bias, int C, int H, int W, int O, int KH, int KW, int Ho, int Wo, int stride, int pad, int ncols, int vec) {
    conv_tc(y, x, w, bias, C, H, W, O, KH, KW, Ho, Wo, stride, pad, ncols, vec);
}
