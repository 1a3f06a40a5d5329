package tensor

import (
	"fmt"
	"math/bits"
	"slices"
	"sync/atomic"
)

// buffer is a Storage shared by a tensor and its views, counted so that the last
// Release hands it back to its backend for reuse.
type buffer struct {
	s    Storage
	refs atomic.Int32
}

func (b *buffer) retain() { b.refs.Add(1) }

func (b *buffer) release() {
	if b.refs.Add(-1) == 0 {
		b.s.Backend().Free(b.s)
	}
}

// Tensor is an n-dimensional array on one backend: an element type, a shape,
// strides (in elements, possibly 0 for broadcast dimensions) and an offset into
// storage shared with its views. A Tensor's metadata is immutable; operations
// return new tensors.
//
// Release hands the storage back for reuse once it and every view of it have been
// released. Releasing is optional (an unreleased tensor is garbage-collected like
// any value) but it is what keeps a denoising loop from allocating: see the package
// documentation. Using a tensor after Release is a programming error.
type Tensor struct {
	buf      *buffer
	dtype    DType
	shape    []int
	strides  []int
	offset   int
	released atomic.Bool
}

// DType returns the element type.
func (t *Tensor) DType() DType { return t.dtype }

// Shape returns a copy of the shape.
func (t *Tensor) Shape() []int { return slices.Clone(t.shape) }

// Strides returns a copy of the strides, in elements.
func (t *Tensor) Strides() []int { return slices.Clone(t.strides) }

// Offset returns the offset of the first element in the storage, in elements.
func (t *Tensor) Offset() int { return t.offset }

// Rank returns the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns the size of dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Numel returns the number of elements.
func (t *Tensor) Numel() int { return numel(t.shape) }

// Storage returns the storage the tensor views.
func (t *Tensor) Storage() Storage { return t.buf.s }

// Backend returns the backend that holds the tensor.
func (t *Tensor) Backend() Backend { return t.buf.s.Backend() }

// String describes the tensor (not its values), e.g. "F32[2 4 8 8]".
func (t *Tensor) String() string { return fmt.Sprintf("%s%v", t.dtype, t.shape) }

// IsContiguous reports whether the elements lie in row-major order without gaps.
func (t *Tensor) IsContiguous() bool {
	s := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != s {
			return false
		}
		s *= t.shape[i]
	}
	return true
}

// Release drops this tensor's claim on its storage. It is idempotent.
func (t *Tensor) Release() {
	if t == nil || t.buf == nil {
		return
	}
	if t.released.CompareAndSwap(false, true) {
		t.buf.release()
	}
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// ContiguousStrides returns the row-major strides, in elements, of a contiguous
// tensor of the given shape.
func ContiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// maxElements bounds the size of one tensor (2^40 elements on 64-bit targets,
// 2^24 on 32-bit ones) so that a corrupt shape is an error rather than an
// attempt at a huge allocation or an overflow.
const maxElements = 1 << (bits.UintSize/2 + 8)

func checkShape(op string, shape []int) error {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return shapeErr(op, "negative dimension in %v", shape)
		}
		if d > 0 && n > maxElements/d {
			return shapeErr(op, "shape %v has more than %d elements", shape, maxElements)
		}
		n *= d
	}
	return nil
}

// New allocates an uninitialised contiguous tensor on b.
func New(b Backend, dt DType, shape ...int) (*Tensor, error) {
	if !dt.Valid() {
		return nil, dtypeErr("New", "%v", dt)
	}
	if err := checkShape("New", shape); err != nil {
		return nil, err
	}
	s, err := b.Alloc(dt, numel(shape))
	if err != nil {
		return nil, fmt.Errorf("tensor.New %s%v on %s: %w", dt, shape, b.Name(), err)
	}
	return wrap(s, slices.Clone(shape)), nil
}

// wrap makes a contiguous tensor owning s.
func wrap(s Storage, shape []int) *Tensor {
	buf := &buffer{s: s}
	buf.refs.Store(1)
	return &Tensor{buf: buf, dtype: s.DType(), shape: shape, strides: ContiguousStrides(shape)}
}

// Zeros allocates a tensor filled with zeros.
func Zeros(b Backend, dt DType, shape ...int) (*Tensor, error) {
	t, err := New(b, dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := b.Fill(t, 0); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// Full allocates a tensor filled with v.
func Full(b Backend, dt DType, v float32, shape ...int) (*Tensor, error) {
	t, err := New(b, dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := b.Fill(t, v); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// FromFloat32 makes an F32 tensor of the given shape holding a copy of data.
func FromFloat32(b Backend, data []float32, shape ...int) (*Tensor, error) {
	if err := checkShape("FromFloat32", shape); err != nil {
		return nil, err
	}
	if numel(shape) != len(data) {
		return nil, shapeErr("FromFloat32", "%d values for shape %v (%d elements)", len(data), shape, numel(shape))
	}
	t, err := New(b, F32, shape...)
	if err != nil {
		return nil, err
	}
	if err := b.Write(t.buf.s, data); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// FromBits makes an F16 or BF16 tensor holding a copy of the bit patterns in data.
func FromBits(b Backend, dt DType, data []uint16, shape ...int) (*Tensor, error) {
	if dt != F16 && dt != BF16 {
		return nil, dtypeErr("FromBits", "%v (want F16 or BF16)", dt)
	}
	if err := checkShape("FromBits", shape); err != nil {
		return nil, err
	}
	if numel(shape) != len(data) {
		return nil, shapeErr("FromBits", "%d values for shape %v (%d elements)", len(data), shape, numel(shape))
	}
	t, err := New(b, dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := b.Write(t.buf.s, data); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// Float32s returns the elements in row-major order as float32, whatever the dtype,
// strides or backend.
func (t *Tensor) Float32s() ([]float32, error) {
	c := t
	if !t.IsContiguous() || t.dtype != F32 {
		var err error
		if c, err = t.To(F32); err != nil {
			return nil, err
		}
		defer c.Release()
	}
	out := make([]float32, c.Numel())
	if err := c.Backend().Read(c.buf.s, c.offset, out); err != nil {
		return nil, fmt.Errorf("tensor.Float32s %v: %w", t, err)
	}
	return out, nil
}

// view makes a tensor sharing t's storage.
func (t *Tensor) view(shape, strides []int, offset int) *Tensor {
	t.buf.retain()
	return &Tensor{buf: t.buf, dtype: t.dtype, shape: shape, strides: strides, offset: offset}
}

// Contiguous returns t itself if it is contiguous (as a new view) or a contiguous copy.
func (t *Tensor) Contiguous() (*Tensor, error) {
	if t.IsContiguous() {
		return t.view(slices.Clone(t.shape), ContiguousStrides(t.shape), t.offset), nil
	}
	return t.To(t.dtype)
}

// To returns a contiguous copy of t converted to dt (a copy even when dt is t's type).
func (t *Tensor) To(dt DType) (*Tensor, error) {
	out, err := New(t.Backend(), dt, t.shape...)
	if err != nil {
		return nil, err
	}
	if err := t.Backend().Copy(out, t); err != nil {
		out.Release()
		return nil, fmt.Errorf("tensor.To(%v) %v: %w", dt, t, err)
	}
	return out, nil
}
