//go:build arm64 && !noasm && linux

package asm

import (
	"math/rand/v2"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// neonGuard is a page of memory followed by an inaccessible page: a slice that
// ends at the boundary faults if a kernel reads or writes one byte past its end.
type neonGuard struct{ mem []byte }

func newNEONGuard(t *testing.T) *neonGuard {
	ps := os.Getpagesize()
	mem, err := syscall.Mmap(-1, 0, 2*ps, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Skipf("mmap: %v", err)
	}
	if err := syscall.Mprotect(mem[ps:], syscall.PROT_NONE); err != nil {
		t.Skipf("mprotect: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Munmap(mem) })
	return &neonGuard{mem[:ps]}
}

// f32 returns n float32 ending at the guard, filled with values in [-4, 4].
func (g *neonGuard) f32(rng *rand.Rand, n int) []float32 {
	s := unsafe.Slice((*float32)(unsafe.Pointer(&g.mem[len(g.mem)-4*n])), n)
	for i := range s {
		s[i] = 8*rng.Float32() - 4
	}
	return s
}

func (g *neonGuard) u16(rng *rand.Rand, n int) []uint16 {
	s := unsafe.Slice((*uint16)(unsafe.Pointer(&g.mem[len(g.mem)-2*n])), n)
	for i := range s {
		s[i] = uint16(rng.Uint32())
	}
	return s
}

// TestVecNEONStaysInBounds runs every kernel on slices that end right before an
// inaccessible page: a read or write past the end crashes the test.
func TestVecNEONStaysInBounds(t *testing.T) {
	skipNoNEON(t)
	g := []*neonGuard{newNEONGuard(t), newNEONGuard(t), newNEONGuard(t), newNEONGuard(t)}
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
	g := []*neonGuard{newNEONGuard(t), newNEONGuard(t), newNEONGuard(t)}
	rng := rand.New(rand.NewPCG(18, 19))
	for _, kc := range []int{1, 2, 3, 4, 5, 7, 9, 17, 33} {
		a := g[0].f32(rng, kc*gemmMR)
		c := g[2].f32(rng, (gemmMR-1)*20+gemmNR)
		kernelF32NEON(kc, &a[0], &g[1].f32(rng, kc*gemmNR)[0], &c[0], 20)
		kernelF16BNEON(kc, &a[0], &g[1].u16(rng, kc*gemmNR)[0], &c[0], 20)
	}
}
