// Package tensortest holds plain reference implementations of the tensor
// operations and helpers for testing backends against them, as net/http/httptest
// does for handlers.
//
// The references work on []float32 values in row-major order with a shape, compute
// in float64 with the textbook formula and round once to float32 at the end. They
// are written to be obviously correct, not fast: a test of any backend (CPU, CUDA,
// Metal) runs its operation on random data, reads the result back with
// Tensor.Float32s and compares it with the reference through RequireClose.
//
// The package does not import package tensor, so tensor's own tests may use it.
package tensortest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Numel returns the number of elements of shape.
func Numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Strides returns the row-major strides of shape, in elements.
func Strides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// Rand returns n values drawn from the standard normal distribution.
func Rand(rng *rand.Rand, n int) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(rng.NormFloat64())
	}
	return out
}

// RandUniform returns n values drawn uniformly from [lo, hi).
func RandUniform(rng *rand.Rand, n int, lo, hi float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(lo + (hi-lo)*rng.Float64())
	}
	return out
}

// RequireClose fails the test unless got and want have the same length and every
// |got[i]−want[i]| ≤ atol + rtol·|want[i]| (NaN matches NaN, an infinity matches
// the same infinity). The message names the worst element and counts the others.
// With rtol and atol 0 it checks exact equality.
func RequireClose(t testing.TB, want, got []float32, rtol, atol float64) {
	t.Helper()
	if err := Close(want, got, rtol, atol); err != nil {
		t.Fatal(err)
	}
}

// Close is RequireClose's check, returning an error instead of failing a test.
func Close(want, got []float32, rtol, atol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d values, want %d", len(got), len(want))
	}
	worst, worstExcess, bad := -1, 0.0, 0
	for i := range want {
		w, g := float64(want[i]), float64(got[i])
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				bad++
				if worst < 0 || !math.IsInf(worstExcess, 1) {
					worst, worstExcess = i, math.Inf(1)
				}
			}
			continue
		}
		if w == g {
			continue
		}
		diff := math.Abs(g - w)
		if math.IsInf(w, 0) || math.IsInf(g, 0) {
			diff = math.Inf(1)
		}
		tol := atol + rtol*math.Abs(w)
		if diff > tol {
			bad++
			if excess := diff - tol; worst < 0 || excess > worstExcess {
				worst, worstExcess = i, excess
			}
		}
	}
	if bad == 0 {
		return nil
	}
	d := math.Abs(float64(got[worst]) - float64(want[worst]))
	return fmt.Errorf("%d of %d values differ (rtol %g, atol %g); worst at index %d: got %g, want %g (diff %g, rel %g)",
		bad, len(want), rtol, atol, worst, got[worst], want[worst], d, d/math.Abs(float64(want[worst])))
}

// MaxAbs returns the largest |x[i]|.
func MaxAbs(x []float32) float64 {
	m := 0.0
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

// round converts a float64 result to float32.
func round(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// Index returns the flat row-major index of the multi-index idx in shape.
func Index(shape, idx []int) int {
	o := 0
	for i, d := range shape {
		o = o*d + idx[i]
	}
	return o
}

// unravel sets idx to the multi-index of the flat index i in shape.
func unravel(shape []int, i int, idx []int) {
	for d := len(shape) - 1; d >= 0; d-- {
		idx[d] = i % shape[d]
		i /= shape[d]
	}
}
