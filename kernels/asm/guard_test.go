//go:build (amd64 || arm64) && !noasm && linux

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
