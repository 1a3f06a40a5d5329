package tensor

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"unsafe"
)

func TestAllocLongLivedOffHeap(t *testing.T) {
	c := NewCPU()
	const n = 16 << 20 // 64 MiB of F32
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	st, err := c.AllocLongLived(F32, n)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*CPUStorage)
	if len(s.F32) != n {
		t.Fatalf("len %d, want %d", len(s.F32), n)
	}
	for i := range s.F32 {
		s.F32[i] = float32(i)
	}
	runtime.ReadMemStats(&after)
	if canMapAnon {
		if s.mapped == nil {
			t.Fatal("a 64 MiB long-lived buffer is not mapped outside the heap")
		}
		if grew := int64(after.HeapAlloc) - int64(before.HeapAlloc); grew > n {
			t.Errorf("the Go heap grew by %d bytes for a %d-byte long-lived buffer", grew, 4*n)
		}
	}
	if got := c.Stats().InUse; got != 4*n {
		t.Errorf("Stats().InUse = %d, want %d", got, 4*n)
	}
	c.Free(st)
	if s.mapped != nil || s.F32 != nil {
		t.Error("Free left the mapping")
	}
	if got := c.Stats(); got.InUse != 0 || got.Peak != 4*n {
		t.Errorf("Stats() after Free = %+v, want InUse 0, Peak %d", got, 4*n)
	}
	c.Free(st) // a second Free does nothing
	if got := c.Stats().InUse; got != 0 {
		t.Errorf("InUse after a second Free = %d", got)
	}
}

func TestAllocLongLivedSmallIsHeap(t *testing.T) {
	c := NewCPU()
	st, err := c.AllocLongLived(F16, 100)
	if err != nil {
		t.Fatal(err)
	}
	if s := st.(*CPUStorage); s.mapped != nil || len(s.U16) != 100 {
		t.Errorf("small long-lived storage: mapped %v, len %d", s.mapped != nil, len(s.U16))
	}
	if _, err := c.AllocLongLived(F32, -1); err == nil {
		t.Error("AllocLongLived(-1) did not fail")
	}
}

// A long-lived weight gives the same convolution as an ordinary one.
func TestLongLivedWeightInOps(t *testing.T) {
	c := NewCPU()
	rng := rand.New(rand.NewPCG(1, 2))
	wv := make([]float32, 256*32*3*3)
	for i := range wv {
		wv[i] = rng.Float32() - 0.5
	}
	xv := make([]float32, 32*13*11)
	for i := range xv {
		xv[i] = rng.Float32() - 0.5
	}
	w, _ := FromFloat32(c, wv, 256, 32, 3, 3)
	lw, err := NewLongLived(c, F32, 256, 32, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(lw.Storage(), wv); err != nil {
		t.Fatal(err)
	}
	if canMapAnon && lw.Storage().(*CPUStorage).mapped == nil {
		t.Fatal("not mapped")
	}
	x, _ := FromFloat32(c, xv, 1, 32, 13, 11)
	a, err := Conv2d(x, w, nil, Conv2dParams{Padding: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Conv2d(x, lw, nil, Conv2dParams{Padding: 1})
	if err != nil {
		t.Fatal(err)
	}
	av, _ := a.Float32s()
	bv, _ := b.Float32s()
	for i := range av {
		if av[i] != bv[i] {
			t.Fatalf("element %d: %v with a long-lived weight, %v without", i, bv[i], av[i])
		}
	}
	lw.Release()
}

func TestBorrow(t *testing.T) {
	c := NewCPU()
	mem := make([]byte, 4*10+1)
	for i := range mem {
		mem[i] = byte(i)
	}
	released := 0
	if _, ok := c.Borrow(F32, mem[1:41], 10, func() { released++ }); ok && littleEndian {
		t.Error("Borrow accepted memory not aligned to 4 bytes")
	}
	if _, ok := c.Borrow(F32, mem[:40], 11, func() { released++ }); ok {
		t.Error("Borrow accepted 40 bytes for 11 F32 elements")
	}
	if !littleEndian {
		t.Skip("big-endian host: Borrow always refuses")
	}
	tt, ok := c.BorrowTensor(F16, mem[:40], func() { released++ }, 4, 5)
	if !ok {
		t.Fatal("BorrowTensor refused aligned memory")
	}
	got, err := tt.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	u := tt.Storage().(*CPUStorage).U16
	if len(got) != 20 || u[1] != uint16(mem[2])|uint16(mem[3])<<8 {
		t.Fatalf("borrowed F16 reads %v (bits %v)", got, u[:2])
	}
	Evict(tt) // heap memory: nothing to drop, still readable
	if again, _ := tt.Float32s(); again[7] != got[7] {
		t.Error("Evict changed a heap-backed borrowed tensor")
	}
	tt.Release()
	tt.Release()
	if released != 1 {
		t.Errorf("release called %d times, want 1", released)
	}
	if c.Stats().InUse != 0 {
		t.Errorf("InUse %d after release", c.Stats().InUse)
	}
}

// Large activation buffers are mapped outside the heap and reused from a
// bounded cache.
func TestBigBuffersReused(t *testing.T) {
	if !canMapAnon {
		t.Skip("no anonymous mappings on this platform")
	}
	c := NewCPU()
	const n = 3 << 18 // 3 MiB of F32
	st, err := c.Alloc(F32, n)
	if err != nil {
		t.Fatal(err)
	}
	s := st.(*CPUStorage)
	if !s.big || len(s.F32) != n {
		t.Fatalf("a 3 MiB buffer: big %v, len %d", s.big, len(s.F32))
	}
	first := &s.F32[0]
	s.F32[n-1] = 7
	c.Free(st)
	// Same size class, other dtype: the same mapping comes back.
	st2, err := c.Alloc(F16, 2*n-100)
	if err != nil {
		t.Fatal(err)
	}
	s2 := st2.(*CPUStorage)
	if unsafe.Pointer(&s2.U16[0]) != unsafe.Pointer(first) {
		t.Error("a freed large buffer was not reused for the next request of its size class")
	}
	c.Free(st2)
	// Freeing more than the cache holds unmaps the rest.
	var many []Storage
	for range bigCacheLimit/(4*n) + 3 {
		st, err := c.Alloc(F32, n)
		if err != nil {
			t.Fatal(err)
		}
		many = append(many, st)
	}
	for _, st := range many {
		c.Free(st)
	}
	if c.big.bytes > bigCacheLimit {
		t.Errorf("cache holds %d bytes, limit %d", c.big.bytes, bigCacheLimit)
	}
	if got := c.Stats().InUse; got != 0 {
		t.Errorf("InUse %d after freeing everything", got)
	}
}
