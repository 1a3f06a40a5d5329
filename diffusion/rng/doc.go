// Package rng draws the random numbers PyTorch draws, bit for bit, so that a
// seed means the same image here as in diffusers: torch.Generator("cpu")
// (diffusers' default) and torch.Generator("cuda") (what A1111-style UIs
// use), selected by name with New. Both are plain CPU code and work whatever
// backend runs the model.
//
// A generator must be used as the Python code uses its torch.Generator: one
// Randn call per torch.randn call, with the same number of elements, in the
// same order, because the algorithms below depend on the size of each draw.
//
// # torch.Generator("cpu")
//
// The engine is MT19937 seeded from the low 32 bits of the 64-bit seed
// (at::mt19937 keeps the seed but initialises from seed & 0xffffffff).
// torch.randn then takes one of two paths:
//
//   - Fewer than 16 elements: at::normal_distribution<double>, a scalar
//     Box-Muller on two 53-bit uniforms (each from a 64-bit draw, high word
//     first): r = sqrt(-2 log1p(-u2)), θ = 2π u1; it returns r·cos θ and
//     caches r·sin θ in the generator for the next scalar call. The result is
//     rounded to float32 (for float16, to float32 and then to half). These
//     use Go's float64 log1p, sin and cos where PyTorch uses glibc's; both are
//     within an ulp of float64, which can change the float32 result only when
//     a value lies within about 2^-29 of a rounding boundary.
//   - 16 elements or more: normal_fill. Every element first gets a uniform
//     (24 random bits of a 32-bit draw for float32, 11 for float16); each
//     block of 16 then becomes 16 normals with u1 = 1-d[j], u2 = d[j+8],
//     d[j] = r·cos θ, d[j+8] = r·sin θ; if the count is not a multiple of 16,
//     16 fresh uniforms are drawn over the last 16 elements and transformed
//     again. float32 draws use the AVX2 kernel of x86-64 builds, whose
//     Cephes-style float32 log and sincos (avx_mathfun.h, with the multiply-add
//     pairs GCC fuses) are reproduced exactly; float16 draws use the generic
//     kernel, where every operation rounds to half.
//
// PyTorch on CPUs without that kernel (arm64 such as Apple silicon, x86-64
// without AVX2) computes float32 draws of 16 or more elements with libm's
// float functions instead, and its values differ from x86-64's (and this
// package's) in the last bits.
//
// # torch.Generator("cuda")
//
// torch.randn on a CUDA device runs curand's Philox4x32-10, keyed by the
// 64-bit seed, from ATen's distribution_nullary_kernel: a grid of threads, in
// blocks of 256, where thread idx starts curand at subsequence idx and the
// generator's offset, and every loop iteration turns one 128-bit Philox
// output into four normals with curand_normal4 (two Box-Muller pairs, sine
// first) for elements idx, idx+T, idx+2T and idx+3T of the current stride of
// 4T (T = the number of threads). Each draw advances the generator's offset
// by 4 per iteration. The Box-Muller arithmetic is the GPU's: fused
// multiply-adds for the uniforms, libdevice's logf, an IEEE square root, and
// __sincosf, which runs on the special function unit; all four are
// reproduced exactly (see mufu.go for how the special function unit's sine
// was modelled, from its output for every input it distinguishes).
//
// Caveat: the grid holds at most SMs × (threads per SM / 256) blocks of 256
// threads, and a draw larger than that (270336 elements on an H100 or H200,
// 221184 on an A100, 196608 on an RTX 4090) wraps around it, so where each
// value lands depends on the GPU. NewCUDA assumes an H100/H200 (132 SMs ×
// 2048 threads, where the reference fixtures were made); NewCUDAFor takes
// another GPU's numbers. Draws that fit in a GPU's grid, such as SDXL latents
// for a batch of up to 4 on a Hopper GPU, do not depend on its size. The
// special function unit's sine was measured on an H200 (the same chip as the
// H100); other GPU generations may compute it differently in the last bits,
// which testdata/gpu/mufu_table.cu can check.
package rng
