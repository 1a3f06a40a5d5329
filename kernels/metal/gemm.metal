// gemm.metal: the matrix products — a batched, strided GEMM and the implicit-GEMM
// 2-D convolution. A threadgroup of 128 threads (4 simdgroups as 2×2) computes a
// 32×32 tile of the result with simdgroup_float8x8 multiply-accumulates (each
// simdgroup a 16×16 quarter, 2×2 matrices of 8×8): the tiles of both operands
// are staged through threadgroup memory 16 deep in k, widened to float from
// whatever dtype they are stored in (F16 and BF16 weights are never copied
// whole), with zeros outside the matrices, so any size and any stride works.
//
// Each kernel comes in two precisions: gemm and conv2d stage the tiles in float
// (FP32 products), gemm_f16 and conv2d_f16 in half (F16 products on
// simdgroup_half8x8 matrices, twice the rate and half the threadgroup memory)
// with the same FP32 accumulators; the Go side picks one (Backend.SetPrecision).

#include <metal_stdlib>
using namespace metal;

#define TILE_M 32
#define TILE_N 32
#define TILE_K 16
#define GEMM_THREADS 128

// GemmParams: dst[z] = alpha * a[z] * b[z] + bias for z < batch. Element (i, j)
// of operand x in batch z is at xoff + z*xbs + i*xrs + j*xcs (a batch stride of
// 0 shares one matrix); bias (dtype biasdt, 0 when absent) is a vector of n.
struct GemmParams {
    int m;
    int n;
    int k;
    int batch;
    float alpha;
    int adt;
    int aoff;
    int abat;
    int ars;
    int acs;
    int bdt;
    int boff;
    int bbat;
    int brs;
    int bcs;
    int biasdt;
    int biasoff;
    int biasst;
    int doff;
    int dbat;
    int drs;
};

// gemm_tiles is the body of gemm and gemm_f16, with tiles of T.
template <typename T>
inline void gemm_tiles(device float* dst, device const char* a, device const char* b, device const char* bias,
                       constant GemmParams& p, uint3 tg, uint tid, uint sg,
                       threadgroup T* tile_a, threadgroup T* tile_b, threadgroup float* tile_c) {
    int row0 = int(tg.y) * TILE_M;
    int col0 = int(tg.x) * TILE_N;
    long z = long(tg.z);
    long abase = long(p.aoff) + z * long(p.abat);
    long bbase = long(p.boff) + z * long(p.bbat);
    int sr = int(sg / 2) * 16;
    int sc = int(sg % 2) * 16;

    simdgroup_float8x8 acc[2][2];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
        }
    }
    for (int k0 = 0; k0 < p.k; k0 += TILE_K) {
        for (int i = int(tid); i < TILE_M * TILE_K; i += GEMM_THREADS) {
            int r = i / TILE_K;
            int kk = i % TILE_K;
            int gr = row0 + r;
            int gk = k0 + kk;
            tile_a[i] = T((gr < p.m && gk < p.k) ? ld(a, p.adt, abase + long(gr) * p.ars + long(gk) * p.acs) : 0.0f);
        }
        for (int i = int(tid); i < TILE_K * TILE_N; i += GEMM_THREADS) {
            int kk = i / TILE_N;
            int c = i % TILE_N;
            int gk = k0 + kk;
            int gc = col0 + c;
            tile_b[i] = T((gk < p.k && gc < p.n) ? ld(b, p.bdt, bbase + long(gk) * p.brs + long(gc) * p.bcs) : 0.0f);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int kk = 0; kk < TILE_K; kk += 8) {
            simdgroup_matrix<T, 8, 8> ma[2];
            simdgroup_matrix<T, 8, 8> mb[2];
            for (int i = 0; i < 2; i++) {
                simdgroup_load(ma[i], tile_a + (sr + 8 * i) * TILE_K + kk, TILE_K);
            }
            for (int j = 0; j < 2; j++) {
                simdgroup_load(mb[j], tile_b + kk * TILE_N + sc + 8 * j, TILE_N);
            }
            for (int i = 0; i < 2; i++) {
                for (int j = 0; j < 2; j++) {
                    simdgroup_multiply_accumulate(acc[i][j], ma[i], mb[j], acc[i][j]);
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            simdgroup_store(acc[i][j], tile_c + (sr + 8 * i) * TILE_N + sc + 8 * j, TILE_N);
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    long dbase = long(p.doff) + z * long(p.dbat);
    for (int i = int(tid); i < TILE_M * TILE_N; i += GEMM_THREADS) {
        int r = i / TILE_N;
        int c = i % TILE_N;
        int gr = row0 + r;
        int gc = col0 + c;
        if (gr < p.m && gc < p.n) {
            float v = p.alpha * tile_c[i];
            if (p.biasdt != 0) {
                v += ld(bias, p.biasdt, long(p.biasoff) + long(gc) * p.biasst);
            }
            dst[dbase + long(gr) * p.drs + gc] = v;
        }
    }
}


kernel void gemm(device float* dst [[buffer(0)]],
                 device const char* a [[buffer(1)]],
                 device const char* b [[buffer(2)]],
                 device const char* bias [[buffer(3)]],
                 constant GemmParams& p [[buffer(4)]],
                 uint3 tg [[threadgroup_position_in_grid]],
                 uint tid [[thread_index_in_threadgroup]],
                 uint sg [[simdgroup_index_in_threadgroup]]) {
    threadgroup float tile_a[TILE_M * TILE_K];
    threadgroup float tile_b[TILE_K * TILE_N];
    threadgroup float tile_c[TILE_M * TILE_N];
    gemm_tiles<float>(dst, a, b, bias, p, tg, tid, sg, tile_a, tile_b, tile_c);
}

kernel void gemm_f16(device float* dst [[buffer(0)]],
                     device const char* a [[buffer(1)]],
                     device const char* b [[buffer(2)]],
                     device const char* bias [[buffer(3)]],
                     constant GemmParams& p [[buffer(4)]],
                     uint3 tg [[threadgroup_position_in_grid]],
                     uint tid [[thread_index_in_threadgroup]],
                     uint sg [[simdgroup_index_in_threadgroup]]) {
    threadgroup half tile_a[TILE_M * TILE_K];
    threadgroup half tile_b[TILE_K * TILE_N];
    threadgroup float tile_c[TILE_M * TILE_N];
    gemm_tiles<half>(dst, a, b, bias, p, tg, tid, sg, tile_a, tile_b, tile_c);
}

// ConvParams: x [n, c, h, w] F32 contiguous from xoff; w [o, c, kh, kw]
// contiguous (dtype wdt) from woff; dst [n, o, ho, wo] from doff. Padding pad on
// the top and left (the bottom and right padding is implied by ho and wo). One
// sample per grid z; the GEMM is w [o, c·kh·kw] times the implicit im2col
// matrix [c·kh·kw, ho·wo].
struct ConvParams {
    int c;
    int h;
    int w;
    int o;
    int kh;
    int kw;
    int ho;
    int wo;
    int stride;
    int pad;
    int xoff;
    int wdt;
    int woff;
    int biasdt;
    int biasoff;
    int biasst;
    int doff;
};

// conv2d_tiles is the body of conv2d and conv2d_f16, with tiles of T.
template <typename T>
inline void conv2d_tiles(device float* dst, device const float* x, device const char* w, device const char* bias,
                         constant ConvParams& p, uint3 tg, uint tid, uint sg,
                         threadgroup T* tile_a, threadgroup T* tile_b, threadgroup float* tile_c) {
    int m = p.o;
    int n = p.ho * p.wo;
    int ksz = p.kh * p.kw;
    int k = p.c * ksz;
    int row0 = int(tg.y) * TILE_M;
    int col0 = int(tg.x) * TILE_N;
    long img = long(tg.z);
    long xbase = long(p.xoff) + img * long(p.c) * long(p.h) * long(p.w);
    int sr = int(sg / 2) * 16;
    int sc = int(sg % 2) * 16;

    simdgroup_float8x8 acc[2][2];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            acc[i][j] = make_filled_simdgroup_matrix<float, 8, 8>(0.0f);
        }
    }
    for (int k0 = 0; k0 < k; k0 += TILE_K) {
        for (int i = int(tid); i < TILE_M * TILE_K; i += GEMM_THREADS) {
            int r = i / TILE_K;
            int kk = i % TILE_K;
            int gr = row0 + r;
            int gk = k0 + kk;
            tile_a[i] = T((gr < m && gk < k) ? ld(w, p.wdt, long(p.woff) + long(gr) * k + gk) : 0.0f);
        }
        for (int i = int(tid); i < TILE_K * TILE_N; i += GEMM_THREADS) {
            int kk = i / TILE_N;
            int c = i % TILE_N;
            int gk = k0 + kk;
            int gc = col0 + c;
            float v = 0.0f;
            if (gk < k && gc < n) {
                int ch = gk / ksz;
                int rem = gk - ch * ksz;
                int ky = rem / p.kw;
                int kx = rem - ky * p.kw;
                int oy = gc / p.wo;
                int ox = gc - oy * p.wo;
                int iy = oy * p.stride - p.pad + ky;
                int ix = ox * p.stride - p.pad + kx;
                if (iy >= 0 && iy < p.h && ix >= 0 && ix < p.w) {
                    v = x[xbase + (long(ch) * p.h + iy) * p.w + ix];
                }
            }
            tile_b[i] = T(v);
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
        for (int kk = 0; kk < TILE_K; kk += 8) {
            simdgroup_matrix<T, 8, 8> ma[2];
            simdgroup_matrix<T, 8, 8> mb[2];
            for (int i = 0; i < 2; i++) {
                simdgroup_load(ma[i], tile_a + (sr + 8 * i) * TILE_K + kk, TILE_K);
            }
            for (int j = 0; j < 2; j++) {
                simdgroup_load(mb[j], tile_b + kk * TILE_N + sc + 8 * j, TILE_N);
            }
            for (int i = 0; i < 2; i++) {
                for (int j = 0; j < 2; j++) {
                    simdgroup_multiply_accumulate(acc[i][j], ma[i], mb[j], acc[i][j]);
                }
            }
        }
        threadgroup_barrier(mem_flags::mem_threadgroup);
    }
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            simdgroup_store(acc[i][j], tile_c + (sr + 8 * i) * TILE_N + sc + 8 * j, TILE_N);
        }
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    long dbase = long(p.doff) + img * long(m) * long(n);
    for (int i = int(tid); i < TILE_M * TILE_N; i += GEMM_THREADS) {
        int r = i / TILE_N;
        int c = i % TILE_N;
        int gr = row0 + r;
        int gc = col0 + c;
        if (gr < m && gc < n) {
            float v = tile_c[i];
            if (p.biasdt != 0) {
                v += ld(bias, p.biasdt, long(p.biasoff) + long(gr) * p.biasst);
            }
            dst[dbase + long(gr) * n + gc] = v;
        }
    }
}

kernel void conv2d(device float* dst [[buffer(0)]],
                   device const float* x [[buffer(1)]],
                   device const char* w [[buffer(2)]],
                   device const char* bias [[buffer(3)]],
                   constant ConvParams& p [[buffer(4)]],
                   uint3 tg [[threadgroup_position_in_grid]],
                   uint tid [[thread_index_in_threadgroup]],
                   uint sg [[simdgroup_index_in_threadgroup]]) {
    threadgroup float tile_a[TILE_M * TILE_K];
    threadgroup float tile_b[TILE_K * TILE_N];
    threadgroup float tile_c[TILE_M * TILE_N];
    conv2d_tiles<float>(dst, x, w, bias, p, tg, tid, sg, tile_a, tile_b, tile_c);
}

kernel void conv2d_f16(device float* dst [[buffer(0)]],
                       device const float* x [[buffer(1)]],
                       device const char* w [[buffer(2)]],
                       device const char* bias [[buffer(3)]],
                       constant ConvParams& p [[buffer(4)]],
                       uint3 tg [[threadgroup_position_in_grid]],
                       uint tid [[thread_index_in_threadgroup]],
                       uint sg [[simdgroup_index_in_threadgroup]]) {
    threadgroup half tile_a[TILE_M * TILE_K];
    threadgroup half tile_b[TILE_K * TILE_N];
    threadgroup float tile_c[TILE_M * TILE_N];
    conv2d_tiles<half>(dst, x, w, bias, p, tg, tid, sg, tile_a, tile_b, tile_c);
}
