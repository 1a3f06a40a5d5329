package devprec

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sdgo/sdgo/kernels/cuda"
	"github.com/sdgo/sdgo/tensor"
)

func TestSet(t *testing.T) {
	has, err := Set(tensor.NewCPU(), "fp16")
	require.NoError(t, err)
	require.False(t, has, "the CPU has no precision setting")

	var b cuda.Backend // the precision is a setting of the value; no device needed
	has, err = Set(&b, "bf16")
	require.NoError(t, err)
	require.True(t, has)
	require.Equal(t, cuda.BF16, b.Precision())
	has, err = Set(&b, "fp8")
	require.True(t, has)
	require.ErrorContains(t, err, "unknown precision")
	require.Equal(t, cuda.BF16, b.Precision(), "a refused name changes nothing")
}
