//go:build arm64 && !noasm

package asm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The NEON micro-kernels against their Go reference, on every kc remainder of
// the 4-way unrolling, kc 0, and with a C tile whose rows are wider than 16.
func TestMicroKernelsNEONMatchGeneric(t *testing.T) {
	skipNoNEON(t)
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kc := range []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 33, 127, 129, 255, 256, gemmKC} {
		for _, ldc := range []int{16, 17, 23} {
			a := randF32(rng, max(kc, 1)*gemmMR)
			b := randF32(rng, max(kc, 1)*gemmNR)
			bh := randHalf(rng, max(kc, 1)*gemmNR, ElemF16)
			c0 := randF32(rng, (gemmMR-1)*ldc+gemmNR+3)
			for _, half := range []bool{false, true} {
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				if half {
					kernelF16BGeneric(kc, a, bh, want, ldc)
					kernelF16BNEON(kc, &a[0], &bh[0], &got[0], ldc)
				} else {
					kernelF32Generic(kc, a, b, want, ldc)
					kernelF32NEON(kc, &a[0], &b[0], &got[0], ldc)
				}
				for i := range want {
					if i%ldc >= gemmNR || i >= (gemmMR-1)*ldc+gemmNR {
						require.Equal(t, c0[i], got[i], "kc %d ldc %d half %v: element %d outside the tile written", kc, ldc, half, i)
						continue
					}
					require.InDelta(t, want[i], got[i], 1e-5*math.Sqrt(float64(kc))*4, "kc %d ldc %d half %v element %d", kc, ldc, half, i)
				}
			}
		}
	}
}

// The F16-B kernel widens exactly: with A all ones and kc 1, every output is
// one widened half, whatever its bits (subnormals, infinities, NaN), plus 0.
func TestMicroKernelNEONF16Exact(t *testing.T) {
	skipNoNEON(t)
	a := []float32{1, 1, 1, 1, 1, 1}
	for base := 0; base < 1<<16; base += gemmNR {
		b := make([]uint16, gemmNR)
		for j := range b {
			b[j] = uint16(base + j)
		}
		got, want := make([]float32, gemmMR*gemmNR), make([]float32, gemmMR*gemmNR)
		kernelF16BNEON(1, &a[0], &b[0], &got[0], gemmNR)
		kernelF16BGeneric(1, a, b, want, gemmNR)
		for i := range want {
			if want[i] != want[i] {
				require.True(t, got[i] != got[i], "%#04x widened to %g, want NaN", b[i%gemmNR], got[i])
				continue
			}
			require.Equal(t, math.Float32bits(want[i]), math.Float32bits(got[i]), "%#04x row %d", b[i%gemmNR], i/gemmNR)
		}
	}
}

// Through the driver, NEON against the Go micro-kernels on the awkward sizes
// (edge tiles go through the temporary tile, full ones straight to C).
func TestGemmNEONMatchesGoKernels(t *testing.T) {
	skipNoNEON(t)
	rng := rand.New(rand.NewPCG(7, 8))
	sizes := []int{1, 3, 7, 8, 9, 15, 16, 17, 31, 33}
	if !testing.Short() {
		sizes = append(sizes, 127, 129)
	}
	for i, m := range sizes {
		n := sizes[(i+3)%len(sizes)]
		k := sizes[(i+5)%len(sizes)]
		for _, eb := range []Elem{ElemF32, ElemF16} {
			name := fmt.Sprintf("%dx%dx%d/%v", m, n, k, eb)
			a := makeOperand(rng, m, k, ElemF32, false, 1)
			b := makeOperand(rng, k, n, eb, i%2 == 1, 2)
			got := randF32(rng, m*n)
			want := append([]float32(nil), got...)
			Gemm(m, n, k, 1.5, a, b, 0.25, got, n, 1)
			withGoKernels(func() { Gemm(m, n, k, 1.5, a, b, 0.25, want, n, 1) })
			for j := range want {
				require.InDelta(t, want[j], got[j], 1e-5*(math.Abs(float64(want[j]))+1)*math.Sqrt(float64(k)), "%s element %d", name, j)
			}
		}
	}
}

// withGoKernels runs f with the NEON kernels switched off.
func withGoKernels(f func()) {
	saved, savedF16 := useNEON, hasF16Kernel
	useNEON, hasF16Kernel = false, false
	defer func() { useNEON, hasF16Kernel = saved, savedF16 }()
	f()
}

func TestFMAPeakNEON(t *testing.T) {
	skipNoNEON(t)
	require.Equal(t, 1000*fmaFlopsPerIter, fmaPeak(1000))
	fmaPeakNEON(0)
}
