//go:build amd64 && !noasm

package asm

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// The assembly micro-kernels against their Go reference, on every kc remainder of
// the 4-way unrolling and with a C tile whose rows are wider than 16.
func TestMicroKernelsMatchGeneric(t *testing.T) {
	if !useAVX2 {
		t.Skip("no AVX2 kernels on this build or processor")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, kc := range []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 255, 256} {
		for _, ldc := range []int{16, 23} {
			a := randF32(rng, kc*gemmMR)
			b := randF32(rng, kc*gemmNR)
			bh := randHalf(rng, kc*gemmNR, ElemF16)
			c0 := randF32(rng, (gemmMR-1)*ldc+gemmNR)
			for _, half := range []bool{false, true} {
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				if half {
					kernelF16BGeneric(kc, a, bh, want, ldc)
					kernelF16BAVX2(kc, &a[0], &bh[0], &got[0], ldc)
				} else {
					kernelF32Generic(kc, a, b, want, ldc)
					kernelF32AVX2(kc, &a[0], &b[0], &got[0], ldc)
				}
				for i := range want {
					require.InDelta(t, want[i], got[i], 1e-5*math.Sqrt(float64(kc))*4, "kc %d ldc %d half %v element %d", kc, ldc, half, i)
				}
			}
		}
	}
}
