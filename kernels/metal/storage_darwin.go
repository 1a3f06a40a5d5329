//go:build darwin

package metal

import (
	"fmt"
	"unsafe"

	"github.com/ebitengine/purego/objc"
	"github.com/sdgo/sdgo/tensor"
)

// Storage is a Metal buffer in shared storage (memory the CPU and the GPU both
// address, as on every Apple silicon Mac) holding Len elements of one dtype.
type Storage struct {
	b    *Backend
	buf  objc.ID
	size int // the buffer's bytes
	ptr  unsafe.Pointer
	dt   tensor.DType
	n    int
}

// Backend returns the backend that allocated s.
func (s *Storage) Backend() tensor.Backend { return s.b }

// DType returns the element type.
func (s *Storage) DType() tensor.DType { return s.dt }

// Len returns the number of elements.
func (s *Storage) Len() int { return s.n }

// maxAlloc bounds one allocation (2^36 bytes) so that a corrupt size is an error.
const maxAlloc = 1 << 36

// Alloc returns uninitialised storage for n elements of dt.
func (b *Backend) Alloc(dt tensor.DType, n int) (tensor.Storage, error) {
	if !dt.Valid() {
		return nil, fmt.Errorf("metal.Alloc: %w: %v", tensor.ErrDType, dt)
	}
	if n < 0 || n > maxAlloc/dt.Size() {
		return nil, fmt.Errorf("metal.Alloc: %w: %d elements", tensor.ErrRange, n)
	}
	buf, size, err := b.dev.newBuffer(n * dt.Size())
	if err != nil {
		return nil, fmt.Errorf("metal.Alloc %v[%d]: %w", dt, n, err)
	}
	return &Storage{b: b, buf: buf, size: size, ptr: contents(buf), dt: dt, n: n}, nil
}

// Free hands the buffer back to the device's cache for reuse (or releases it
// when the cache is full); storage of another backend, or storage already
// freed, is ignored. Work already queued that uses it still sees it: a reuse
// runs after it on the queue.
func (b *Backend) Free(st tensor.Storage) {
	s, ok := st.(*Storage)
	if !ok || s.b.dev != b.dev || s.buf == 0 {
		return
	}
	buf := s.buf
	s.buf, s.ptr = 0, nil
	b.dev.freeBuffer(buf, s.size)
}

// storage returns st as this device's storage, or an error wrapping
// tensor.ErrBackend.
func (b *Backend) storage(op string, st tensor.Storage) (*Storage, error) {
	s, ok := st.(*Storage)
	if !ok || s.b.dev != b.dev {
		return nil, fmt.Errorf("metal.%s: %w: storage of %s on %s", op, tensor.ErrBackend, st.Backend().Name(), b.Name())
	}
	if s.buf == 0 {
		return nil, fmt.Errorf("metal.%s: storage used after Free", op)
	}
	return s, nil
}

// bytes returns n bytes of s from byte offset off as a slice.
func (s *Storage) bytes(off, n int) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Add(s.ptr, off)), n)
}

// Write copies src ([]float32 for F32 storage, []uint16 for F16 and BF16) into
// the start of dst, once the work queued before has run.
func (b *Backend) Write(dst tensor.Storage, src any) error {
	s, err := b.storage("Write", dst)
	if err != nil {
		return err
	}
	var raw []byte
	switch v := src.(type) {
	case []float32:
		if s.dt != tensor.F32 || len(v) > s.n {
			return fmt.Errorf("metal.Write: %w: %d float32 values into %v storage of %d", tensor.ErrDType, len(v), s.dt, s.n)
		}
		if len(v) > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
		}
	case []uint16:
		if s.dt == tensor.F32 || len(v) > s.n {
			return fmt.Errorf("metal.Write: %w: %d uint16 values into %v storage of %d", tensor.ErrDType, len(v), s.dt, s.n)
		}
		if len(v) > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
		}
	default:
		return fmt.Errorf("metal.Write: %w: source %T", tensor.ErrDType, src)
	}
	if err := b.dev.Synchronize(); err != nil {
		return err
	}
	copy(s.bytes(0, len(raw)), raw)
	return nil
}

// Read copies len(dst) elements of src from element off into dst ([]float32 for
// F32 storage, []uint16 for F16 and BF16), once the work queued before has run.
func (b *Backend) Read(src tensor.Storage, off int, dst any) error {
	s, err := b.storage("Read", src)
	if err != nil {
		return err
	}
	var raw []byte
	switch v := dst.(type) {
	case []float32:
		if s.dt != tensor.F32 || off < 0 || off+len(v) > s.n {
			return fmt.Errorf("metal.Read: %w: %d float32 values at %d from %v storage of %d", tensor.ErrDType, len(v), off, s.dt, s.n)
		}
		if len(v) > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 4*len(v))
		}
	case []uint16:
		if s.dt == tensor.F32 || off < 0 || off+len(v) > s.n {
			return fmt.Errorf("metal.Read: %w: %d uint16 values at %d from %v storage of %d", tensor.ErrDType, len(v), off, s.dt, s.n)
		}
		if len(v) > 0 {
			raw = unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
		}
	default:
		return fmt.Errorf("metal.Read: %w: destination %T", tensor.ErrDType, dst)
	}
	if err := b.dev.Synchronize(); err != nil {
		return err
	}
	copy(raw, s.bytes(off*s.dt.Size(), len(raw)))
	return nil
}
