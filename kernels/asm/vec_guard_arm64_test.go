//go:build arm64 && !noasm && linux

package asm

import (
	"math/rand/v2"
	"testing"
)

func TestVecNEONStaysInBounds(t *testing.T) {
	skipNoNEON(t)
	g := []*guardPage{newGuardPage(t), newGuardPage(t), newGuardPage(t), newGuardPage(t)}
	rng := rand.New(rand.NewPCG(16, 17))
	for n := 1; n <= 70; n++ {
		dst, src := g[0].f32(rng, n), g[1].f32(rng, n)
		for _, f := range []func(dst, src []float32){expNEON, siluNEON, quickGELUNEON, geluNEON, geluTanhNEON} {
			f(dst, src)
		}
		scaleShiftNEON(dst, src, 2, 1)
		scaleShiftSiLUNEON(dst, src, 2, 1)
		normalizeNEON(dst, src, g[2].f32(rng, n), g[3].f32(rng, n), 0.1, 2)
		axpyNEON(0.5, src, dst)
		addNEON(dst, src, g[2].f32(rng, n))
		mulNEON(dst, src, g[2].f32(rng, n))
		dotNEON(src, dst)
		sumSqNEON(src)
		maxNEON(src)
		softmaxNEON(src)

		f16ToF32NEON(dst, g[2].u16(rng, n))
		bf16ToF32NEON(dst, g[2].u16(rng, n))
		f32ToF16NEON(g[3].u16(rng, n), src)
	}
}

// TestMicroKernelsNEONStayInBounds puts the packed slivers and the C tile at the
// end of their pages.
func TestMicroKernelsNEONStayInBounds(t *testing.T) {
	skipNoNEON(t)
	g := []*guardPage{newGuardPage(t), newGuardPage(t), newGuardPage(t)}
	rng := rand.New(rand.NewPCG(18, 19))
	for _, kc := range []int{1, 2, 3, 4, 5, 7, 9, 17, 33} {
		a := g[0].f32(rng, kc*gemmMR)
		c := g[2].f32(rng, (gemmMR-1)*20+gemmNR)
		kernelF32NEON(kc, &a[0], &g[1].f32(rng, kc*gemmNR)[0], &c[0], 20)
		kernelF16BNEON(kc, &a[0], &g[1].u16(rng, kc*gemmNR)[0], &c[0], 20)
	}
}
