//go:build arm64 && !noasm

package asm

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

// The NEON kernels called directly (not through the dispatch), against the same
// references, sizes (vecSizes: 0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 127, 129, ...)
// and bounds as vec_test.go. On an amd64 machine `make test-arm64` runs them under
// qemu-aarch64.

func skipNoNEON(t testing.TB) {
	if !useNEON {
		t.Skip("no ASIMD on this processor")
	}
}

func TestVecNEONUnaryKernels(t *testing.T) {
	skipNoNEON(t)
	kernels := map[string]func(dst, src []float32){
		"Exp": expNEON, "SiLU": siluNEON, "QuickGELU": quickGELUNEON, "GELU": geluNEON, "GELUTanh": geluTanhNEON,
	}
	for _, c := range vecUnaryCases() {
		t.Run(c.name, func(t *testing.T) {
			worst := checkUnary(t, c, kernels[c.name])
			t.Logf("%sNEON: largest error %d ulps", c.name, worst)
		})
	}
}

func TestVecNEONConversions(t *testing.T) {
	skipNoNEON(t)
	checkConversions(t, f16ToF32NEON, f32ToF16NEON, bf16ToF32NEON)
}

// Every half-precision pattern, through the 16-wide loop, the 4-wide loop and the
// one-element tail (the tail uses the scalar FCVT, the loops FCVTL/FCVTN).
func TestVecNEONHalfAllPatterns(t *testing.T) {
	skipNoNEON(t)
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	for _, off := range []int{0, 1, 2, 3, 5, 13} {
		s := src[off:]
		got, want := make([]float32, len(s)), make([]float32, len(s))
		f16ToF32NEON(got, s)
		f16ToF32Generic(want, s)
		for i := range s {
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "f16ToF32NEON(%#04x) offset %d", s[i], off)
		}
		back, wantBack := make([]uint16, len(s)), make([]uint16, len(s))
		f32ToF16NEON(back, got)
		f32ToF16Generic(wantBack, got)
		require.Equal(t, wantBack, back, "f32ToF16NEON offset %d", off)
		bf := make([]float32, len(s))
		bf16ToF32NEON(bf, s)
		for i, h := range s {
			require.Equal(t, uint32(h)<<16, math.Float32bits(bf[i]), "bf16ToF32NEON(%#04x) offset %d", h, off)
		}
	}
}

// Rounding of float32 to half on values that exercise ties, subnormals, overflow
// and NaN payloads, one element at a time (the scalar tail) and in vectors.
func TestVecNEONF32ToF16Rounding(t *testing.T) {
	skipNoNEON(t)
	var src []float32
	for h := uint16(0); h < 0x7c00; h += 7 {
		lo, hi := f16Scalar(h), f16Scalar(h+1)
		mid := float32((float64(lo) + float64(hi)) / 2)
		for _, v := range []float32{mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			src = append(src, v, -v)
		}
	}
	src = append(src, 65504, 65519.99, 65520, 65536, 1e10, float32(math.Inf(1)), float32(math.Inf(-1)),
		5.96e-8, 2.98e-8, 2.99e-8, 1e-40, float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffc12345))
	want := make([]uint16, len(src))
	f32ToF16Generic(want, src)
	got := make([]uint16, len(src))
	f32ToF16NEON(got, src)
	require.Equal(t, want, got, "vector")
	for i := range src {
		one := []uint16{0xbeef, 0xbeef}
		f32ToF16NEON(one[:1], src[i:i+1])
		require.Equal(t, want[i], one[0], "scalar F32ToF16(%g = %#08x)", src[i], math.Float32bits(src[i]))
		require.Equal(t, uint16(0xbeef), one[1], "wrote past the end")
	}
}

func TestVecNEONSoftmax(t *testing.T) {
	skipNoNEON(t)
	t.Logf("softmaxNEON: largest error %d ulps", checkSoftmax(t, softmaxNEON))
	softmaxNEON(nil)
}

func TestVecNEONReductions(t *testing.T) {
	skipNoNEON(t)
	checkSumSq(t, sumSqNEON)
	checkDot(t, dotNEON)
	checkMax(t, maxNEON)
	require.True(t, math.IsInf(float64(maxNEON(nil)), -1), "max of nothing")
	// the maximum in every position of every awkward size, negative data
	for _, n := range vecSizes[1:] {
		x := make([]float32, n)
		for i := range x {
			x[i] = -1000 - float32(i)
		}
		for i := range x {
			y := append([]float32(nil), x...)
			y[i] = -5
			require.Equal(t, float32(-5), maxNEON(y), "max n=%d at %d", n, i)
		}
	}
}

func TestVecNEONAffineAndBLAS1(t *testing.T) {
	skipNoNEON(t)
	checkAffine(t, vecAffine{scaleShiftNEON, scaleShiftSiLUNEON, normalizeNEON, axpyNEON, addNEON, mulNEON})
}
