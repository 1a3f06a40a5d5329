package tensor_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
	"github.com/sdgo/sdgo/tensor/tensortest"
)

// sameStorage reports whether two tensors view one storage.
func sameStorage(a, b *tensor.Tensor) bool { return a.Storage() == b.Storage() }

func TestReshapeViewOrCopy(t *testing.T) {
	e := newOpsEnv(t)
	data, x := e.rand(2, 3, 4)

	v, err := x.Reshape(6, -1)
	require.NoError(t, err)
	require.Equal(t, []int{6, 4}, v.Shape())
	require.True(t, sameStorage(x, v), "reshape of a contiguous tensor is a view")
	require.Equal(t, data, e.vals(v))

	v, err = x.Reshape(4, 1, 6)
	require.NoError(t, err)
	require.True(t, sameStorage(x, v))
	require.Equal(t, data, e.vals(v))

	// A transposed tensor splits into a view where the merged dimensions stay
	// contiguous, and needs a copy where they do not.
	p, err := x.Permute(0, 2, 1) // [2,4,3]
	require.NoError(t, err)
	defer p.Release()
	want, _ := tensortest.Permute(data, []int{2, 3, 4}, []int{0, 2, 1})
	v, err = p.Reshape(2, 2, 2, 3)
	require.NoError(t, err)
	require.True(t, sameStorage(x, v), "splitting a dimension is a view")
	require.Equal(t, want, e.vals(v))
	v, err = p.Reshape(2, 12)
	require.NoError(t, err)
	require.False(t, sameStorage(x, v), "merging transposed dimensions copies")
	require.True(t, v.IsContiguous())
	require.Equal(t, want, e.vals(v))

	_, err = x.Reshape(5, -1)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Reshape", "[2 3 4]", "[5 -1]")
	_, err = x.Reshape(-1, -1)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Reshape")
	_, err = x.Reshape(25)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Reshape", "[25]")
}

func TestPermuteTransposeContiguous(t *testing.T) {
	e := newOpsEnv(t)
	shape := []int{2, 3, 5, 7}
	data, x := e.rand(shape...)
	for _, axes := range [][]int{{0, 1, 2, 3}, {3, 2, 1, 0}, {0, 2, 3, 1}, {0, 3, 1, 2}, {1, 0, 3, 2}, {2, 0, 3, 1}} {
		t.Run(fmt.Sprint(axes), func(t *testing.T) {
			want, ws := tensortest.Permute(data, shape, axes)
			p, err := x.Permute(axes...)
			require.NoError(t, err)
			require.Equal(t, ws, p.Shape())
			require.True(t, sameStorage(x, p))
			c, err := p.Contiguous()
			require.NoError(t, err)
			require.True(t, c.IsContiguous())
			require.Equal(t, p.IsContiguous(), sameStorage(x, c))
			require.Equal(t, want, e.vals(c))
			require.Equal(t, want, e.vals(p)) // Float32s of the strided view
		})
	}
	tr, err := x.Transpose(1, -1)
	require.NoError(t, err)
	want, _ := tensortest.Permute(data, shape, []int{0, 3, 2, 1})
	require.Equal(t, want, e.vals(tr))

	_, err = x.Permute(0, 1, 2)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Permute", "[2 3 5 7]")
	_, err = x.Permute(0, 1, 1, 2)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Permute", "repeated")
	_, err = x.Transpose(0, 4)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Transpose", "axis 4")
}

func TestNarrowSliceUnsqueezeExpand(t *testing.T) {
	e := newOpsEnv(t)
	shape := []int{4, 9, 6}
	data, x := e.rand(shape...)
	st := tensortest.Strides(shape)

	n, err := x.Narrow(1, 2, 5)
	require.NoError(t, err)
	require.Equal(t, []int{4, 5, 6}, n.Shape())
	require.False(t, n.IsContiguous())
	require.Equal(t, tensortest.Strided(data, []int{4, 5, 6}, st, 2*st[1]), e.vals(n))

	s, err := x.Slice(-1, 1, 6, 2)
	require.NoError(t, err)
	require.Equal(t, []int{4, 9, 3}, s.Shape())
	require.Equal(t, tensortest.Strided(data, []int{4, 9, 3}, []int{st[0], st[1], 2}, 1), e.vals(s))

	s, err = x.Slice(0, 1, 4, 3) // one row
	require.NoError(t, err)
	require.Equal(t, []int{1, 9, 6}, s.Shape())
	c, err := s.Contiguous()
	require.NoError(t, err)
	require.True(t, sameStorage(x, c), "a single row is contiguous")
	require.Equal(t, data[st[0]:2*st[0]], e.vals(c))
	s.Release()

	u, err := x.Unsqueeze(1)
	require.NoError(t, err)
	require.Equal(t, []int{4, 1, 9, 6}, u.Shape())
	require.True(t, u.IsContiguous())
	require.Equal(t, data, e.vals(u))
	u, err = x.Unsqueeze(-1)
	require.NoError(t, err)
	require.Equal(t, []int{4, 9, 6, 1}, u.Shape())
	require.Equal(t, data, e.vals(u))

	row, err := x.Narrow(0, 3, 1)
	require.NoError(t, err)
	defer row.Release()
	ex, err := row.Expand(2, 5, 9, 6)
	require.NoError(t, err)
	require.Equal(t, []int{0, 0, 6, 1}, ex.Strides())
	want := tensortest.Strided(data, []int{2, 5, 9, 6}, []int{0, 0, 6, 1}, 3*st[0])
	c, err = ex.Contiguous()
	require.NoError(t, err)
	require.Equal(t, want, e.vals(c))
	require.Equal(t, want, e.vals(ex))

	_, err = x.Narrow(1, 5, 5)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Narrow", "[4 9 6]")
	_, err = x.Slice(2, 0, 7, 1)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Slice", "[4 9 6]")
	_, err = x.Slice(2, 0, 6, 0)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Slice")
	_, err = x.Unsqueeze(4)
	requireOpErr(t, err, tensor.ErrRange, "tensor.Unsqueeze", "[4 9 6]")
	_, err = x.Expand(4, 2, 6)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Expand", "[4 9 6]", "[4 2 6]")
	_, err = x.Expand(9, 6)
	requireOpErr(t, err, tensor.ErrShape, "tensor.Expand")
}

func TestViewOfView(t *testing.T) {
	e := newOpsEnv(t)
	shape := []int{3, 8, 10}
	data, x := e.rand(shape...)
	a, err := x.Transpose(1, 2) // [3,10,8]
	require.NoError(t, err)
	defer a.Release()
	b, err := a.Narrow(1, 2, 5) // [3,5,8]
	require.NoError(t, err)
	defer b.Release()
	c, err := b.Slice(2, 1, 8, 3) // [3,5,3]
	require.NoError(t, err)
	defer c.Release()
	d, err := c.Unsqueeze(0) // [1,3,5,3]
	require.NoError(t, err)
	defer d.Release()
	f, err := d.Expand(2, 3, 5, 3)
	require.NoError(t, err)
	want := tensortest.Strided(data, []int{2, 3, 5, 3}, []int{0, 80, 1, 30}, 2+10)
	require.Equal(t, want, e.vals(f))
	g, err := c.Reshape(-1)
	require.NoError(t, err)
	require.Equal(t, want[:45], e.vals(g))
}

func TestBroadcastShapes(t *testing.T) {
	cases := []struct {
		a, b, want []int
		ok         bool
	}{
		{[]int{2, 3}, []int{2, 3}, []int{2, 3}, true},
		{[]int{2, 3}, []int{3}, []int{2, 3}, true},
		{[]int{}, []int{4, 5}, []int{4, 5}, true},
		{[]int{4, 1, 6}, []int{5, 1}, []int{4, 5, 6}, true},
		{[]int{1}, []int{0}, []int{0}, true},
		{[]int{2, 1}, []int{1, 2, 3}, []int{1, 2, 3}, true},
		{[]int{2, 3}, []int{4}, nil, false},
		{[]int{2, 3}, []int{3, 3}, nil, false},
	}
	for _, c := range cases {
		got, ok := tensor.BroadcastShapes(c.a, c.b)
		require.Equal(t, c.ok, ok, "%v %v", c.a, c.b)
		if ok {
			require.Equal(t, c.want, got, "%v %v", c.a, c.b)
			require.Equal(t, c.want, tensortest.BroadcastShape(c.a, c.b))
		}
	}
}
