package rng

import "math"

// This file reproduces the float32 logarithm and sine/cosine of PyTorch's
// AVX2 normal kernel (normal_fill_16_AVX2, using log256_ps and sincos256_ps
// from aten/src/ATen/native/cpu/avx_mathfun.h, Cephes polynomials) bit for
// bit. The x86-64 wheels compile that file with -mavx2 -mfma and GCC's
// default -ffp-contract=fast, so GCC fuses a multiply into the add or
// subtract that consumes it; which pairs it fused decides the last bit, and
// the choices below (marked "fused") are the ones that reproduce torch's
// output exactly. Every other operation is a separately rounded float32
// operation; Go would fuse x*y+z on some platforms, so products that must
// stay rounded are wrapped in float32().

// fma32 returns a*b+c rounded once to float32. The float64 product of two
// float32 values is exact; the sum is rounded to odd in float64, which makes
// the final rounding to float32 correct.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	// TwoSum: e is the exact error of s.
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	if e != 0 && s != 0 && !math.IsInf(s, 0) {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			// s is even and inexact: step to the odd neighbour on the side
			// of the exact value.
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// Cephes constants, as float32 (the _ps256 constants of avx_mathfun.h).
const (
	cephesSqrtHalf = float32(0.707106781186547524)
	cephesLogP0    = float32(7.0376836292e-2)
	cephesLogP1    = float32(-1.1514610310e-1)
	cephesLogP2    = float32(1.1676998740e-1)
	cephesLogP3    = float32(-1.2420140846e-1)
	cephesLogP4    = float32(1.4249322787e-1)
	cephesLogP5    = float32(-1.6668057665e-1)
	cephesLogP6    = float32(2.0000714765e-1)
	cephesLogP7    = float32(-2.4999993993e-1)
	cephesLogP8    = float32(3.3333331174e-1)
	cephesLogQ1    = float32(-2.12194440e-4)
	cephesLogQ2    = float32(0.693359375)

	cephesFourOverPi = float32(1.27323954473516)
	cephesMinusDP1   = float32(-0.78515625)
	cephesMinusDP2   = float32(-2.4187564849853515625e-4)
	cephesMinusDP3   = float32(-3.77489497744594108e-8)
	cephesSinP0      = float32(-1.9515295891e-4)
	cephesSinP1      = float32(8.3321608736e-3)
	cephesSinP2      = float32(-1.6666654611e-1)
	cephesCosP0      = float32(2.443315711809948e-005)
	cephesCosP1      = float32(-1.388731625493765e-003)
	cephesCosP2      = float32(4.166664568298827e-002)

	minNormal32 = 0x1p-126
)

// avxLog is log256_ps for one lane, for x > 0 (the kernel only passes
// 1-u with u in [0, 1)).
func avxLog(x float32) float32 {
	if x < minNormal32 {
		x = minNormal32
	}
	b := math.Float32bits(x)
	e := float32(int32(b>>23)-0x7f) + 1
	x = math.Float32frombits(b&^0x7f800000 | math.Float32bits(0.5))
	if x < cephesSqrtHalf {
		e = e - 1
		x = (x - 1) + x
	} else {
		x = x - 1
	}
	z := float32(x * x)
	y := fma32(cephesLogP0, x, cephesLogP1) // fused
	y = fma32(y, x, cephesLogP2)            // fused
	y = fma32(y, x, cephesLogP3)            // fused
	y = fma32(y, x, cephesLogP4)            // fused
	y = fma32(y, x, cephesLogP5)            // fused
	y = fma32(y, x, cephesLogP6)            // fused
	y = fma32(y, x, cephesLogP7)            // fused
	y = fma32(y, x, cephesLogP8)            // fused
	y = float32(y * x)
	y = fma32(y, z, float32(e*cephesLogQ1)) // fused: y*z + (e*q1), the later product stays rounded
	y = y - float32(z*0.5)                  // z*0.5 is exact either way
	x = x + y
	return fma32(e, cephesLogQ2, x) // fused
}

// avxSinCos is sincos256_ps for one lane, for x >= 0 (the kernel passes
// 2π·u with u in [0, 1)).
func avxSinCos(x float32) (sin, cos float32) {
	signSin := math.Float32bits(x) & 0x80000000
	x = math.Float32frombits(math.Float32bits(x) &^ 0x80000000)
	j := int32(float32(x * cephesFourOverPi))
	j = (j + 1) &^ 1
	y := float32(j)
	signSin ^= uint32(j&4) << 29
	signCos := uint32(^(j-2)&4) << 29
	usePolySin := j&2 == 0

	// Extended-precision reduction x - y*π/4 in three parts.
	x = fma32(y, cephesMinusDP1, x) // fused
	x = fma32(y, cephesMinusDP2, x) // fused
	x = fma32(y, cephesMinusDP3, x) // fused

	z := float32(x * x)
	c := fma32(cephesCosP0, z, cephesCosP1) // fused
	c = fma32(c, z, cephesCosP2)            // fused
	c = float32(c * z)
	c = fma32(c, z, -float32(z*0.5)) // fused: c*z - (z*0.5)
	c = c + 1

	s := fma32(cephesSinP0, z, cephesSinP1) // fused
	s = fma32(s, z, cephesSinP2)            // fused
	s = float32(s * z)
	s = fma32(s, x, x) // fused

	if !usePolySin {
		s, c = c, s
	}
	sin = math.Float32frombits(math.Float32bits(s) ^ signSin)
	cos = math.Float32frombits(math.Float32bits(c) ^ signCos)
	return sin, cos
}
