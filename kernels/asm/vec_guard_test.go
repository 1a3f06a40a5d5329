//go:build amd64 && !noasm && linux

package asm

import (
	"math/rand/v2"
	"testing"
)

func TestVecAVX2StaysInBounds(t *testing.T) {
	skipNoAVX2(t)
	g := []*guardPage{newGuardPage(t), newGuardPage(t), newGuardPage(t), newGuardPage(t)}
	rng := rand.New(rand.NewPCG(16, 17))
	for n := 1; n <= 70; n++ {
		dst, src := g[0].f32(rng, n), g[1].f32(rng, n)
		for _, f := range []func(dst, src []float32){expAVX2, siluAVX2, quickGELUAVX2, geluAVX2, geluTanhAVX2} {
			f(dst, src)
		}
		scaleShiftAVX2(dst, src, 2, 1)
		scaleShiftSiLUAVX2(dst, src, 2, 1)
		normalizeAVX2(dst, src, g[2].f32(rng, n), g[3].f32(rng, n), 0.1, 2)
		axpyAVX2(0.5, src, dst)
		addAVX2(dst, src, g[2].f32(rng, n))
		mulAVX2(dst, src, g[2].f32(rng, n))
		dotAVX2(src, dst)
		sumSqAVX2(src)
		maxAVX2(src)
		softmaxAVX2(src)

		f16ToF32AVX2(dst, g[2].u16(rng, n))
		bf16ToF32AVX2(dst, g[2].u16(rng, n))
		f32ToF16AVX2(g[3].u16(rng, n), src)
	}
}
