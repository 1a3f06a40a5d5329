package metal

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"

	"github.com/sdgo/sdgo/tensor"
)

// params encodes a kernel's constant parameter struct: int and float fields of 4
// bytes each, in declaration order, little-endian (as every Apple GPU reads
// them). An int that does not fit in 32 bits is an error, reported once by err.
type params struct {
	w   []uint32
	err error
}

// i appends int fields.
func (p *params) i(vs ...int) *params {
	for _, v := range vs {
		if v < math.MinInt32 || v > math.MaxInt32 {
			if p.err == nil {
				p.err = fmt.Errorf("%w: %d does not fit the kernels' 32-bit indices", ErrUnsupported, v)
			}
		}
		p.w = append(p.w, uint32(int32(v)))
	}
	return p
}

// f appends float fields.
func (p *params) f(vs ...float32) *params {
	for _, v := range vs {
		p.w = append(p.w, math.Float32bits(v))
	}
	return p
}

// arr appends an int array field of n elements: vs, then zeros.
func (p *params) arr(n int, vs []int) *params {
	if len(vs) > n {
		if p.err == nil {
			p.err = fmt.Errorf("%w: %d dimensions (at most %d)", ErrUnsupported, len(vs), n)
		}
		vs = vs[:n]
	}
	p.i(vs...)
	for range n - len(vs) {
		p.w = append(p.w, 0)
	}
	return p
}

// bytes returns the encoded struct.
func (p *params) bytes() []byte {
	b := make([]byte, 4*len(p.w))
	for i, v := range p.w {
		binary.LittleEndian.PutUint32(b[4*i:], v)
	}
	return b
}

// dtypeCode is the DT_ constant of common.metal for dt: tensor.DType's value,
// 0 for an absent (nil) operand.
func dtypeCode(t *tensor.Tensor) int {
	if t == nil {
		return 0
	}
	return int(t.DType())
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// sizeClass rounds a request of n bytes up to one of four steps per power of
// two (at most 25% slack, 256 bytes at least): the sizes of the buffers a
// Device allocates and keeps for reuse.
func sizeClass(n int) int {
	n = max(n, 256)
	e := bits.Len(uint(n-1)) - 1 // 2^e < n ≤ 2^(e+1)
	step := 1 << (e - 2)
	return (n + step - 1) / step * step
}
