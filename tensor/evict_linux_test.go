package tensor

import (
	bin "encoding/binary"
	"math"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A tensor borrowed from a file mapping reads the same after Evict drops its
// pages, and Release unmaps through the release function.
func TestEvictFileMapping(t *testing.T) {
	const n = 3<<20 + 5 // several pages, not a whole number of them
	buf := make([]byte, 4*n)
	for i := range n {
		bin.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(float32(i%1000)))
	}
	path := filepath.Join(t.TempDir(), "w.bin")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, len(buf), syscall.PROT_READ, syscall.MAP_SHARED)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	unmapped := false
	c := NewCPU()
	w, ok := c.BorrowTensor(F32, mem, func() { unmapped = true; syscall.Munmap(mem) }, n)
	if !ok {
		t.Fatal("BorrowTensor refused a page-aligned mapping")
	}
	sum := func() float64 {
		v, err := w.Float32s()
		if err != nil {
			t.Fatal(err)
		}
		s := 0.0
		for _, x := range v {
			s += float64(x)
		}
		return s
	}
	want := sum()
	Evict(w)
	if got := sum(); got != want {
		t.Errorf("sum after Evict %v, want %v", got, want)
	}
	w.Release()
	if !unmapped {
		t.Error("Release did not call the release function")
	}
}
