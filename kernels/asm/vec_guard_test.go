//go:build amd64 && !noasm && linux

package asm

import (
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// guardPage is a page of memory followed by an inaccessible page: a slice that
// ends at the boundary faults if a kernel reads or writes one byte past its end.
type guardPage struct{ mem []byte }

func newGuardPage(t *testing.T) *guardPage {
	ps := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	if err := syscall.Mprotect(mem[ps:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	return &guardPage{mem[:ps]}
}

// f32 returns n float32 ending at the guard, filled with values in [-4, 4].
func (g *guardPage) f32(rng *rand.Rand, n int) []float32 {
	s := unsafe.Slice((*float32)(unsafe.Pointer(&g.mem[len(g.mem)-4*n])), n)
	for i := range s {
		s[i] = 8*rng.Float32() - 4
	}
	return s
}

func (g *guardPage) u16(rng *rand.Rand, n int) []uint16 {
	s := unsafe.Slice((*uint16)(unsafe.Pointer(&g.mem[len(g.mem)-2*n])), n)
	for i := range s {
		s[i] = uint16(rng.Uint32())
	}
	return s
}

// TestVecAVX2StaysInBounds runs every kernel on slices that end right before an
// inaccessible page: a read or write past the end crashes the test.
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
