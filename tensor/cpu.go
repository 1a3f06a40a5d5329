package tensor

import (
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/sdgo/sdgo/kernels/asm"
)

// CPUStorage is the storage of the CPU backend: F32 elements in F32, F16 and BF16
// bit patterns in U16. Its slices have exactly Len elements.
type CPUStorage struct {
	cpu *CPU
	dt  DType
	F32 []float32
	U16 []uint16
	// mapped is the memory outside the Go heap that F32 or U16 view, for
	// storage from AllocLongLived; cleanup unmaps it if the storage is never freed.
	mapped []byte
	big    bool // mapped is an activation buffer from Alloc, reused through CPU.big
	// borrowed is the memory of storage from Borrow, and release lets go of it.
	borrowed []byte
	release  func()
	cleanup  runtime.Cleanup
}

// Backend returns the CPU backend that allocated s.
func (s *CPUStorage) Backend() Backend { return s.cpu }

// DType returns the element type.
func (s *CPUStorage) DType() DType { return s.dt }

// Len returns the number of elements.
func (s *CPUStorage) Len() int {
	if s.dt == F32 {
		return len(s.F32)
	}
	return len(s.U16)
}

// CPU is the CPU backend: Go code and the generated kernels of package asm, spread
// over GOMAXPROCS goroutines. Its zero value is not usable; call NewCPU.
//
// Allocation reuse: storage is taken from size-classed free lists (four classes per
// power of two, so at most 25% of a buffer is slack) and returned to them by
// Tensor.Release once no view holds it. Buffers of 1 MiB and more are mapped
// outside the Go heap and kept, once freed, in a cache of at most 256 MiB:
// memory in use is then what the tensors hold plus that cache, where on the heap
// the garbage collector lets freed buffers pile up to twice what is live before
// it collects (a SD 1.5 UNet step holds 180 MB at most, yet grew the heap to
// 690 MB). Smaller buffers go to sync.Pool free lists. A denoising step that
// releases its intermediates therefore reuses the same buffers step after step
// instead of handing the garbage collector hundreds of megabytes per step. A tensor
// that is never released is still reclaimed: collected from the heap, or unmapped
// once unreachable. Pools hold memory only between garbage collections, so reuse
// never pins memory that the program no longer needs.
type CPU struct {
	f32 [sizeClasses]sync.Pool
	u16 [sizeClasses]sync.Pool
	// inUse and peak count the bytes of storage handed out and not yet freed
	// (see Stats).
	inUse, peak atomic.Int64
	// big holds freed large buffers for reuse (see Alloc).
	big mapCache
}

// CPUStats is what a CPU backend's storage holds.
type CPUStats struct {
	// InUse is the bytes of storage allocated and not yet freed (a storage that
	// is garbage-collected without Release stays counted), and Peak the most
	// there has been since the backend was made or ResetPeak was called.
	InUse, Peak int64
}

// Stats reports the storage the backend has handed out.
func (c *CPU) Stats() CPUStats { return CPUStats{InUse: c.inUse.Load(), Peak: c.peak.Load()} }

// ResetPeak starts a new peak from what is in use now.
func (c *CPU) ResetPeak() { c.peak.Store(c.inUse.Load()) }

func (c *CPU) count(bytes int64) {
	n := c.inUse.Add(bytes)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

// NewCPU returns a CPU backend.
func NewCPU() *CPU { return &CPU{} }

const (
	minPooled   = 256 // smaller buffers are plain allocations
	sizeClasses = 4 * 48
)

// sizeClass returns the class of an n-element request and the capacity that class
// allocates: the next of 4 steps per power of two.
func sizeClass(n int) (class, capacity int) {
	e := bits.Len(uint(n-1)) - 1 // 2^e < n ≤ 2^(e+1)
	step := 1 << max(e-2, 0)
	q := (n + step - 1) / step // 4 < q ≤ 8 for e ≥ 2
	return e*4 + q - 4, q * step
}

// Name returns "cpu" and the kernel set in use.
func (c *CPU) Name() string { return "cpu (" + asm.Features() + ")" }

// Alloc returns uninitialised storage for n elements.
func (c *CPU) Alloc(dt DType, n int) (Storage, error) {
	if !dt.Valid() {
		return nil, dtypeErr("Alloc", "%v", dt)
	}
	if n < 0 || n > maxElements {
		return nil, rangeErr("Alloc", "%d elements", n)
	}
	s := &CPUStorage{cpu: c, dt: dt}
	c.count(int64(n * dt.Size()))
	if n*dt.Size() >= bigBytes && canMapAnon {
		if c.allocBig(s, n) {
			return s, nil
		}
	}
	if n < minPooled {
		if dt == F32 {
			s.F32 = make([]float32, n)
		} else {
			s.U16 = make([]uint16, n)
		}
		return s, nil
	}
	class, capacity := sizeClass(n)
	if dt == F32 {
		if p, ok := c.f32[class].Get().(*[]float32); ok {
			s.F32 = (*p)[:n]
		} else {
			s.F32 = make([]float32, n, capacity)
		}
	} else {
		if p, ok := c.u16[class].Get().(*[]uint16); ok {
			s.U16 = (*p)[:n]
		} else {
			s.U16 = make([]uint16, n, capacity)
		}
	}
	return s, nil
}

// Free returns s to its size class's pool.
func (c *CPU) Free(st Storage) {
	s, ok := st.(*CPUStorage)
	if !ok || s.cpu != c {
		return
	}
	c.count(-int64(s.Len() * s.dt.Size()))
	if s.big {
		c.freeBig(s)
		return
	}
	if s.freeMapped() || s.freeBorrowed() {
		return
	}
	if n := s.Len(); n >= minPooled {
		class, capacity := sizeClass(n)
		if s.dt == F32 && cap(s.F32) == capacity {
			b := s.F32[:capacity]
			c.f32[class].Put(&b)
		} else if s.dt != F32 && cap(s.U16) == capacity {
			b := s.U16[:capacity]
			c.u16[class].Put(&b)
		}
	}
	s.F32, s.U16 = nil, nil
}

func (c *CPU) storage(op string, st Storage) (*CPUStorage, error) {
	// Any CPU backend's storage is host memory this one can use; only Free
	// goes to the owner's pools.
	s, ok := st.(*CPUStorage)
	if !ok {
		return nil, fmt.Errorf("tensor.%s: %w: storage of %s on the CPU backend", op, ErrBackend, st.Backend().Name())
	}
	return s, nil
}

// Write copies src into the start of dst.
func (c *CPU) Write(dst Storage, src any) error {
	defer runtime.KeepAlive(dst)
	s, err := c.storage("Write", dst)
	if err != nil {
		return err
	}
	switch v := src.(type) {
	case []float32:
		if s.dt != F32 || len(v) > len(s.F32) {
			return dtypeErr("Write", "%d float32 values into %v storage of %d", len(v), s.dt, s.Len())
		}
		copy(s.F32, v)
	case []uint16:
		if s.dt == F32 || len(v) > len(s.U16) {
			return dtypeErr("Write", "%d uint16 values into %v storage of %d", len(v), s.dt, s.Len())
		}
		copy(s.U16, v)
	default:
		return dtypeErr("Write", "source %T", src)
	}
	return nil
}

// Read copies len(dst) elements of src, from element off, into dst.
func (c *CPU) Read(src Storage, off int, dst any) error {
	defer runtime.KeepAlive(src)
	s, err := c.storage("Read", src)
	if err != nil {
		return err
	}
	switch v := dst.(type) {
	case []float32:
		if s.dt != F32 || off < 0 || off+len(v) > len(s.F32) {
			return dtypeErr("Read", "%d float32 values at %d from %v storage of %d", len(v), off, s.dt, s.Len())
		}
		copy(v, s.F32[off:])
	case []uint16:
		if s.dt == F32 || off < 0 || off+len(v) > len(s.U16) {
			return dtypeErr("Read", "%d uint16 values at %d from %v storage of %d", len(v), off, s.dt, s.Len())
		}
		copy(v, s.U16[off:])
	default:
		return dtypeErr("Read", "destination %T", dst)
	}
	return nil
}
