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

// coalesce drops the dimensions of size 1 from shape and merges each dimension
// into its outer neighbour where every operand's strides allow it, so that a
// contiguous copy becomes one run of n elements and only the dimensions that
// matter remain. The result has rank ≥ 1.
func coalesce(shape []int, strides ...[]int) ([]int, [][]int) {
	sh := make([]int, 0, len(shape))
	st := make([][]int, len(strides))
	for k := range st {
		st[k] = make([]int, 0, len(shape))
	}
	for i, d := range shape {
		if d == 1 {
			continue
		}
		if last := len(sh) - 1; last >= 0 {
			merge := true
			for k := range strides {
				if st[k][last] != strides[k][i]*d {
					merge = false
					break
				}
			}
			if merge {
				sh[last] *= d
				for k := range strides {
					st[k][last] = strides[k][i]
				}
				continue
			}
		}
		sh = append(sh, d)
		for k := range strides {
			st[k] = append(st[k], strides[k][i])
		}
	}
	if len(sh) == 0 {
		sh = append(sh, 1)
		for k := range st {
			st[k] = append(st[k], 0)
		}
	}
	return sh, st
}

// contiguousStrides returns the row-major strides of shape.
func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
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
