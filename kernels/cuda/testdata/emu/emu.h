// emu.h: a host emulation of the CUDA C features the kernels in kernels/cuda
// use, so that they can run, slowly, on a machine without a GPU (see run.sh).
// One std::thread per CUDA thread; the blocks of a grid run one after another,
// so __shared__ variables become statics; __syncthreads is a block barrier and
// warp shuffles exchange values through per-warp slots between two barriers.
// Only what the kernels use is here.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>
using std::max;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
inline std::barrier<> *g_bar;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { g_bar->arrive_and_wait(); }

struct Warp {
    std::barrier<> *bar;
    double d[32];
    float f[32];
};
inline std::vector<Warp> g_warps;

inline float __shfl_xor_sync(unsigned, float v, int off) {
    Warp &w = g_warps[threadIdx.x >> 5];
    int l = threadIdx.x & 31;
    w.f[l] = v;
    w.bar->arrive_and_wait();
    float r = w.f[l ^ off];
    w.bar->arrive_and_wait();
    return r;
}

inline double __shfl_xor_sync(unsigned, double v, int off) {
    Warp &w = g_warps[threadIdx.x >> 5];
    int l = threadIdx.x & 31;
    w.d[l] = v;
    w.bar->arrive_and_wait();
    double r = w.d[l ^ off];
    w.bar->arrive_and_wait();
    return r;
}

struct float4 {
    float x, y, z, w;
};
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

inline float __fmul_rn(float a, float b) {
    volatile float r = a * b;
    return r;
}

// g_dyn is the dynamic shared memory of the running block (run.sh rewrites
// `extern __shared__ T name[];` to point into it).
inline std::vector<char> g_dyn;

template <class F> void launch(dim3 grid, dim3 block, size_t smem, F kernel) {
    gridDim = grid;
    blockDim = block;
    unsigned nt = block.x * block.y * block.z;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                g_dyn.assign(smem + 16, 0);
                std::barrier<> bar(nt);
                g_bar = &bar;
                g_warps.assign((nt + 31) / 32, Warp{});
                for (auto &w : g_warps) w.bar = new std::barrier<>(32);
                std::vector<std::thread> ts;
                for (unsigned t = 0; t < nt; t++)
                    ts.emplace_back([&, t, x, y, z] {
                        threadIdx = {t, 0, 0};
                        blockIdx = {x, y, z};
                        kernel();
                    });
                for (auto &t : ts) t.join();
                for (auto &w : g_warps) delete w.bar;
            }
}
