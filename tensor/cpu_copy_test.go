package tensor_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
)

// bits reads the bit patterns of an F16 or BF16 tensor and releases it.
func (e *opsEnv) bits(x *tensor.Tensor) []uint16 {
	e.t.Helper()
	require.True(e.t, x.IsContiguous())
	out := make([]uint16, x.Numel())
	require.NoError(e.t, e.cpu.Read(x.Storage(), x.Offset(), out))
	x.Release()
	return out
}

// hardValues are float32 values at the edges of the 16-bit formats, followed by
// random values over the whole float32 range and a normal sample.
func (e *opsEnv) hardValues() []float32 {
	xs := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 1.0 / 3, 65504, 65519.99, 65520, -65520, 1e10,
		float32(math.Ldexp(1, -14)), float32(math.Ldexp(1, -24)), float32(math.Ldexp(1, -25)),
		float32(math.Ldexp(3, -26)), float32(math.Ldexp(3, -25)),
		1 + float32(math.Ldexp(1, -11)), 1 + float32(math.Ldexp(3, -11)),
		1 + float32(math.Ldexp(1, -8)), 1 + float32(math.Ldexp(3, -8)),
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f7f8000),
	}
	for range 5000 {
		b := e.rng.Uint32()
		if b&0x7f800000 == 0x7f800000 {
			continue // NaN and Inf are covered above and below
		}
		xs = append(xs, math.Float32frombits(b))
	}
	return append(xs, tensortest.Rand(e.rng, 3001)...)
}

func TestCopyNarrowingRoundsToNearestEven(t *testing.T) {
	e := newOpsEnv(t)
	xs := e.hardValues()
	x := e.from(xs, len(xs))
	h, err := x.To(tensor.F16)
	require.NoError(t, err)
	require.Equal(t, tensor.F16, h.DType())
	require.Equal(t, tensortest.F16Bits(xs), e.bits(h))
	b, err := x.To(tensor.BF16)
	require.NoError(t, err)
	require.Equal(t, tensortest.BF16Bits(xs), e.bits(b))

	nan := e.from([]float32{float32(math.NaN()), -float32(math.NaN())}, 2)
	for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
		y, err := nan.To(dt)
		require.NoError(t, err)
		for _, v := range e.vals(y) {
			require.True(t, math.IsNaN(float64(v)), "%v NaN", dt)
		}
	}
}

func TestCopyWideningIsExact(t *testing.T) {
	e := newOpsEnv(t)
	all := make([]uint16, 1<<16)
	for i := range all {
		all[i] = uint16(i)
	}
	for _, c := range []struct {
		dt  tensor.DType
		ref func([]uint16) []float32
	}{{tensor.F16, tensortest.F16Values}, {tensor.BF16, tensortest.BF16Values}} {
		x, err := tensor.FromBits(e.cpu, c.dt, all, 256, 256)
		require.NoError(t, err)
		want := c.ref(all)
		require.Equal(t, len(want), len(all))
		tensortest.RequireClose(t, want, e.vals(x), 0, 0)
	}
}

func TestCopyBetweenHalfFormats(t *testing.T) {
	e := newOpsEnv(t)
	xs := e.hardValues()
	h, hv := e.typed(tensor.F16, xs, len(xs))
	b, err := h.To(tensor.BF16)
	require.NoError(t, err)
	require.Equal(t, tensortest.BF16Bits(hv), e.bits(b))
	bf, bv := e.typed(tensor.BF16, xs, len(xs))
	h2, err := bf.To(tensor.F16)
	require.NoError(t, err)
	require.Equal(t, tensortest.F16Bits(bv), e.bits(h2))
	same, err := h.To(tensor.F16)
	require.NoError(t, err)
	require.False(t, sameStorage(h, same), "To copies")
	require.Equal(t, tensortest.F16Bits(hv), e.bits(same))
}

// TestCopyStrided copies every permutation of a 4-D tensor between every pair of
// dtypes.
func TestCopyStrided(t *testing.T) {
	e := newOpsEnv(t)
	shape := []int{3, 5, 7, 4}
	data := tensortest.Rand(e.rng, tensortest.Numel(shape))
	var perms [][]int
	var permute func(prefix, rest []int)
	permute = func(prefix, rest []int) {
		if len(rest) == 0 {
			perms = append(perms, prefix)
			return
		}
		for i := range rest {
			r := append(append([]int{}, rest[:i]...), rest[i+1:]...)
			permute(append(append([]int{}, prefix...), rest[i]), r)
		}
	}
	permute(nil, []int{0, 1, 2, 3})
	require.Len(t, perms, 24)
	for _, from := range dtypes {
		x, xv := e.typed(from, data, shape...)
		for _, to := range dtypes {
			round := func(v []float32) []float32 { return v }
			switch to {
			case tensor.F16:
				round = tensortest.RoundF16
			case tensor.BF16:
				round = tensortest.RoundBF16
			}
			for _, axes := range perms {
				p, err := x.Permute(axes...)
				require.NoError(t, err)
				y, err := p.To(to)
				p.Release()
				require.NoError(t, err)
				require.Equal(t, to, y.DType())
				want, ws := tensortest.Permute(xv, shape, axes)
				require.Equal(t, ws, y.Shape())
				tensortest.RequireClose(t, round(want), e.vals(y), 0, 0)
			}
		}
	}
}

func TestCopyBroadcastAndLarge(t *testing.T) {
	e := newOpsEnv(t)
	for _, dt := range dtypes {
		for _, to := range dtypes {
			t.Run(fmt.Sprintf("%v_to_%v", dt, to), func(t *testing.T) {
				// Zero strides, inner and outer.
				col, cv := e.typed(dt, tensortest.Rand(e.rng, 7), 7, 1)
				ex, err := col.Expand(3, 7, 129)
				require.NoError(t, err)
				y, err := ex.To(to)
				ex.Release()
				require.NoError(t, err)
				want := tensortest.Strided(cv, []int{3, 7, 129}, []int{0, 1, 0}, 0)
				if to == tensor.BF16 {
					want = tensortest.RoundBF16(want)
				} else if to == tensor.F16 {
					want = tensortest.RoundF16(want)
				}
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)

				// Long runs, split over goroutines, and a large transpose.
				big, bv := e.typed(dt, tensortest.Rand(e.rng, 300*257), 300, 257)
				tr, err := big.Transpose(0, 1)
				require.NoError(t, err)
				y, err = tr.To(to)
				tr.Release()
				require.NoError(t, err)
				want, _ = tensortest.Permute(bv, []int{300, 257}, []int{1, 0})
				if to == tensor.BF16 {
					want = tensortest.RoundBF16(want)
				} else if to == tensor.F16 {
					want = tensortest.RoundF16(want)
				}
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)
				y, err = big.To(to)
				require.NoError(t, err)
				want = bv
				if to == tensor.BF16 {
					want = tensortest.RoundBF16(want)
				} else if to == tensor.F16 {
					want = tensortest.RoundF16(want)
				}
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)
			})
		}
	}
}

func TestFill(t *testing.T) {
	e := newOpsEnv(t)
	for _, n := range []int{0, 1, 255, 256, 40000} {
		for _, v := range []float32{0, 0.1, -65520, float32(math.Inf(-1))} {
			x, err := tensor.Full(e.cpu, tensor.F32, v, n)
			require.NoError(t, err)
			got := e.vals(x)
			for _, g := range got {
				require.Equal(t, v, g)
			}
			for _, dt := range []tensor.DType{tensor.F16, tensor.BF16} {
				x, err := tensor.Full(e.cpu, dt, v, n)
				require.NoError(t, err)
				want := tensortest.F16Bits([]float32{v})[0]
				if dt == tensor.BF16 {
					want = tensortest.BF16Bits([]float32{v})[0]
				}
				for _, g := range e.bits(x) {
					require.Equal(t, want, g)
				}
			}
		}
	}
	z, err := tensor.Zeros(e.cpu, tensor.F32, 3, 100)
	require.NoError(t, err)
	require.Equal(t, make([]float32, 300), e.vals(z))
}

// TestCopyTransposeTiled covers the blocked transpose that strides of a multiple
// of 512 bytes take, with sizes that leave partial tiles.
func TestCopyTransposeTiled(t *testing.T) {
	e := newOpsEnv(t)
	cases := []struct {
		shape, axes []int
	}{
		{[]int{3, 37, 256}, []int{0, 2, 1}},
		{[]int{2, 64, 128}, []int{0, 2, 1}},
		{[]int{2, 13, 9, 256}, []int{0, 3, 1, 2}},
		{[]int{2, 16, 8, 64}, []int{0, 2, 3, 1}},
		{[]int{256, 8}, []int{1, 0}},
		{[]int{7, 512}, []int{1, 0}},
	}
	for _, c := range cases {
		for _, dt := range dtypes {
			t.Run(fmt.Sprintf("%v/%v/%v", c.shape, c.axes, dt), func(t *testing.T) {
				x, xv := e.typed(dt, tensortest.Rand(e.rng, tensortest.Numel(c.shape)), c.shape...)
				p, err := x.Permute(c.axes...)
				require.NoError(t, err)
				defer p.Release()
				want, ws := tensortest.Permute(xv, c.shape, c.axes)
				y, err := p.Contiguous()
				require.NoError(t, err)
				require.Equal(t, ws, y.Shape())
				require.Equal(t, dt, y.DType())
				tensortest.RequireClose(t, want, e.vals(y), 0, 0)
			})
		}
	}
}
