package rng

import (
	"math"

	"github.com/x448/float16"
)

// CPU reproduces torch.Generator("cpu"): an MT19937 engine and the
// normal-distribution kernels of ATen's CPU backend (x86-64 build). See the
// package documentation for the algorithms.
type CPU struct {
	seed uint64
	mt   mt19937
	// next is the second value of the last scalar Box-Muller pair, kept for
	// the next scalar draw as at::CPUGeneratorImpl keeps
	// next_double_normal_sample (the vectorised kernels neither use nor clear it).
	next    float64
	hasNext bool
}

// NewCPU returns torch.Generator("cpu").manual_seed(seed). Only the low 32
// bits of the seed reach the engine, as in PyTorch.
func NewCPU(seed uint64) *CPU {
	g := &CPU{seed: seed}
	g.mt.seed(seed)
	return g
}

// Seed returns the seed the generator was created with.
func (g *CPU) Seed() uint64 { return g.seed }

// Name returns NameCPU.
func (g *CPU) Name() string { return NameCPU }

// vectorMin is the smallest draw that torch's CPU kernel fills with the
// vectorised 16-wide Box-Muller (normal_fill) instead of the scalar one.
const vectorMin = 16

// Randn draws n float32 standard normals as torch.randn does on the CPU.
func (g *CPU) Randn(n int) []float32 {
	checkCount(n)
	out := make([]float32, n)
	if n < vectorMin {
		for i := range out {
			out[i] = float32(g.normal64())
		}
		return out
	}
	g.normalFill(out, g.uniform24, fill16F32)
	return out
}

// RandnF16 draws n float16 standard normals as torch.randn(...,
// dtype=torch.float16) does on the CPU, widened to float32.
func (g *CPU) RandnF16(n int) []float32 {
	checkCount(n)
	out := make([]float32, n)
	if n < vectorMin {
		for i := range out {
			// static_cast<Half>(double) goes through float: two roundings.
			out[i] = toHalf(float32(g.normal64()))
		}
		return out
	}
	g.normalFill(out, g.uniform11, fill16F16)
	return out
}

// uniform24 is uniform_real_distribution<float>(0, 1): the low 24 bits of
// one 32-bit draw.
func (g *CPU) uniform24() float32 {
	return float32(g.mt.uint32()&(1<<24-1)) * 0x1p-24
}

// uniform11 is uniform_real_distribution<Half>(0, 1): the low 11 bits (the
// half-precision significand) of one 32-bit draw.
func (g *CPU) uniform11() float32 {
	return float32(g.mt.uint32()&(1<<11-1)) * 0x1p-11
}

// normal64 is at::normal_distribution<double>(0, 1): Box-Muller on two
// 53-bit uniforms from 64-bit draws, returning r·cos θ and keeping r·sin θ
// for the next call.
func (g *CPU) normal64() float64 {
	if g.hasNext {
		g.hasNext = false
		return g.next
	}
	u1 := float64(g.mt.uint64()&(1<<53-1)) * 0x1p-53
	u2 := float64(g.mt.uint64()&(1<<53-1)) * 0x1p-53
	r := math.Sqrt(-2 * math.Log1p(-u2))
	theta := 2 * math.Pi * u1
	g.next, g.hasNext = r*math.Sin(theta), true
	return r * math.Cos(theta)
}

// normalFill is ATen's normal_fill: fill dst with uniforms, turn each block
// of 16 into normals, and if a tail remains, draw 16 fresh uniforms over the
// last 16 elements and transform those again (so the last 16 values replace
// whatever the block loop left there).
func (g *CPU) normalFill(dst []float32, uniform func() float32, fill16 func([]float32)) {
	n := len(dst)
	for i := range dst {
		dst[i] = uniform()
	}
	for i := 0; i+16 <= n; i += 16 {
		fill16(dst[i : i+16])
	}
	if n%16 != 0 {
		tail := dst[n-16:]
		for i := range tail {
			tail[i] = uniform()
		}
		fill16(tail)
	}
}

// twoPi32 is float(2π), the constant the AVX2 kernel multiplies by.
const twoPi32 = float32(2 * math.Pi)

// fill16F32 is normal_fill_16_AVX2: u1 = 1-d[j], u2 = d[j+8],
// d[j] = sqrt(-2 log u1)·cos(2π u2), d[j+8] = the same with sin, in float32
// with avx_mathfun's log and sincos.
func fill16F32(d []float32) {
	_ = d[15]
	for j := 0; j < 8; j++ {
		u1 := 1 - d[j]
		u2 := d[j+8]
		r := float32(math.Sqrt(float64(float32(-2 * avxLog(u1)))))
		s, c := avxSinCos(float32(twoPi32 * u2))
		// The kernel stores fmadd(n, std, mean) = n*1 + 0.
		d[j] = float32(r*c) + 0
		d[j+8] = float32(r*s) + 0
	}
}

// fill16F16 is normal_fill_16<c10::Half>: the same transform in half
// precision, where every operation on Half rounds its result to half
// (std::log, std::sqrt, std::cos and std::sin of a Half compute in float and
// return Half), and theta is computed in double and converted through float.
//
// The float log, sin and cos here come from Go's float64 functions rounded
// to float32 instead of from glibc; TestHalfMathMargins checks, for all 2048
// possible inputs, that any float32 result within glibc's error bound rounds
// to the same half.
func fill16F16(d []float32) {
	_ = d[15]
	for j := 0; j < 8; j++ {
		u1 := toHalf(1 - d[j])
		u2 := d[j+8]
		lg := toHalf(float32(math.Log(float64(u1))))
		r := toHalf(float32(math.Sqrt(float64(toHalf(-2 * lg)))))
		theta := toHalf(float32(2 * math.Pi * float64(u2)))
		c := toHalf(float32(math.Cos(float64(theta))))
		s := toHalf(float32(math.Sin(float64(theta))))
		d[j] = toHalf(r*c) + 0
		d[j+8] = toHalf(r*s) + 0
	}
}

// toHalf rounds x to the nearest float16 (ties to even) and widens it back.
func toHalf(x float32) float32 {
	return float16.Fromfloat32(x).Float32()
}
