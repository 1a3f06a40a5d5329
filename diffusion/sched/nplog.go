package sched

import "math"

// npLog32 is numpy's float32 log on x86-64 (the AVX2/AVX512F kernel every
// numpy wheel dispatches to, also for single elements): log(1+x) of the
// mantissa by a 5/5 rational minimax approximation evaluated with fused
// multiply-adds, plus exponent*ln2. It is not correctly rounded (up to 3.83
// ulp), and diffusers computes its log-sigma tables with it, so matching its
// bits matters where a timestep is interpolated from those tables.
func npLog32(v float32) float32 {
	switch {
	case v != v:
		return v
	case v < 0:
		return float32(math.NaN())
	case v == 0:
		return float32(math.Inf(-1))
	case math.IsInf(float64(v), 1):
		return v
	}
	const (
		p0      = float32(0.000000000000000000000e+00)
		p1      = float32(9.999999999999998702752e-01)
		p2      = float32(2.112677543073053063722e+00)
		p3      = float32(1.480000633576506585156e+00)
		p4      = float32(3.808837741388407920751e-01)
		p5      = float32(2.589979117907922693523e-02)
		q0      = float32(1.000000000000000000000e+00)
		q1      = float32(2.612677543073109236779e+00)
		q2      = float32(2.453006071784736363091e+00)
		q3      = float32(9.864942958519418960339e-01)
		q4      = float32(1.546476374983906719538e-01)
		q5      = float32(5.875095403124574342950e-03)
		ln2     = float32(0.693147180559945309417232121458176568)
		sqrt1_2 = float32(0.707106781186547524400844362104849039)
	)
	// Normalised mantissa in [0.5, 1) and exponent (frexp); exact for float32,
	// denormals included.
	m64, e := math.Frexp(float64(v))
	m, exp := float32(m64), float32(e)
	if m <= sqrt1_2 {
		m += m
		exp--
	}
	x := m - 1
	num := fma32(p5, x, p4)
	num = fma32(num, x, p3)
	num = fma32(num, x, p2)
	num = fma32(num, x, p1)
	num = fma32(num, x, p0)
	den := fma32(q5, x, q4)
	den = fma32(den, x, q3)
	den = fma32(den, x, q2)
	den = fma32(den, x, q1)
	den = fma32(den, x, q0)
	return fma32(exp, ln2, num/den)
}

// fma32 is a float32 fused multiply-add, a*b+c rounded once to float32.
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b) // exact: 24+24 bits
	s := p + float64(c)
	// Two-sum: s + e == p + c exactly.
	bv := s - p
	e := (p - (s - bv)) + (float64(c) - bv)
	r := float32(s)
	if e == 0 || float64(r) == s {
		return r
	}
	// s was rounded; only a tie between two float32s can then round wrongly.
	other := math.Nextafter32(r, float32(math.Copysign(math.Inf(1), s-float64(r))))
	if s != (float64(r)+float64(other))/2 {
		return r
	}
	if (e > 0) == (other > r) {
		return other
	}
	return r
}
