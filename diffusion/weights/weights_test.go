package weights

import (
	"encoding/binary"
	"math"
	"path/filepath"
	"testing"

	"github.com/sdgo/sdgo/diffusion/safetensors"
	"github.com/sdgo/sdgo/tensor"
	"github.com/stretchr/testify/require"
)

func TestFromBytes(t *testing.T) {
	cpu := tensor.NewCPU()
	le := binary.LittleEndian
	vals := []float32{1.5, -2, 0.25, 3}
	f32 := make([]byte, 16)
	f64 := make([]byte, 32)
	i64 := make([]byte, 32)
	f16 := []byte{0x00, 0x3e, 0x00, 0xc0, 0x00, 0x34, 0x00, 0x42} // 1.5, -2, 0.25, 3
	bf16 := make([]byte, 8)
	for i, v := range vals {
		le.PutUint32(f32[4*i:], math.Float32bits(v))
		le.PutUint64(f64[8*i:], math.Float64bits(float64(v)))
		le.PutUint64(i64[8*i:], uint64(int64(v*4)))
		le.PutUint16(bf16[2*i:], uint16(math.Float32bits(v)>>16))
	}
	for _, c := range []struct {
		dt   safetensors.DType
		raw  []byte
		want tensor.DType
		vals []float32
	}{
		{safetensors.F32, f32, tensor.F32, vals},
		{safetensors.F16, f16, tensor.F16, vals},
		{safetensors.BF16, bf16, tensor.BF16, vals},
		{safetensors.F64, f64, tensor.F32, vals},
		{safetensors.I64, i64, tensor.F32, []float32{6, -8, 1, 12}},
	} {
		x, err := FromBytes(cpu, c.dt, []int{2, 2}, c.raw)
		require.NoError(t, err, "%s", c.dt)
		require.Equal(t, c.want, x.DType(), "%s keeps or widens its dtype", c.dt)
		require.Equal(t, []int{2, 2}, x.Shape())
		got, err := x.Float32s()
		require.NoError(t, err)
		require.Equal(t, c.vals, got, "%s", c.dt)
	}
	_, err := FromBytes(cpu, safetensors.F32, []int{3}, f32)
	require.ErrorContains(t, err, "16 bytes for F32[3]")
}

// F16 weights from a mapped file are used in place: the tensor reads right,
// costs no heap, and outlives the file's Close.
func TestLoadInPlace(t *testing.T) {
	const n = 300 << 10
	v := make([]uint16, n)
	for i := range v {
		v[i] = uint16(i * 7)
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := safetensors.WriteFile(path, []safetensors.Tensor{safetensors.U16Tensor("w", safetensors.F16, []int{n / 4, 4}, v)}, nil); err != nil {
		t.Fatal(err)
	}
	src, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	c := tensor.NewCPU()
	w, err := src.Load("w", c)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	got := w.Storage().(*tensor.CPUStorage).U16
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("element %d after Close: %d, want %d", i, got[i], v[i])
		}
	}
	tensor.Evict(w)
	if got := w.Storage().(*tensor.CPUStorage).U16; got[n-1] != v[n-1] {
		t.Fatalf("last element after Evict: %d, want %d", got[n-1], v[n-1])
	}
	w.Release()
	if c.Stats().InUse != 0 {
		t.Errorf("InUse %d after Release", c.Stats().InUse)
	}
}
