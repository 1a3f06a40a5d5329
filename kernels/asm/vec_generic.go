package asm

import (
	"math"

	"github.com/x448/float16"
)

// The Go references of the vector routines. They are what non-amd64 targets and
// the noasm tag run, and what the assembly is tested against.

func f16ToF32Generic(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = float16.Frombits(h).Float32()
	}
}

func f32ToF16Generic(dst []uint16, src []float32) {
	for i, f := range src {
		dst[i] = float16.Fromfloat32(f).Bits()
	}
}

func bf16ToF32Generic(dst []float32, src []uint16) {
	for i, h := range src {
		dst[i] = math.Float32frombits(uint32(h) << 16)
	}
}

func f32ToBF16Generic(dst []uint16, src []float32) {
	for i, f := range src {
		b := math.Float32bits(f)
		if b&0x7fffffff > 0x7f800000 { // NaN: keep it quiet and a NaN
			dst[i] = uint16(b>>16) | 0x40
			continue
		}
		b += 0x7fff + (b>>16)&1
		dst[i] = uint16(b >> 16)
	}
}

func expGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = float32(math.Exp(float64(x)))
	}
}

func softmaxGeneric(x []float32) {
	m := maxGeneric(x)
	var s float64
	for i, v := range x {
		e := float32(math.Exp(float64(v - m)))
		x[i] = e
		s += float64(e)
	}
	inv := float32(1 / s)
	for i := range x {
		x[i] *= inv
	}
}

func sigmoid(x float32) float32 { return float32(1 / (1 + math.Exp(-float64(x)))) }

func siluGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = x * sigmoid(x)
	}
}

func geluGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = float32(0.5 * float64(x) * (1 + math.Erf(float64(x)/math.Sqrt2)))
	}
}

func geluTanhGeneric(dst, src []float32) {
	const c = 0.7978845608028654 // √(2/π)
	for i, x := range src {
		v := float64(x)
		dst[i] = float32(0.5 * v * (1 + math.Tanh(c*(v+0.044715*v*v*v))))
	}
}

func quickGELUGeneric(dst, src []float32) {
	for i, x := range src {
		dst[i] = x * sigmoid(1.702*x)
	}
}

func sumSqGeneric(x []float32) (sum, sumSq float32) {
	for _, v := range x {
		sum += v
		sumSq += v * v
	}
	return sum, sumSq
}

func scaleShiftGeneric(dst, src []float32, scale, shift float32) {
	for i, x := range src {
		dst[i] = x*scale + shift
	}
}

func scaleShiftSiLUGeneric(dst, src []float32, scale, shift float32) {
	for i, x := range src {
		v := x*scale + shift
		dst[i] = v * sigmoid(v)
	}
}

func normalizeGeneric(dst, src, gamma, beta []float32, mean, invStd float32) {
	for i, x := range src {
		dst[i] = (x-mean)*invStd*gamma[i] + beta[i]
	}
}

func axpyGeneric(alpha float32, x, y []float32) {
	for i, v := range x {
		y[i] += alpha * v
	}
}

func dotGeneric(x, y []float32) float32 {
	var s float32
	for i, v := range x {
		s += v * y[i]
	}
	return s
}

func addGeneric(dst, a, b []float32) {
	for i, v := range a {
		dst[i] = v + b[i]
	}
}

func mulGeneric(dst, a, b []float32) {
	for i, v := range a {
		dst[i] = v * b[i]
	}
}

func maxGeneric(x []float32) float32 {
	m := float32(math.Inf(-1))
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	return m
}
