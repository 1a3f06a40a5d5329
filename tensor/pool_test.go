package tensor_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/tensor"
)

// first returns the address of a CPU tensor's first storage element.
func first(x *tensor.Tensor) *float32 { return &x.Storage().(*tensor.CPUStorage).F32[0] }

// reused reports whether, in one of a few tries, a buffer released by release is
// handed out again by alloc. sync.Pool promises nothing (a goroutine may move to
// another processor between the two calls; the race detector drops some
// buffers), so a single miss proves nothing.
func reused(t *testing.T, try func() bool) bool {
	for range 20 {
		if try() {
			return true
		}
	}
	return false
}

func TestReleaseReusesStorage(t *testing.T) {
	cpu := tensor.NewCPU()
	ok := reused(t, func() bool {
		a, err := tensor.New(cpu, tensor.F32, 10, 100)
		require.NoError(t, err)
		p := first(a)
		a.Release()
		a.Release()                                 // idempotent
		b, err := tensor.New(cpu, tensor.F32, 1010) // the same size class as 1000
		require.NoError(t, err)
		defer b.Release()
		return first(b) == p
	})
	require.True(t, ok, "a released buffer is reused by the next allocation of its class")
}

func TestViewKeepsStorageAlive(t *testing.T) {
	cpu := tensor.NewCPU()
	data := make([]float32, 1000)
	for i := range data {
		data[i] = float32(i)
	}
	ok := reused(t, func() bool {
		a, err := tensor.FromFloat32(cpu, data, 1000)
		require.NoError(t, err)
		p := first(a)
		v, err := a.Reshape(10, 100)
		require.NoError(t, err)
		a.Release()
		// The view still holds the storage: a new tensor of the same class gets
		// another buffer, and the view's values are intact.
		b, err := tensor.Full(cpu, tensor.F32, -1, 1000)
		require.NoError(t, err)
		pb := first(b)
		require.NotSame(t, p, pb)
		got, err := v.Float32s()
		require.NoError(t, err)
		require.Equal(t, data, got)
		b.Release()
		v.Release()
		c, err := tensor.New(cpu, tensor.F32, 1000)
		require.NoError(t, err)
		defer c.Release()
		return first(c) == p || first(c) == pb
	})
	require.True(t, ok, "the storage returns to the pool when the last view is released")
}

func TestOpsReleaseTemporaries(t *testing.T) {
	// A strided input to an operation that needs a contiguous one is copied to a
	// temporary, which is released: the next allocation of its class reuses it,
	// as its contents (the ones of x; a fresh buffer holds zeros) show.
	cpu := tensor.NewCPU()
	x, err := tensor.Full(cpu, tensor.F32, 1, 40, 50)
	require.NoError(t, err)
	defer x.Release()
	xt, err := x.Transpose(0, 1)
	require.NoError(t, err)
	defer xt.Release()
	ok := reused(t, func() bool {
		y, err := tensor.SiLU(xt) // a temporary and y, both of 2000 elements
		require.NoError(t, err)
		defer y.Release()
		z, err := tensor.New(cpu, tensor.F32, 2000)
		require.NoError(t, err)
		defer z.Release()
		got, err := z.Float32s()
		require.NoError(t, err)
		for _, v := range got {
			if v != 1 {
				return false
			}
		}
		return true
	})
	require.True(t, ok)
}
