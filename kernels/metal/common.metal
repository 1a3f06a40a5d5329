// common.metal: helpers every kernel source uses. The Go side compiles the
// .metal files of this package as one library, this file first (see msl.go).
//
// Element types are tensor.DType's values: 1 F32, 2 F16 (IEEE half), 3 BF16.
// Buffers are bound at offset 0 and every kernel takes element offsets and
// strides (32-bit, checked on the Go side) in its constant parameter struct.

#include <metal_stdlib>
using namespace metal;

#define DT_F32 1
#define DT_F16 2
#define DT_BF16 3

// ld reads element i of a buffer of dtype dt, widened to float.
inline float ld(device const char* p, int dt, long i) {
    if (dt == DT_F32) {
        return ((device const float*)p)[i];
    }
    ushort h = ((device const ushort*)p)[i];
    if (dt == DT_F16) {
        return float(as_type<half>(h));
    }
    return as_type<float>(uint(h) << 16);
}

// The conversions work on bit patterns, so that no float operation (which a
// GPU may run with subnormals flushed to zero) touches the values a copy moves.

// f32_to_f16 rounds the float with bits x to the nearest half, ties to even
// (overflow gives an infinity, NaN stays NaN), as the CPU backend does.
inline ushort f32_to_f16(uint x) {
    uint sign = (x >> 16) & 0x8000u;
    uint ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) {
        return ushort(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
    }
    if (ax >= 0x477ff000u) {
        return ushort(sign | 0x7c00u);
    }
    if (ax < 0x38800000u) {
        if (ax < 0x33000000u) {
            return ushort(sign);
        }
        uint e = ax >> 23;
        uint m = (ax & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e;
        uint r = m >> shift;
        uint rem = m & ((1u << shift) - 1u);
        uint halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u) != 0u)) {
            r++;
        }
        return ushort(sign | r);
    }
    uint b = ax - 0x38000000u;
    uint r = b >> 13;
    uint rem = b & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u) != 0u)) {
        r++;
    }
    return ushort(sign | r);
}

// f32_to_bf16 rounds the float with bits u to the nearest bfloat16, ties to
// even; NaN stays NaN.
inline ushort f32_to_bf16(uint u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return ushort((u >> 16) | 0x40u);
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    return ushort(u >> 16);
}

// ld_bits reads element i of a buffer of dtype dt as the bits of a float
// (widening F16 and BF16 exactly).
inline uint ld_bits(device const char* p, int dt, long i) {
    if (dt == DT_F32) {
        return ((device const uint*)p)[i];
    }
    ushort h = ((device const ushort*)p)[i];
    if (dt == DT_F16) {
        return as_type<uint>(float(as_type<half>(h)));
    }
    return uint(h) << 16;
}

// st_bits stores the float with bits x as element i of a buffer of dtype dt,
// rounding to nearest even.
inline void st_bits(device char* p, int dt, long i, uint x) {
    if (dt == DT_F32) {
        ((device uint*)p)[i] = x;
    } else if (dt == DT_F16) {
        ((device ushort*)p)[i] = f32_to_f16(x);
    } else {
        ((device ushort*)p)[i] = f32_to_bf16(x);
    }
}

// erf_f is erf to about 1.2e-7 relative error (Numerical Recipes' erfc
// Chebyshev fit): the Metal standard library has no erf.
inline float erf_f(float x) {
    float z = fabs(x);
    float t = 1.0f / (1.0f + 0.5f * z);
    float r = t * exp(-z * z - 1.26551223f +
        t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
        t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f +
        t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f)))))))));
    float e = 1.0f - r;
    return x >= 0.0f ? e : -e;
}

inline float gelu_f(float x) {
    return 0.5f * x * (1.0f + erf_f(x * 0.70710678118654752f));
}

inline float sigmoid_f(float x) {
    return 1.0f / (1.0f + exp(-x));
}

// tg_sum returns the sum of v over the threadgroup (every thread gets it);
// buf holds one float per simdgroup. Every thread of the threadgroup must call it.
inline float tg_sum(float v, threadgroup float* buf, uint lane, uint sg, uint nsg) {
    v = simd_sum(v);
    if (lane == 0) {
        buf[sg] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float r = 0.0f;
    for (uint i = 0; i < nsg; i++) {
        r += buf[i];
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return r;
}

// tg_max returns the maximum of v over the threadgroup, as tg_sum.
inline float tg_max(float v, threadgroup float* buf, uint lane, uint sg, uint nsg) {
    v = simd_max(v);
    if (lane == 0) {
        buf[sg] = v;
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    float r = -INFINITY;
    for (uint i = 0; i < nsg; i++) {
        r = max(r, buf[i]);
    }
    threadgroup_barrier(mem_flags::mem_threadgroup);
    return r;
}
