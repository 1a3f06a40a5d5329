package cuda

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/sdgo/sdgo/tensor"
)

// Storage is device memory holding Len elements of one dtype, allocated by a
// Backend from its device's caching allocator.
type Storage struct {
	b   *Backend
	ptr uint64
	dt  tensor.DType
	n   int
}

// Backend returns the backend that allocated s.
func (s *Storage) Backend() tensor.Backend { return s.b }

// DType returns the element type.
func (s *Storage) DType() tensor.DType { return s.dt }

// Len returns the number of elements.
func (s *Storage) Len() int { return s.n }

// Ptr returns the device address of the first element (0 after Free).
func (s *Storage) Ptr() uint64 { return s.ptr }

// maxAlloc bounds one allocation (2^40 bytes) so that a corrupt size is an error.
const maxAlloc = 1 << 40

// Alloc returns uninitialised device storage for n elements of dt.
func (b *Backend) Alloc(dt tensor.DType, n int) (tensor.Storage, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("cuda.Alloc: %w: %v", tensor.ErrDType, dt)
	}
	if n < 0 || uint64(n) > maxAlloc/uint64(dt.Size()) {
		return nil, fmt.Errorf("cuda.Alloc: %w: %d elements", tensor.ErrRange, n)
	}
	s := &Storage{b: b, dt: dt, n: n}
	err := b.dev.do(func() error {
		p, err := b.dev.malloc(uint64(n * dt.Size()))
		s.ptr = p
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cuda.Alloc %v[%d]: %w", dt, n, err)
	}
	return s, nil
}

// Free hands the storage back to the allocator; storage of another backend, or
// storage already freed, is ignored. Work queued before Free that reads the
// storage still sees it: reuse is ordered on the device's stream.
func (b *Backend) Free(st tensor.Storage) {
	s, ok := st.(*Storage)
	if !ok || s.b.dev != b.dev || s.ptr == 0 {
		return
	}
	p := s.ptr
	s.ptr = 0
	_ = b.dev.do(func() error { return b.dev.release(p) })
}

// storage returns t's device storage, or an error wrapping tensor.ErrBackend.
func (b *Backend) storage(op string, st tensor.Storage) (*Storage, error) {
	s, ok := st.(*Storage)
	if !ok || s.b.dev != b.dev {
		return nil, fmt.Errorf("cuda.%s: %w: storage of %s on %s", op, tensor.ErrBackend, st.Backend().Name(), b.Name())
	}
	if s.ptr == 0 {
		return nil, fmt.Errorf("cuda.%s: storage used after Free", op)
	}
	return s, nil
}

// hostSlice returns the address, element count and dtype class of a host slice
// for Write and Read: []float32 for F32 storage, []uint16 for F16 and BF16.
func hostSlice(v any) (p unsafe.Pointer, n int, f32 bool, ok bool) {
	switch x := v.(type) {
	case []float32:
		if len(x) > 0 {
			p = unsafe.Pointer(&x[0])
		}
		return p, len(x), true, true
	case []uint16:
		if len(x) > 0 {
			p = unsafe.Pointer(&x[0])
		}
		return p, len(x), false, true
	}
	return nil, 0, false, false
}

// Write copies src ([]float32 for F32 storage, []uint16 for F16 and BF16) into
// the start of dst.
func (b *Backend) Write(dst tensor.Storage, src any) error {
	s, err := b.storage("Write", dst)
	if err != nil {
		return err
	}
	p, n, f32, ok := hostSlice(src)
	if !ok || f32 != (s.dt == tensor.F32) || n > s.n {
		return fmt.Errorf("cuda.Write: %w: %T of %d into %v storage of %d", tensor.ErrDType, src, n, s.dt, s.n)
	}
	if n == 0 {
		return nil
	}
	err = b.dev.do(func() error {
		// From pageable memory the copy returns once the data is staged, so src
		// may change afterwards.
		r := b.dev.drv.cuMemcpyHtoDAsync(s.ptr, p, uint64(n*s.dt.Size()), b.dev.stream)
		runtime.KeepAlive(src)
		return b.dev.drv.check("cuMemcpyHtoDAsync_v2", r)
	})
	if err != nil {
		return fmt.Errorf("cuda.Write: %w", err)
	}
	return nil
}

// Read copies len(dst) elements of src from element off into dst ([]float32 for
// F32 storage, []uint16 for F16 and BF16), once the work queued before it is done.
func (b *Backend) Read(src tensor.Storage, off int, dst any) error {
	s, err := b.storage("Read", src)
	if err != nil {
		return err
	}
	p, n, f32, ok := hostSlice(dst)
	if !ok || f32 != (s.dt == tensor.F32) || off < 0 || off+n > s.n {
		return fmt.Errorf("cuda.Read: %w: %T of %d at %d from %v storage of %d", tensor.ErrDType, dst, n, off, s.dt, s.n)
	}
	if n == 0 {
		return nil
	}
	size := uint64(s.dt.Size())
	err = b.dev.do(func() error {
		r := b.dev.drv.cuMemcpyDtoHAsync(p, s.ptr+uint64(off)*size, uint64(n)*size, b.dev.stream)
		if err := b.dev.drv.check("cuMemcpyDtoHAsync_v2", r); err != nil {
			return err
		}
		err := b.dev.syncLocked()
		runtime.KeepAlive(dst)
		return err
	})
	if err != nil {
		return fmt.Errorf("cuda.Read: %w", err)
	}
	return nil
}

// unsafePointer returns the address of v's first element (v non-empty); the
// caller keeps v alive until the device has read it.
func unsafePointer(v []int64) unsafe.Pointer { return unsafe.Pointer(&v[0]) }
