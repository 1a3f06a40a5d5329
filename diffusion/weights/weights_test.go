package weights

import (
	"encoding/binary"
	"math"
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
